"""Multi-class scores: the report on a hand-worked case, ECE, and generated answers scored by the same code."""

from __future__ import annotations

import numpy as np
import pytest

from loraroute.metrics.classification import answer_report, classification_report, expected_calibration_error

CATS = ["biology", "law", "math"]


def one_hot(ids, n):
    return np.eye(n)[ids]


def test_classification_report_matches_a_hand_worked_case():
    # true a a b c, predicted a b b b: a P=1 R=1/2, b P=1/3 R=1, c never predicted
    report = classification_report([0, 0, 1, 2], one_hot([0, 1, 1, 1], 3), ["a", "b", "c"])
    assert report["num_examples"] == 4
    assert report["accuracy"] == pytest.approx(0.5)
    assert report["per_class"]["a"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert report["per_class"]["b"] == pytest.approx({"precision": 1 / 3, "recall": 1.0, "f1": 0.5, "support": 1})
    assert report["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert report["macro_f1"] == pytest.approx((2 / 3 + 0.5 + 0.0) / 3)
    assert report["weighted_f1"] == pytest.approx((2 * 2 / 3 + 0.5 + 0.0) / 4)
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    assert report["labels"] == ["a", "b", "c"]


def test_classification_report_keys_keep_their_order():
    # the order is the row order of the markdown summary and of eval_report.json
    report = classification_report([0, 1], one_hot([0, 1], 2), ["a", "b"])
    assert list(report) == [
        "num_examples",
        "accuracy",
        "macro_f1",
        "weighted_f1",
        "ece",
        "per_class",
        "labels",
        "confusion_matrix",
    ]


def test_expected_calibration_error_matches_a_hand_worked_case():
    # two at confidence 0.9 (one right: |0.5 - 0.9| = 0.4) and two at 0.7 (both right: 0.3), half the data each
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.3, 0.7], [0.7, 0.3]])
    y = np.array([0, 1, 1, 0])
    assert expected_calibration_error(probs, y) == pytest.approx(0.5 * 0.4 + 0.5 * 0.3)
    assert classification_report(y, probs, ["a", "b"])["ece"] == pytest.approx(0.35)


def test_expected_calibration_error_is_zero_when_confidence_equals_accuracy():
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(probs, np.array([0, 1])) == 0.0


def test_answer_report_counts_unparsed_answers_as_wrong():
    report = answer_report(["math", "law", "biology", "math"], ["math", None, "law", None], CATS)
    assert report["num_examples"] == 4 and report["unparsed"] == 2
    assert report["accuracy"] == pytest.approx(0.25)
    assert report["accuracy_on_parsed"] == pytest.approx(0.5)
    assert report["per_class"]["math"]["recall"] == pytest.approx(0.5)
    assert sum(map(sum, report["confusion_matrix"])) == 2  # only parsed answers enter the matrix


def test_answer_report_keys_keep_their_order():
    report = answer_report(["math"], [None], CATS)
    assert list(report) == [
        "num_examples",
        "accuracy",
        "macro_f1",
        "unparsed",
        "unparsed_rate",
        "accuracy_on_parsed",
        "per_class",
        "labels",
        "confusion_matrix",
    ]
    assert report["unparsed_rate"] == 1.0 and report["accuracy_on_parsed"] == 0.0


def test_answer_report_agrees_with_classification_report_when_every_answer_parses():
    rng = np.random.default_rng(0)
    y, pred = rng.integers(0, 3, 60), rng.integers(0, 3, 60)
    from_probs = classification_report(y, one_hot(pred, 3), CATS)
    from_answers = answer_report([CATS[i] for i in y], [CATS[i] for i in pred], CATS)
    for key in ("num_examples", "accuracy", "macro_f1", "per_class", "labels", "confusion_matrix"):
        assert from_answers[key] == from_probs[key], key
    assert from_answers["unparsed"] == 0 and from_answers["accuracy_on_parsed"] == from_probs["accuracy"]


def test_an_unparsed_answer_lowers_recall_of_its_class_and_no_precision():
    parsed = answer_report(["math", "law"], ["math", "law"], CATS)
    one_unparsed = answer_report(["math", "law"], ["math", None], CATS)
    assert one_unparsed["per_class"]["law"]["recall"] == 0.0
    assert one_unparsed["per_class"]["math"] == parsed["per_class"]["math"]
