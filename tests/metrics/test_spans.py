"""Span scores: entity-level PII scores, per-message scores and token accuracy."""

import pytest

from loraroute.metrics.spans import entity_metrics, message_metrics, token_accuracy


def test_entity_metrics_matches_hand_computed_example():
    P = lambda t, s, e: {"entity_type": t, "start": s, "end": e}  # noqa: E731
    gold = [
        [P("PERSON", 0, 4), P("EMAIL_ADDRESS", 10, 20)],
        [P("PERSON", 0, 5), P("PHONE_NUMBER", 8, 12)],
        [P("US_SSN", 0, 11)],
    ]
    pred = [
        [P("PERSON", 0, 4), P("EMAIL_ADDRESS", 10, 19)],  # exact, boundary miss
        [P("PERSON", 0, 5), P("DATE_TIME", 8, 12), P("PERSON", 20, 25)],  # exact, type, spurious
        [],
    ]  # missed
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
        "PERSON": {"PERSON": 2, "spurious": 1},
        "EMAIL_ADDRESS": {"EMAIL_ADDRESS": 1},
        "PHONE_NUMBER": {"DATE_TIME": 1},
        "US_SSN": {"missed": 1},
    }


def test_f2_weights_recall_more_than_precision():
    P = lambda s: {"entity_type": "PERSON", "start": s, "end": s + 1}  # noqa: E731
    high_recall = entity_metrics([[P(0)]], [[P(0), P(2), P(4)]])["micro"]  # P=1/3, R=1
    high_precision = entity_metrics([[P(0), P(2), P(4)]], [[P(0)]])["micro"]  # P=1, R=1/3
    assert high_recall["f1"] == pytest.approx(high_precision["f1"])
    assert high_recall["f2"] == pytest.approx(5 * (1 / 3) / (4 / 3 + 1))
    assert high_recall["f2"] > high_precision["f2"]


def test_token_accuracy_ignores_minus_100():
    assert token_accuracy([[-100, 1, 0, -100], [2, 2]], [[5, 1, 1, 0], [2, 0]]) == 0.5


def span(t, s, e):
    return {"entity_type": t, "start": s, "end": e}


def test_overlap_match_counts_a_shifted_boundary_but_not_a_wrong_type_and_is_one_to_one():
    gold = [[span("PERSON", 0, 8), span("GPE", 20, 26)], [span("ZIP_CODE", 0, 5)]]
    pred = [[span("PERSON", 0, 5), span("PERSON", 3, 8), span("ORGANIZATION", 20, 26)], []]
    exact, overlap = entity_metrics(gold, pred), entity_metrics(gold, pred, match="overlap")
    assert exact["micro"]["tp"] == 0
    # one PERSON prediction matches the gold name; the second overlaps the same gold span and is a false positive
    assert (overlap["micro"]["tp"], overlap["micro"]["fp"], overlap["micro"]["fn"]) == (1, 2, 2)
    assert overlap["per_type"]["PERSON"]["f1"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="match"):
        entity_metrics(gold, pred, match="fuzzy")


def test_message_metrics_count_messages_not_entities():
    gold = [[span("PERSON", 0, 3)], [span("PERSON", 0, 3)], [], [], []]
    pred = [[span("GPE", 5, 9), span("GPE", 10, 12)], [], [span("AGE", 0, 2)], [], []]
    m = message_metrics(gold, pred)
    assert (m["precision"], m["recall"]) == (0.5, 0.5)
    assert m["false_alarm_rate"] == pytest.approx(1 / 3) and (m["false_alarms"], m["missed"]) == (1, 1)
    assert (m["with_pii"], m["without_pii"]) == (2, 3)
