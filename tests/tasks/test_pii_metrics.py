"""Entity-level PII scores and token accuracy."""

import pytest

from loraroute.tasks.pii_metrics import entity_metrics, token_accuracy


def test_entity_metrics_matches_hand_computed_example():
    P = lambda t, s, e: {"entity_type": t, "start": s, "end": e}  # noqa: E731
    gold = [[P("PERSON", 0, 4), P("EMAIL_ADDRESS", 10, 20)],
            [P("PERSON", 0, 5), P("PHONE_NUMBER", 8, 12)],
            [P("US_SSN", 0, 11)]]
    pred = [[P("PERSON", 0, 4), P("EMAIL_ADDRESS", 10, 19)],           # exact, boundary miss
            [P("PERSON", 0, 5), P("DATE_TIME", 8, 12), P("PERSON", 20, 25)],  # exact, type, spurious
            []]                                                         # missed
    m = entity_metrics(gold, pred)
    assert (m["micro"]["tp"], m["micro"]["fp"], m["micro"]["fn"]) == (2, 3, 3)
    assert m["micro"]["precision"] == pytest.approx(0.4)
    assert m["micro"]["recall"] == pytest.approx(0.4)
    assert m["micro"]["f1"] == pytest.approx(0.4) and m["micro"]["f2"] == pytest.approx(0.4)
    person = m["per_type"]["PERSON"]
    assert person["precision"] == pytest.approx(2 / 3) and person["recall"] == 1.0
    assert person["f1"] == pytest.approx(0.8) and person["f2"] == pytest.approx(10 / 11)
    assert person["support"] == 2 and m["per_type"]["DATE_TIME"]["support"] == 0
    assert set(m["per_type"]) == {"PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "DATE_TIME"}
    assert m["macro"]["precision"] == pytest.approx((2 / 3) / 5)
    assert m["macro"]["recall"] == pytest.approx(1 / 5)
    assert m["macro"]["f1"] == pytest.approx(0.8 / 5)
    assert m["macro"]["f2"] == pytest.approx((10 / 11) / 5)
    assert m["confusion"] == {
        "PERSON": {"PERSON": 2, "spurious": 1}, "EMAIL_ADDRESS": {"EMAIL_ADDRESS": 1},
        "PHONE_NUMBER": {"DATE_TIME": 1}, "US_SSN": {"missed": 1}}


def test_f2_weights_recall_more_than_precision():
    P = lambda s: {"entity_type": "PERSON", "start": s, "end": s + 1}  # noqa: E731
    high_recall = entity_metrics([[P(0)]], [[P(0), P(2), P(4)]])["micro"]   # P=1/3, R=1
    high_precision = entity_metrics([[P(0), P(2), P(4)]], [[P(0)]])["micro"]  # P=1, R=1/3
    assert high_recall["f1"] == pytest.approx(high_precision["f1"])
    assert high_recall["f2"] == pytest.approx(5 * (1 / 3) / (4 / 3 + 1))
    assert high_recall["f2"] > high_precision["f2"]


def test_token_accuracy_ignores_minus_100():
    assert token_accuracy([[-100, 1, 0, -100], [2, 2]], [[5, 1, 1, 0], [2, 0]]) == 0.5
