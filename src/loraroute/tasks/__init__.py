"""Task registry: a task name -> its Task class. A new task is one module here plus its tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loraroute.tasks.base import ServedTask, Task

_TASKS = {
    "intent": "loraroute.tasks.intent:IntentTask",
    "pii": "loraroute.tasks.pii:PIITask",
    "jailbreak": "loraroute.tasks.jailbreak:JailbreakTask",
    "generative-intent": "loraroute.tasks.generative:GenerativeIntentTask",
    "solver": "loraroute.tasks.solver:SolverTask",
}


def task_names() -> list[str]:
    return list(_TASKS)


def get_task(name: str) -> Task:
    if name not in _TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(_TASKS)}")
    module, cls = _TASKS[name].split(":")
    import importlib

    return getattr(importlib.import_module(module), cls)()


def task_for_artifact(name: str) -> Task:
    """The task whose artifact prefix starts a model directory's name (upstream's discovery rule)."""
    for task_name in _TASKS:
        task = get_task(task_name)
        if name.startswith(task.artifact_prefix):
            return task
    raise ValueError(f"{name}: not a loraroute model directory (no known lora_* prefix)")


def task_of(path: str | Path, meta: dict[str, Any]) -> Task:
    """A model directory's task: the one its lora_config.json names (``meta``: ``ModelDir(path).meta()``), else
    the one its name's prefix says."""
    return get_task(meta["task"]) if "task" in meta else task_for_artifact(Path(path).name)


def served_tasks() -> dict[str, ServedTask]:
    """HTTP task name -> task, for the tasks ``serve`` answers (the :class:`ServedTask` ones), in serving order."""
    tasks = (get_task(name) for name in _TASKS)
    return {task.serve_name: task for task in tasks if isinstance(task, ServedTask)}
