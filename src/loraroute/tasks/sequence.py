"""Shared machinery for text -> one label tasks (intent, jailbreak): encoding, metrics, answers."""

from __future__ import annotations

import numpy as np

from loraroute.config import TrainConfig
from loraroute.data.sources import DataError, read_rows, text_label_records
from loraroute.data.splits import Splits, split_records, stratified_sample
from loraroute.metrics.classification import classification_report, softmax
from loraroute.metrics.reports import Figure, Report, confusion_figure, per_class_table, summary_table
from loraroute.tasks.base import EncoderTask


class SequenceClassificationTask(EncoderTask):
    kind = "sequence"
    selection_metric = "accuracy"
    default_columns = ("text", "label")

    def offline_records(self, cfg: TrainConfig) -> tuple[list[dict], dict]:
        """The task's own data, for ``cfg.data`` None: (records, notes on them for ``Splits.notes``)."""
        raise NotImplementedError

    def hub_columns(self, dataset_id: str) -> tuple[str, str]:
        """Column names for a known hub dataset; anything else uses the generic default."""
        return self.default_columns

    def read_records(self, cfg: TrainConfig) -> list[dict]:
        """Records of ``cfg.data`` (a hub dataset or a local file)."""
        text_col, label_col = self.hub_columns(cfg.data)
        rows = read_rows(cfg.data, cfg.data_config, cfg.data_split)
        return text_label_records(rows, cfg.text_column or text_col, cfg.label_column or label_col, cfg.data)

    def load_splits(self, cfg: TrainConfig) -> Splits:
        records, notes = self.offline_records(cfg) if cfg.data is None else (self.read_records(cfg), {})
        if cfg.max_samples:
            records = stratified_sample(records, cfg.max_samples, cfg.seed)
        splits = split_records(records, cfg.val_size, cfg.test_size, cfg.seed, label_key="label")
        splits.notes.update(notes)
        if len({r["label"] for r in splits.train}) < 2:
            raise DataError(f"{cfg.data or 'offline data'}: training split has fewer than two labels")
        return splits

    def labels(self, splits: Splits, cfg: TrainConfig) -> list[str]:
        return sorted({r["label"] for r in splits.train + splits.validation + splits.test})

    def encode(self, records, tokenizer, label2id, cfg):
        import datasets

        enc = tokenizer([r["text"] for r in records], truncation=True, max_length=cfg.max_length)
        unknown = {r["label"] for r in records} - set(label2id)
        if unknown:
            raise DataError(f"labels {sorted(unknown)} were not seen in training data")
        return datasets.Dataset.from_dict(
            {
                "input_ids": enc["input_ids"],
                "attention_mask": enc["attention_mask"],
                "labels": [label2id[r["label"]] for r in records],
                "length": [len(ids) for ids in enc["input_ids"]],
            }
        )

    def collator(self, tokenizer):
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8)

    def validation_metrics(self, logits, label_ids):
        from sklearn.metrics import f1_score

        pred = logits.argmax(-1)
        return {
            "accuracy": float((pred == label_ids).mean()),
            "macro_f1": float(f1_score(label_ids, pred, average="macro", zero_division=0)),
        }

    # --- evaluation ----------------------------------------------------------------------------------------
    def scores(self, predictor, records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        """(true ids, probabilities) of ``records`` under ``predictor``."""
        logits = predictor.logits([r["text"] for r in records])[0]
        probs = softmax(np.stack(logits))
        y = np.array([predictor.label2id[r["label"]] for r in records])
        return y, probs

    def evaluate(self, predictor, splits, cfg) -> Report:
        y, probs = self.scores(predictor, splits.test)
        report = {
            "task": self.name,
            "split_sizes": splits.sizes(),
            "data_notes": splits.notes,
            "test": classification_report(y, probs, predictor.labels),
        }
        figures = [
            confusion_figure(
                report["test"]["confusion_matrix"],
                predictor.labels,
                "confusion_matrix.png",
                f"{self.name}: test confusion matrix",
            )
        ]
        figures += self.extend_report(report, predictor, splits, cfg, y, probs)
        return Report(report, self.report_markdown(report), figures)

    def extend_report(
        self, report: dict, predictor, splits: Splits, cfg: TrainConfig, y: np.ndarray, probs: np.ndarray
    ) -> list[Figure]:
        """Add task-specific sections to ``report`` (gets the test scores already computed); returns their
        figures."""
        return []

    def report_markdown(self, report: dict) -> str:
        test = report["test"]
        return "\n\n".join(
            [
                f"# {self.name} evaluation",
                f"Splits: {report['split_sizes']}; notes: {report['data_notes']}",
                "## Test split\n\n"
                + summary_table({k: test[k] for k in ("num_examples", "accuracy", "macro_f1", "weighted_f1", "ece")}),
                "## Per class\n\n" + per_class_table(test),
                "![confusion matrix](confusion_matrix.png)",
            ]
        )

    def postprocess(self, texts, logits, encodings, meta, return_probabilities=True, **options):
        labels = meta["labels"]
        out = []
        for row in logits:
            probs = softmax(np.asarray(row, dtype=np.float64))
            best = int(probs.argmax())
            result = {"label": labels[best], "confidence": float(probs[best])}
            if return_probabilities:
                result["probabilities"] = {label: float(p) for label, p in zip(labels, probs)}
            out.append(result)
        return out
