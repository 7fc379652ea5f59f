"""The PyTorch runtime: a model directory (merged model, or base + adapter) loaded with its task, texts in, the task's
answers out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from loraroute.artifacts import ModelDir
from loraroute.inference.task_lookup import task_of
from loraroute.inference.windows import TextEncoder, run_batches, torch_forward
from loraroute.models.hub import resolve
from loraroute.models.loading import AUTO_CLASSES, load_base_model, load_tokenizer, refuse_pickle_only


class BasePredictor:
    """What every runtime shares (PyTorch, ONNX Runtime, candle): the task, its labels, and answers built from
    ``logits(texts)`` by the task, so the runtimes cannot drift apart in post-processing.

    ``task`` is the model's :class:`loraroute.tasks.base.Task`; the ``load`` classmethods look it up when not given.
    """

    tensors = "np"  # what _forward takes: numpy arrays from the tokenizer (PyTorch overrides logits)

    def __init__(self, tokenizer, meta: dict[str, Any], task, batch_size: int = 32):
        self.tokenizer = tokenizer
        self.meta = meta
        meta.setdefault("task", task.name)  # ModelDir.meta leaves it out when only the directory's name tells
        self.task = task
        self.labels: list[str] = meta["labels"]
        self.label2id = {label: i for i, label in enumerate(self.labels)}
        self.batch_size = batch_size
        # Tokenizes each text once; the unified classifier hands one encoder to models whose tokenizers match.
        self.encoder = TextEncoder(tokenizer, meta["max_length"])

    def _forward(self, encoding) -> np.ndarray:
        """Logits for one tokenized batch (``tensors``: what the tokenizer returns for it)."""
        raise NotImplementedError

    def logits(self, texts: list[str]) -> tuple[list[np.ndarray], list[dict]]:
        """Per text, its logits and encoding, through the one batching path every runtime shares."""
        token = self.task.kind == "token"
        return run_batches(self._forward, self.encoder, texts, self.batch_size, windowed=token, tensors=self.tensors)

    def predict(self, texts: list[str], **options) -> list[dict]:
        if not texts:
            return []
        return self.task.predict(self, texts, **options)


class Predictor(BasePredictor):
    """A trained PyTorch model with its task: ``predict(texts)`` returns the task's answers."""

    tensors = "pt"

    def __init__(self, model, tokenizer, meta: dict[str, Any], task, batch_size: int = 32):
        super().__init__(tokenizer, meta, task, batch_size)
        self.model = model.eval()

    @classmethod
    def load(
        cls,
        path: str | Path,
        use_adapter: bool = False,
        device: str | None = None,
        revision: str | None = None,
        task=None,
    ) -> Predictor:
        """``path``: a model directory, or a hub repo id (owner/name) fetched into the Hugging Face cache."""
        path = resolve(path, revision=revision)
        files = ModelDir(path)
        meta = files.meta()
        task = task if task is not None else task_of(path, meta)
        adapter_dir = files.adapter
        if files.adapter_only:
            use_adapter, adapter_dir = True, path
        if use_adapter:
            from peft import PeftModel

            if not (adapter_dir / "adapter_config.json").exists():
                raise FileNotFoundError(f"{adapter_dir}: no adapter_config.json")
            refuse_pickle_only(adapter_dir)  # PEFT would otherwise fall back to adapter_model.bin
            base = load_base_model(meta["base_model"], task.kind, meta["labels"] or None)
            model = PeftModel.from_pretrained(base, adapter_dir)
        else:
            refuse_pickle_only(path)
            model = AUTO_CLASSES[task.kind].from_pretrained(path, use_safetensors=True)
        tokenizer = load_tokenizer(str(path))
        if device:
            model.to(device)
        return cls(model, tokenizer, meta, task)

    def _forward(self, encoding) -> np.ndarray:
        return torch_forward(self.model)(encoding)


def best_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
