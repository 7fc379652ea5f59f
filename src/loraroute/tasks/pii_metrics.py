"""Entity-level PII scores: exact-span precision, recall, F1 and F2 (micro, macro, per type), an overlap confusion
table, and token accuracy. Spans are ``{"entity_type", "start", "end"}`` with character offsets, ``end`` exclusive.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Sequence

from loraroute.tasks.pii_spans import IGNORE_INDEX


def _fbeta(p: float, r: float, beta: float) -> float:
    b2 = beta * beta
    return (1 + b2) * p * r / (b2 * p + r) if (b2 * p + r) > 0 else 0.0


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": p, "recall": r, "f1": _fbeta(p, r, 1.0), "f2": _fbeta(p, r, 2.0)}


def _key(sp: dict) -> tuple[int, int, str]:
    return int(sp["start"]), int(sp["end"]), sp["entity_type"]


def entity_metrics(true_spans_per_text: Sequence[Sequence[dict]],
                   pred_spans_per_text: Sequence[Sequence[dict]]) -> dict[str, Any]:
    """Entity-level scores; a prediction is correct only with exact start, end and type.

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
        raise ValueError(f"{len(true_spans_per_text)} gold texts vs "
                         f"{len(pred_spans_per_text)} predicted")
    tp: Counter = Counter()
    fp: Counter = Counter()
    fn: Counter = Counter()
    confusion: dict[str, Counter] = defaultdict(Counter)
    for gold, pred in zip(true_spans_per_text, pred_spans_per_text):
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
        per_type[t] = {**_prf(tp[t], fp[t], fn[t]), "support": tp[t] + fn[t],
                       "tp": tp[t], "fp": fp[t], "fn": fn[t]}
    TP, FP, FN = sum(tp.values()), sum(fp.values()), sum(fn.values())
    micro = {**_prf(TP, FP, FN), "tp": TP, "fp": FP, "fn": FN}
    macro = {m: (sum(per_type[t][m] for t in types_) / len(types_) if types_ else 0.0)
             for m in ("precision", "recall", "f1", "f2")}
    return {"micro": micro, "macro": macro, "per_type": per_type,
            "confusion": {t: dict(c) for t, c in sorted(confusion.items())}}


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
