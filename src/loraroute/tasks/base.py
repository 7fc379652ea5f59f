"""The Task protocol: what a task must say so that one training, evaluation, export and serving path fits all.

A task differs only where it must: its labels, data sources, encoding, metrics and how model outputs become
answers. ``training.py`` drives a task through these hooks and never asks which task it is.

* :class:`Task`: what every task has: names, data hooks, ``evaluate`` (a :class:`Report`, nothing written),
  ``predict``, the files of its model directory, its summary and report markdown.
* :class:`EncoderTask`: an encoder with a classification head (``kind`` "sequence" or "token"): answers come from
  logits (``postprocess``); the best checkpoint is picked by ``validation_metrics``.
* :class:`GenerativeTask`: a causal LM (``kind`` "causal") that answers in text; the best checkpoint is picked by
  validation loss, answers come from generation.
* :class:`ServedTask`: the hooks ``serve`` needs, beside either of the above (intent, pii, jailbreak).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from loraroute.config import TrainConfig
from loraroute.data.splits import Splits
from loraroute.metrics.reports import Report, summary_table


class Task:
    name: ClassVar[str]
    artifact_prefix: ClassVar[str]  # lora_intent_classifier -> lora_intent_classifier_{arch}_r{rank}_model
    kind: ClassVar[str]  # "sequence" | "token" | "causal"
    config_class: ClassVar[type[TrainConfig]] = TrainConfig
    selection_metric: ClassVar[str] = "accuracy"  # validation metric that picks the best checkpoint
    selection_greater_is_better: ClassVar[bool] = True
    headline_metric: ClassVar[str] = "accuracy"  # the key of report["test"] a run is summed up by (see headline)
    save_merged: ClassVar[bool] = True
    label_map_keys: ClassVar[tuple[str, str]] = ("label_to_id", "id_to_label")  # what upstream's loader reads
    label_map_copy: ClassVar[str | None] = None  # second file name upstream readers look for
    label_map_also: ClassVar[tuple[str, str] | None] = None  # the same maps under a second pair of key names
    demo_texts: ClassVar[list[str]] = []

    # --- data --------------------------------------------------------------------------------------------
    def load_splits(self, cfg: TrainConfig) -> Splits:
        """Train/validation/test records; what loading learnt about the data (removed, capped) goes in ``notes``."""
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

    # --- evaluation --------------------------------------------------------------------------------------
    def evaluate(self, predictor, splits: Splits, cfg: TrainConfig) -> Report:
        """The full report on the test split (and the task's test-only sets). Writes nothing: the trainer writes
        the report, with its own section added, through :meth:`Report.write`."""
        raise NotImplementedError

    def report_markdown(self, report: dict) -> str:
        """``eval_report.md`` from the report's JSON alone."""
        raise NotImplementedError

    def summary(self, report: dict) -> str:
        """What ``loraroute train`` prints after a run: the test split's scores (tasks add their own sets)."""
        test = {k: v for k, v in report.get("test", {}).items() if isinstance(v, float)}
        return f"Test split ({report.get('split_sizes', {}).get('test', '?')} examples):\n" + summary_table(test)

    def headline(self, report: dict) -> float | None:
        """The one number a run is summed up by (train-all's summary): ``report["test"][headline_metric]``."""
        value = report.get("test", {}).get(self.headline_metric)
        return float(value) if isinstance(value, (int, float)) else None

    # --- answers and files -------------------------------------------------------------------------------
    def predict(self, predictor, texts: list[str], **options) -> list[dict]:
        """Answers for ``texts`` (``Predictor.predict`` calls this)."""
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

    def extra_metadata(self, cfg: TrainConfig) -> dict[str, Any]:
        """Task settings that inference needs (stored in lora_config.json under "task_settings")."""
        return {}


class EncoderTask(Task):
    """An encoder with a classification head: one label per text ("sequence") or per token ("token")."""

    def validation_metrics(self, logits: np.ndarray, label_ids: np.ndarray) -> dict[str, float]:
        """Cheap metrics on the validation split, computed by the Trainer to select the best checkpoint."""
        raise NotImplementedError

    def postprocess(
        self, texts: list[str], logits: list[np.ndarray], encodings: list[dict], meta: dict[str, Any], **options
    ) -> list[dict]:
        """Turn per-text logits into answers (label, spans, verdict): every runtime's logits go through here."""
        raise NotImplementedError

    def predict(self, predictor, texts: list[str], **options) -> list[dict]:
        logits, encodings = predictor.logits(texts)
        return self.postprocess(texts, logits, encodings, predictor.meta, **options)


class GenerativeTask(Task):
    """A causal LM that answers in text. The model directory holds the adapter only (a merged 0.6B model is 2.4 GB;
    the base is on the hub or embedded), and the best checkpoint is the one with the lowest validation loss:
    gathering full-vocabulary logits for metrics would not fit."""

    kind = "causal"
    save_merged = False
    selection_metric = "loss"  # training passes no compute_metrics for "loss": the Trainer's eval_loss decides
    selection_greater_is_better = False

    def generate(self, model, tokenizer, records: list[dict], cfg: TrainConfig) -> list[str]:
        """Greedy generations for ``records``, in order."""
        raise NotImplementedError

    def record_from_text(self, text: str, meta: dict[str, Any]) -> dict:
        """The record a caller's text stands for at predict time."""
        return {"text": text}

    def answer(self, output: str, record: dict, meta: dict[str, Any]) -> dict:
        """One generation parsed into an answer (``None`` where it names nothing, never a guess)."""
        raise NotImplementedError

    def predict(self, predictor, texts: list[str], **options) -> list[dict]:
        stored = predictor.meta.get("task_settings", {}).get("config", {})
        cfg = self.config_class(**{k: v for k, v in stored.items() if k in self.config_class.__dataclass_fields__})
        records = [self.record_from_text(text, predictor.meta) for text in texts]
        outputs = self.generate(predictor.model, predictor.tokenizer, records, cfg)
        return [self.answer(output, record, predictor.meta) for output, record in zip(outputs, records)]


class ServedTask(ABC):
    """What ``serve`` needs of a task, beside its :class:`Task` side (see ``tasks/answers.py``): answers computed
    once without request options, then shaped per request, so requests with different options share a batch.

    ``default_threshold`` is upstream's value, used when neither the request (``confidence_threshold``), the
    server's configuration nor the model directory (``stored_threshold``) gives one. What it cuts is the task's:

    =========  =====  ==========================================================================================
    task       value  meaning
    =========  =====  ==========================================================================================
    intent     0.6    a category answer under it is flagged ``low_confidence`` (its label stays)
    pii        0.5    entities under it are dropped
    jailbreak  0.7    P(jailbreak) at or above it is a jailbreak
    =========  =====  ==========================================================================================

    Intent's ``fallback_threshold`` setting is another thing: stored in the model, under it ``predict`` answers
    "other" instead of the label.
    """

    serve_name: ClassVar[str]  # the HTTP task name: intent | pii | security
    default_threshold: ClassVar[float]

    def stored_threshold(self, meta: dict[str, Any]) -> float | None:
        """A serving threshold calibrated into the model directory, if the task ships one."""
        return None

    @abstractmethod
    def serve_raw(self, predictor, texts: list[str]) -> list[dict]:
        """Option-free answers: what every request's options are later applied to."""

    @abstractmethod
    def batch_result(self, raw: dict, options, threshold: float) -> dict:
        """One entry of the batch endpoint's results."""

    @abstractmethod
    def single_response(self, raw: dict, options, threshold: float, text: str) -> dict:
        """The body of the task's single-text endpoint."""

    @abstractmethod
    def statistics(self, results: list[dict], threshold: float) -> dict:
        """The batch endpoint's statistics block over ``results``."""
