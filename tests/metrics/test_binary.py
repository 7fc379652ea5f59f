"""Binary detector metrics: threshold calibration for a target false-positive rate, metrics vs scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from loraroute.metrics.binary import binary_report, recall_at_fpr, threshold_for_fpr


def test_threshold_for_fpr_on_a_constructed_score_list_has_the_known_answer():
    # 100 benign at 0.00..0.99 and 10 attacks at 0.995: 1% FPR allows one benign above the threshold, so the
    # threshold sits between the 2nd-highest benign (0.98) and the next higher score (0.99), i.e. at 0.985.
    neg = [i / 100 for i in range(100)]
    scores = neg + [0.995] * 10
    y = [0] * 100 + [1] * 10
    assert threshold_for_fpr(y, scores, 0.01) == pytest.approx(0.985)
    assert threshold_for_fpr(y, scores, 0.05) == pytest.approx(0.945)
    assert threshold_for_fpr(y, scores, 0.0) == pytest.approx((0.99 + 0.995) / 2)
    report = binary_report(y, scores, threshold_for_fpr(y, scores, 0.01))
    assert report["fpr"] == pytest.approx(0.01) and report["recall"] == 1.0


def test_threshold_for_fpr_never_exceeds_the_target_and_gives_the_best_recall_on_random_scores():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.integers(0, 2, 300)
        s = np.round(rng.normal(y * 1.5, 1.0), 1)  # rounding makes ties
        t = threshold_for_fpr(y, s, 0.05)
        fpr = ((s >= t) & (y == 0)).sum() / (y == 0).sum()
        assert fpr <= 0.05
        assert ((s >= t) & (y == 1)).sum() / y.sum() == pytest.approx(recall_at_fpr(y, s, 0.05))


def test_binary_report_matches_scikit_learn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    s = rng.random(500) * 0.6 + y * 0.3
    t = 0.55
    pred = (s >= t).astype(int)
    r = binary_report(y, s, t)
    assert r["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert r["precision"] == pytest.approx(precision_score(y, pred))
    assert r["recall"] == pytest.approx(recall_score(y, pred))
    assert r["f1"] == pytest.approx(f1_score(y, pred))
    assert r["roc_auc"] == pytest.approx(roc_auc_score(y, s))
    assert r["pr_auc"] == pytest.approx(average_precision_score(y, s))
    assert r["confusion_matrix"] == confusion_matrix(y, pred).tolist()
    # recall at FPR from a brute-force sweep over every candidate threshold
    for target, key in ((0.01, "recall_at_1pct_fpr"), (0.05, "recall_at_5pct_fpr")):
        best = max(
            ((s >= c) & (y == 1)).sum() / y.sum()
            for c in np.append(s, np.inf)
            if ((s >= c) & (y == 0)).sum() / (y == 0).sum() <= target
        )
        assert r[key] == pytest.approx(best)
