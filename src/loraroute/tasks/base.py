"""The Task protocol: what a task must say so that one training, evaluation, export and serving path fits all.

A task differs only where it must: its labels, data sources, encoding, metrics and how raw logits become answers.
``train.py`` drives a task through these hooks and never asks which task it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from loraroute.config import TrainConfig
from loraroute.data.splits import Splits


class Task:
    name: ClassVar[str]
    artifact_prefix: ClassVar[str]  # lora_intent_classifier -> lora_intent_classifier_{arch}_r{rank}_model
    kind: ClassVar[str]  # "sequence" | "token" | "causal"
    config_class: ClassVar[type[TrainConfig]] = TrainConfig
    selection_metric: ClassVar[str] = "accuracy"  # validation metric that picks the best checkpoint
    selection_greater_is_better: ClassVar[bool] = True
    headline_metric: ClassVar[str] = "accuracy"  # key of report["test"] that summaries show
    save_merged: ClassVar[bool] = True  # causal LMs ship the adapter only (a merged 0.6B is 2.4 GB)
    label_map_keys: ClassVar[tuple[str, str]] = ("label_to_id", "id_to_label")  # what upstream's loader reads
    label_map_copy: ClassVar[str | None] = None  # second file name upstream readers look for
    label_map_also: ClassVar[tuple[str, str] | None] = None  # the same maps under a second pair of key names
    demo_texts: ClassVar[list[str]] = []
    serve_name: ClassVar[str | None] = None  # the HTTP task name (intent | pii | security); None: not served
    serve_threshold: ClassVar[float] = 0.5  # default serving threshold; its meaning is the task's

    # --- data --------------------------------------------------------------------------------------------
    def load_splits(self, cfg: TrainConfig) -> Splits:
        raise NotImplementedError

    def labels(self, splits: Splits, cfg: TrainConfig) -> list[str]:
        raise NotImplementedError

    def encode(self, records: list[dict], tokenizer, label2id: dict[str, int], cfg: TrainConfig):
        """A ``datasets.Dataset`` with input_ids, attention_mask, labels and length."""
        raise NotImplementedError

    def collator(self, tokenizer):
        raise NotImplementedError

    def loss_function(self, cfg: TrainConfig, train: list[dict]):
        """A Trainer ``compute_loss_func`` (e.g. class-weighted loss), or None for the model's own loss."""
        return None

    # --- metrics -----------------------------------------------------------------------------------------
    def validation_metrics(self, logits: np.ndarray, label_ids: np.ndarray) -> dict[str, float]:
        """Cheap metrics on the validation split, computed by the Trainer to select the best checkpoint."""
        raise NotImplementedError

    def evaluate(self, predictor, splits: Splits, cfg: TrainConfig, out_dir: Path) -> dict[str, Any]:
        """Full report on the test split; writes eval_report.{json,md} and plots into ``out_dir``."""
        raise NotImplementedError

    # --- answers -----------------------------------------------------------------------------------------
    def postprocess(
        self, texts: list[str], logits: list[np.ndarray], encodings: list[dict], meta: dict[str, Any], **options
    ) -> list[dict]:
        """Turn per-text logits into answers (label, spans, verdict)."""
        raise NotImplementedError

    def label_files(self, labels: list[str]) -> dict[str, dict]:
        """``label_mapping.json`` (and upstream's second name for it) with the task's key names (and the second
        pair, ``label_map_also``, beside them)."""
        mapping: dict[str, dict] = {}
        for to_id, to_label in filter(None, (self.label_map_keys, self.label_map_also)):
            mapping[to_id] = {label: i for i, label in enumerate(labels)}
            mapping[to_label] = {str(i): label for i, label in enumerate(labels)}
        files = {"label_mapping.json": mapping}
        if self.label_map_copy:
            files[self.label_map_copy] = mapping
        return files

    def artifact_files(self, labels: list[str], cfg: TrainConfig) -> dict[str, Any]:
        """JSON files written at the top of the model directory (default: the label maps)."""
        return self.label_files(labels)

    def predict(self, predictor, texts: list[str], **options) -> list[dict]:
        """Answers for ``texts`` (``Predictor.predict`` calls this); generative tasks override it."""
        logits, encodings = predictor.logits(texts)
        return self.postprocess(texts, logits, encodings, predictor.meta, **options)

    def extra_metadata(self, cfg: TrainConfig) -> dict[str, Any]:
        """Task settings that inference needs (stored in lora_config.json under "task_settings")."""
        return {}

    # --- served answers (serving tasks only; see tasks/answers.py) ------------------------------------------
    def stored_threshold(self, meta: dict[str, Any]) -> float | None:
        """A serving threshold calibrated into the model directory, if the task ships one."""
        return None

    def serve_raw(self, predictor, texts: list[str]) -> list[dict]:
        """Option-free answers: what every request's options are later applied to (so requests share a batch)."""
        raise NotImplementedError(f"task {self.name!r} is not served")

    def batch_result(self, raw: dict, options, threshold: float) -> dict:
        raise NotImplementedError(f"task {self.name!r} is not served")

    def single_response(self, raw: dict, options, threshold: float, text: str) -> dict:
        raise NotImplementedError(f"task {self.name!r} is not served")

    def statistics(self, results: list[dict], threshold: float) -> dict:
        raise NotImplementedError(f"task {self.name!r} is not served")
