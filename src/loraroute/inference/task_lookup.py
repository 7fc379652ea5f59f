"""How a loader finds a model directory's task when its caller gives none.

Tasks sit above inference, which may not import them. The package root (``loraroute/__init__.py``, imported before
any of its modules) connects ``loraroute.tasks.task_of`` here, so ``Predictor.load(path)`` works however inference is
imported, and a caller that already holds the task passes it instead.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

TaskLookup = Callable[[Path, dict[str, Any]], Any]  # (model directory, its ModelDir.meta()) -> its Task

_lookup: TaskLookup | None = None


def use_task_lookup(lookup: TaskLookup) -> None:
    global _lookup
    _lookup = lookup


def task_of(path: Path, meta: dict[str, Any]):
    """The task of the model directory ``path`` (``meta``: its ``artifacts.ModelDir.meta()``)."""
    if _lookup is None:
        raise RuntimeError("no task lookup connected: pass the model's task (loraroute/__init__.py connects one)")
    return _lookup(path, meta)
