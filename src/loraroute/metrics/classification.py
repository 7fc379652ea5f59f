"""Multi-class scores: softmax, expected calibration error, and one report of accuracy, macro/weighted F1,
per-class precision/recall/F1 and the confusion matrix, for class probabilities and for generated answers."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

NO_ANSWER = -1  # the predicted id of a generated answer that names no label: wrong, and in no matrix column
_DETAIL = ("per_class", "labels", "confusion_matrix")


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    z = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int = 15) -> float:
    """ECE with equal-width confidence bins (15, as in Guo et al. 2017)."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return float(ece)


def label_scores(y_true, y_pred, labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro/weighted F1, per-class P/R/F1/support and the confusion matrix (rows true, columns
    predicted) of predicted label ids; a ``NO_ANSWER`` prediction counts against its true class only."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    ids = list(range(len(labels)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=ids, zero_division=0)
    return {
        "num_examples": len(y_true),
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else 0.0,
        "macro_f1": float(f1_score(y_true, y_pred, labels=ids, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=ids, average="weighted", zero_division=0)),
        "per_class": {
            labels[i]: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i in ids
        },
        "labels": list(labels),
        # sklearn drops pairs with an id outside ``labels``, so a NO_ANSWER lands in no cell
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=ids).tolist(),
    }


def _with_summary(scores: dict[str, Any], **summary: Any) -> dict[str, Any]:
    """``scores`` with ``summary`` numbers placed after its own and before the per-class detail: the report's key
    order is the row order of its markdown summary and of eval_report.json."""
    head = {k: v for k, v in scores.items() if k not in _DETAIL}
    return {**head, **summary, **{k: scores[k] for k in _DETAIL}}


def classification_report(y_true: np.ndarray, probs: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Accuracy, macro/weighted F1, per-class P/R/F1, confusion matrix and ECE for class-probability outputs."""
    y_true = np.asarray(y_true)
    scores = label_scores(y_true, probs.argmax(axis=1), labels)
    return _with_summary(scores, ece=expected_calibration_error(probs, y_true))


def answer_report(truth: Sequence[str], answers: Sequence[str | None], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro F1, per-class P/R/F1 and the unparsed count of generated answers (label names, ``None`` for
    an answer that names no label); unparsed answers count as wrong."""
    index = {label: i for i, label in enumerate(labels)}
    y = np.array([index[t] for t in truth])
    p = np.array([index[a] if a is not None else NO_ANSWER for a in answers])
    parsed = p != NO_ANSWER
    unparsed = int((~parsed).sum())
    scores = label_scores(y, p, labels)
    del scores["weighted_f1"]  # never part of this report
    return _with_summary(
        scores,
        unparsed=unparsed,
        unparsed_rate=float(unparsed / len(y)) if len(y) else 0.0,
        accuracy_on_parsed=float((y[parsed] == p[parsed]).mean()) if parsed.any() else 0.0,
    )
