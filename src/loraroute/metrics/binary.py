"""Binary detector metrics measured the way the field reports them: ROC/PR AUC, recall at a fixed false-positive
rate, and everything at one decision threshold chosen on validation data for a target false-positive rate.

scikit-learn is imported inside the functions that need it, so ``reports`` can import this module for free."""

from __future__ import annotations

from typing import Any

import numpy as np


def as_binary(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    """Labels as 0/1 ints and scores as float64, both 1-D of equal length, or a ValueError saying what is wrong."""
    y, s = np.asarray(y_true).astype(int), np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"labels and scores must be 1-D of equal length, got {y.shape} and {s.shape}")
    if not set(np.unique(y)) <= {0, 1}:
        raise ValueError("labels must be 0 (negative) or 1 (positive)")
    return y, s


def threshold_for_fpr(y_true, scores, target_fpr: float) -> float:
    """The lowest threshold (``score >= t`` is positive) whose false-positive rate on these data is <= target.

    With k = floor(target x negatives) false positives allowed, the threshold must lie above the (k+1)-th highest
    negative score; it is placed halfway to the next higher score (any value there has the same confusion matrix
    on these data, and the midpoint leaves the most room either side on new data). Lowest = highest recall.
    """
    if not 0.0 <= target_fpr <= 1.0:
        raise ValueError(f"target_fpr must be in [0, 1], got {target_fpr}")
    y, s = as_binary(y_true, scores)
    neg = np.sort(s[y == 0])[::-1]
    if len(neg) == 0:
        raise ValueError("threshold_for_fpr needs at least one negative (benign) example")
    k = int(np.floor(target_fpr * len(neg) + 1e-9))
    if k >= len(neg):
        return float(s.min())
    edge = neg[k]
    above = s[s > edge]
    return float((edge + above.min()) / 2) if len(above) else float(np.nextafter(edge, np.inf))


def recall_at_fpr(y_true, scores, target_fpr: float) -> float:
    """Highest recall over thresholds whose false-positive rate is <= ``target_fpr`` (on these data)."""
    from sklearn.metrics import roc_curve

    y, s = as_binary(y_true, scores)
    if len(set(y)) < 2:
        return float("nan")
    # drop_intermediate would drop collinear ROC corners, some of which are the best point under the target
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return float(tpr[fpr <= target_fpr + 1e-12].max())


def roc_pr_curves(y: np.ndarray, s: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``((fpr, tpr), (recall, precision))``: the ROC and precision-recall curves, x first, as plotted."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    fpr, tpr, _ = roc_curve(y, s)
    prec, rec, _ = precision_recall_curve(y, s)
    return (fpr, tpr), (rec, prec)


def binary_report(y_true, scores, threshold: float) -> dict[str, Any]:
    """Threshold-free (ROC-AUC, PR-AUC, recall@1%/5% FPR) and at-``threshold`` metrics of positive-class scores."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y, s = as_binary(y_true, scores)
    pred = s >= threshold
    tp, fp = int((pred & (y == 1)).sum()), int((pred & (y == 0)).sum())
    fn, tn = int((~pred & (y == 1)).sum()), int((~pred & (y == 0)).sum())
    both = len(set(y)) == 2
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else float("nan")
    return {
        "num_examples": len(y),
        "num_positive": int(y.sum()),
        "threshold": float(threshold),
        "accuracy": float((tp + tn) / len(y)) if len(y) else float("nan"),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(2 * precision * recall / (precision + recall)) if tp else 0.0,
        "fpr": float(fp / (fp + tn)) if fp + tn else float("nan"),
        "roc_auc": float(roc_auc_score(y, s)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, s)) if both else float("nan"),
        "recall_at_1pct_fpr": recall_at_fpr(y, s, 0.01),
        "recall_at_5pct_fpr": recall_at_fpr(y, s, 0.05),
        "confusion_matrix": [[tn, fp], [fn, tp]],  # rows true (negative, positive), columns predicted
    }
