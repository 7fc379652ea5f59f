"""Loading a model directory for inference (merged model, or base + adapter) and turning texts into answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from loraroute.artifacts import ADAPTER_DIR, LORA_CONFIG, THRESHOLDS, read_json
from loraroute.models.loading import AUTO_CLASSES, load_base_model, load_tokenizer, refuse_pickle_only
from loraroute.tasks import get_task, task_for_artifact
from loraroute.tasks.base import batched_logits


def read_meta(path: Path) -> dict[str, Any]:
    """lora_config.json plus the label list from config.json's id2label."""
    path = Path(path)
    meta = read_json(path / LORA_CONFIG) if (path / LORA_CONFIG).exists() else {}
    config = read_json(path / "config.json") if (path / "config.json").exists() else {}
    id2label = config.get("id2label") or {}
    if not id2label and (path / "label_mapping.json").exists():  # adapter-only dirs have no config.json
        id2label = read_json(path / "label_mapping.json").get("id2label") or {}
    meta["labels"] = [id2label[k] for k in sorted(id2label, key=int)]
    meta.setdefault("max_length", 512)
    if (path / THRESHOLDS).exists():  # calibrated decision thresholds (jailbreak), read by predict and serve
        meta["thresholds"] = read_json(path / THRESHOLDS)
    if "task" not in meta:
        meta["task"] = task_for_artifact(path.name).name
    return meta


class BasePredictor:
    """What every runtime shares (PyTorch here, ONNX Runtime in export/onnx.py): the task, its labels, and
    answers built from ``logits(texts)`` by the task, so the runtimes cannot drift apart in post-processing."""

    def __init__(self, tokenizer, meta: dict[str, Any], batch_size: int = 32):
        self.tokenizer = tokenizer
        self.meta = meta
        self.task = get_task(meta["task"])
        self.labels: list[str] = meta["labels"]
        self.label2id = {label: i for i, label in enumerate(self.labels)}
        self.batch_size = batch_size

    def logits(self, texts: list[str]) -> tuple[list[np.ndarray], list[dict]]:
        raise NotImplementedError

    def predict(self, texts: list[str], **options) -> list[dict]:
        if not texts:
            return []
        return self.task.predict(self, texts, **options)


class Predictor(BasePredictor):
    """A trained PyTorch model with its task: ``predict(texts)`` returns the task's answers."""

    def __init__(self, model, tokenizer, meta: dict[str, Any], batch_size: int = 32):
        super().__init__(tokenizer, meta, batch_size)
        self.model = model.eval()

    @classmethod
    def load(
        cls, path: str | Path, use_adapter: bool = False, device: str | None = None, revision: str | None = None
    ) -> Predictor:
        """``path``: a model directory, or a hub repo id (owner/name) fetched into the Hugging Face cache."""
        from loraroute.hub import resolve

        path = resolve(path, revision=revision)
        meta = read_meta(path)
        kind = get_task(meta["task"]).kind
        adapter_dir = path / ADAPTER_DIR
        if not (path / "config.json").exists() and (path / "adapter_config.json").exists():
            use_adapter, adapter_dir = True, path  # adapter-only directory (causal LMs: save_merged=False)
        if use_adapter:
            from peft import PeftModel

            if not (adapter_dir / "adapter_config.json").exists():
                raise FileNotFoundError(f"{adapter_dir}: no adapter_config.json")
            refuse_pickle_only(adapter_dir)  # PEFT would otherwise fall back to adapter_model.bin
            base = load_base_model(meta["base_model"], kind, meta["labels"] or None)
            model = PeftModel.from_pretrained(base, adapter_dir)
        else:
            refuse_pickle_only(path)
            model = AUTO_CLASSES[kind].from_pretrained(path, use_safetensors=True)
        tokenizer = load_tokenizer(str(path))
        if device:
            model.to(device)
        return cls(model, tokenizer, meta)

    def logits(self, texts: list[str]) -> tuple[list[np.ndarray], list[dict]]:
        return batched_logits(
            self.model,
            self.tokenizer,
            texts,
            self.meta["max_length"],
            self.batch_size,
            return_offsets=self.task.kind == "token",
        )


def best_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
