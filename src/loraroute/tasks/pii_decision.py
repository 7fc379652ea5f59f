"""The per-message PII decision and its calibration: which entities a message's answer keeps, when a message counts
as carrying PII (has_pii), and the two thresholds of both, chosen on the hand-written natural validation set."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from loraroute.data.pii_natural import NATURAL_SETS
from loraroute.data.sources import DataError
from loraroute.metrics.spans import entity_metrics, message_metrics

log = logging.getLogger("loraroute")

# Types that point at no one on their own (a date, an age, a job title, a nationality): the has_pii gate reads a
# message's strongest *other* entity, so "the moon landing in July 1969" or "I'm 34" alone is not PII, while a flagged
# message keeps these entities too. On the natural validation set, 1 of 110 PII messages holds only these types,
# and public dates were half of the first model's false alarms.
QUASI_IDENTIFIERS = frozenset({"AGE", "DATE_TIME", "NRP", "TITLE"})


def decide(entities: list[dict], threshold: float | None, gate: float | None = None) -> list[dict]:
    """A message's answer: nothing when its strongest identifying entity (:func:`strongest`) is below ``gate``
    (the calibrated has_pii threshold), else its entities at or above ``threshold``."""
    if gate is not None and strongest(entities) < gate:
        return []
    return keep(entities, threshold)


def strongest(entities: list[dict]) -> float:
    """What the has_pii gate reads: the highest confidence among entities that identify someone on their own
    (not of :data:`QUASI_IDENTIFIERS`)."""
    return max((e["confidence"] for e in entities if e["entity_type"] not in QUASI_IDENTIFIERS), default=0.0)


def keep(entities: list[dict], threshold: float | None, types: tuple[str, ...] = ()) -> list[dict]:
    """Entities at or above ``threshold`` (None keeps all), of ``types`` when given (case-insensitive, as
    upstream's ``entity_types`` option)."""
    wanted = {t.upper() for t in types}
    return [
        e
        for e in entities
        if (threshold is None or e["confidence"] >= threshold) and (not wanted or e["entity_type"].upper() in wanted)
    ]


def span_scores(
    gold: list[list[dict]], predicted: list[list[dict]], threshold: float, gate: float | None = None
) -> dict[str, Any]:
    """Exact and overlap entity F1 (micro and per type) and per-message has_pii scores of the answers
    ``decide(predicted, threshold, gate)`` would give."""
    kept = [decide(p, threshold, gate) for p in predicted]
    exact, overlap = entity_metrics(gold, kept), entity_metrics(gold, kept, match="overlap")
    return {
        "exact_f1": exact["micro"]["f1"],
        "exact_precision": exact["micro"]["precision"],
        "exact_recall": exact["micro"]["recall"],
        "overlap_f1": overlap["micro"]["f1"],
        "overlap_precision": overlap["micro"]["precision"],
        "overlap_recall": overlap["micro"]["recall"],
        "has_pii": message_metrics(gold, kept),
        "per_type": {
            t: {
                "exact_f1": v["f1"],
                "overlap_f1": overlap["per_type"].get(t, {}).get("f1", 0.0),
                "support": v["support"],
            }
            for t, v in exact["per_type"].items()
        },
    }


def calibrate(gold: list[list[dict]], predicted: list[list[dict]], target_recall: float) -> dict[str, Any]:
    """Two thresholds from (gold, predicted) on the natural validation set:

    * ``has_pii_threshold``, the gate: the highest at which has_pii recall is >= ``target_recall``. A message
      is flagged when its strongest identifying entity reaches it (:func:`strongest`), so the candidates are
      each message's.
    * ``threshold``, for the entities of a flagged message: the one of 0.05, 0.10, ... up to the gate with the
      best overlap F1 (a coarse grid, so 160 messages cannot pick a lucky value; ties go to the higher).

    One threshold for both would drop every entity less sure than the surest one of a message: on the first
    trained model, validation overlap F1 0.73 with one threshold against 0.85 with two, at the same recall and
    false-alarm rate."""
    peaks = [strongest(p) for p in predicted]
    positives = sorted((s for s, g in zip(peaks, gold) if g), reverse=True)
    if not positives:
        raise DataError("PII calibration: the natural validation set has no message with PII")
    # flagged positives at gate t = #(strongest >= t); the k-th strongest keeps recall k / n
    k = max(1, int(np.ceil(target_recall * len(positives) - 1e-9)))
    gate = float(positives[k - 1])
    grid = [round(0.05 * i, 2) for i in range(1, 20) if 0.05 * i < gate] + [gate]
    threshold = max(grid, key=lambda t: (span_scores(gold, predicted, t, gate)["overlap_f1"], t))
    at = span_scores(gold, predicted, threshold, gate)
    recall = at["has_pii"]["recall"]
    if recall < target_recall:  # messages without any identifying entity: no gate reaches the target
        log.warning(
            "PII calibration: has_pii recall %.3f on the natural validation set is below the target %.3f at any gate",
            recall,
            target_recall,
        )
    return {
        "threshold": threshold,
        "has_pii_threshold": gate,
        "target_has_pii_recall": target_recall,
        "target_reached": recall >= target_recall,
        "validation_has_pii_recall": recall,
        "validation_false_alarm_rate": at["has_pii"]["false_alarm_rate"],
        "validation_overlap_f1": at["overlap_f1"],
        "validation_exact_f1": at["exact_f1"],
        "validation_messages": len(gold),
        "set": NATURAL_SETS["validation"],
        "method": "has_pii_threshold: highest with natural-validation has_pii recall >= target; threshold: "
        "best natural-validation overlap F1 on a 0.05 grid up to it",
    }
