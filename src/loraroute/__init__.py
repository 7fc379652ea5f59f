"""loraroute: train, verify and serve the LoRA models an LLM request router needs.

The Python API, for embedding a detector in an application:

- :func:`train` -- ``loraroute.train("pii", model="bert-base-uncased", epochs=2)`` trains a task's model and writes
  its model directory (the same settings and checks as ``loraroute train``).
- :func:`load` -- ``detector = loraroute.load("models/lora_pii_detector_bert_r16_model")``, then
  ``detector("Mail john@example.com")`` for one answer or ``detector([...])`` for a list.
- :func:`create_app` -- the FastAPI app ``loraroute serve`` runs (imported on first use, with FastAPI).

Importing ``loraroute`` is light: torch, transformers and FastAPI load when a function needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loraroute._version import __version__
from loraroute.api import load, train
from loraroute.inference.task_lookup import use_task_lookup

if TYPE_CHECKING:
    from loraroute.serve.api import create_app

__all__ = ["__version__", "create_app", "load", "train"]


def _task_of(path, meta):
    # Inference sits below the tasks and may not import them, so this root connects them for every loader that is
    # not given a task. Imported on the first load: `import loraroute` stays light.
    from loraroute.tasks import task_of

    return task_of(path, meta)


use_task_lookup(_task_of)


def __getattr__(name: str) -> Any:
    # FastAPI is imported only by those who serve (PEP 562 module __getattr__).
    if name == "create_app":
        from loraroute.serve.api import create_app

        return create_app
    raise AttributeError(f"module 'loraroute' has no attribute {name!r}")
