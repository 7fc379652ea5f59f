"""Span scores (PII): exact- and overlap-span precision, recall, F1 and F2 (micro, macro, per type), an overlap
confusion table, per-message ``has_pii`` scores, and token accuracy. Spans are ``{"entity_type", "start", "end"}``
with character offsets, ``end`` exclusive.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

# The label of tokens no loss or score counts (special tokens, continuation sub-words): torch's cross-entropy
# ignore_index default, which Hugging Face models and collators rely on.
IGNORE_INDEX = -100


def _fbeta(p: float, r: float, beta: float) -> float:
    b2 = beta * beta
    return (1 + b2) * p * r / (b2 * p + r) if (b2 * p + r) > 0 else 0.0


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": p, "recall": r, "f1": _fbeta(p, r, 1.0), "f2": _fbeta(p, r, 2.0)}


def _key(sp: dict) -> tuple[int, int, str]:
    return int(sp["start"]), int(sp["end"]), sp["entity_type"]


def _overlap_matches(gold: Sequence[dict], pred: Sequence[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    """(matched gold, unmatched pred, unmatched gold): each gold span takes the first unmatched prediction of its
    type that overlaps it, so one long prediction cannot count for two gold spans."""
    free, matched, missed = list(pred), [], []
    for gs in gold:
        hit = next(
            (
                ps
                for ps in free
                if ps["entity_type"] == gs["entity_type"] and ps["start"] < gs["end"] and gs["start"] < ps["end"]
            ),
            None,
        )
        if hit is None:
            missed.append(gs)
        else:
            free.remove(hit)
            matched.append(gs)
    return matched, free, missed


def entity_metrics(
    true_spans_per_text: Sequence[Sequence[dict]], pred_spans_per_text: Sequence[Sequence[dict]], match: str = "exact"
) -> dict[str, Any]:
    """Entity-level scores; with ``match="exact"`` a prediction is correct only with exact start, end and type,
    with ``match="overlap"`` when it has the type and shares a character with a gold span (one-to-one).

    Returns ``{"micro": {precision, recall, f1, f2, tp, fp, fn}, "macro": {precision, recall, f1,
    f2}, "per_type": {T: {precision, recall, f1, f2, support, tp, fp, fn}}, "confusion": ...}``.
    Macro values are unweighted means of the per-type values over every type seen in gold or
    predictions.  F2 is F-beta with beta=2 (recall weighted higher).  ``confusion[T]`` counts,
    per row type ``T``: ``confusion[G][P]`` = predicted spans of type P overlapping a gold span of
    type G (one count per overlapping pair, so correct spans appear on the diagonal);
    ``confusion[G]["missed"]`` = gold spans of type G that no prediction overlaps;
    ``confusion[P]["spurious"]`` = predicted spans of type P overlapping no gold span.
    """
    if len(true_spans_per_text) != len(pred_spans_per_text):
        raise ValueError(f"{len(true_spans_per_text)} gold texts vs {len(pred_spans_per_text)} predicted")
    tp: Counter = Counter()
    fp: Counter = Counter()
    fn: Counter = Counter()
    confusion: dict[str, Counter] = defaultdict(Counter)
    if match not in ("exact", "overlap"):
        raise ValueError(f"match must be 'exact' or 'overlap', not {match!r}")
    for gold, pred in zip(true_spans_per_text, pred_spans_per_text):
        if match == "overlap":
            hits, extra, missed = _overlap_matches(gold, pred)
            tp.update(sp["entity_type"] for sp in hits)
            fp.update(sp["entity_type"] for sp in extra)
            fn.update(sp["entity_type"] for sp in missed)
        else:
            g = Counter(_key(sp) for sp in gold)
            p = Counter(_key(sp) for sp in pred)
            for k, n in (g & p).items():
                tp[k[2]] += n
            for k, n in (p - g).items():
                fp[k[2]] += n
            for k, n in (g - p).items():
                fn[k[2]] += n
        for gs in gold:
            hits = [ps for ps in pred if ps["start"] < gs["end"] and gs["start"] < ps["end"]]
            for ps in hits:
                confusion[gs["entity_type"]][ps["entity_type"]] += 1
            if not hits:
                confusion[gs["entity_type"]]["missed"] += 1
        for ps in pred:
            if not any(ps["start"] < gs["end"] and gs["start"] < ps["end"] for gs in gold):
                confusion[ps["entity_type"]]["spurious"] += 1
    types_ = sorted(set(tp) | set(fp) | set(fn))
    per_type = {}
    for t in types_:
        per_type[t] = {**_prf(tp[t], fp[t], fn[t]), "support": tp[t] + fn[t], "tp": tp[t], "fp": fp[t], "fn": fn[t]}
    TP, FP, FN = sum(tp.values()), sum(fp.values()), sum(fn.values())
    micro = {**_prf(TP, FP, FN), "tp": TP, "fp": FP, "fn": FN}
    macro = {
        m: (sum(per_type[t][m] for t in types_) / len(types_) if types_ else 0.0)
        for m in ("precision", "recall", "f1", "f2")
    }
    return {
        "micro": micro,
        "macro": macro,
        "per_type": per_type,
        "confusion": {t: dict(c) for t, c in sorted(confusion.items())},
    }


def message_metrics(
    true_spans_per_text: Sequence[Sequence[dict]], pred_spans_per_text: Sequence[Sequence[dict]]
) -> dict[str, Any]:
    """Per-message ``has_pii`` scores: precision and recall over messages, and the false-alarm rate (the share of
    messages without PII that got at least one entity)."""
    gold = [bool(g) for g in true_spans_per_text]
    pred = [bool(p) for p in pred_spans_per_text]
    tp = sum(g and p for g, p in zip(gold, pred))
    fp = sum(p and not g for g, p in zip(gold, pred))
    fn = sum(g and not p for g, p in zip(gold, pred))
    negatives = sum(not g for g in gold)
    return {
        **{k: v for k, v in _prf(tp, fp, fn).items()},
        "false_alarm_rate": fp / negatives if negatives else 0.0,
        "messages": len(gold),
        "with_pii": sum(gold),
        "without_pii": negatives,
        "false_alarms": fp,
        "missed": fn,
    }


def _flatten(x: Any) -> list[int]:
    if hasattr(x, "tolist"):
        x = x.tolist()
    if isinstance(x, (list, tuple)):
        out: list[int] = []
        for v in x:
            out.extend(_flatten(v))
        return out
    return [int(x)]


def token_accuracy(labels: Any, preds: Any) -> float:
    """Share of tokens whose prediction equals the label, ignoring label -100 (flat or nested)."""
    y, p = _flatten(labels), _flatten(preds)
    if len(y) != len(p):
        raise ValueError(f"{len(y)} labels vs {len(p)} predictions")
    kept = [(a, b) for a, b in zip(y, p) if a != IGNORE_INDEX]
    return sum(a == b for a, b in kept) / len(kept) if kept else 0.0
