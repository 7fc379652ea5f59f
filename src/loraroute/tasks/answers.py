"""What a served task answers: per-request options, and the pieces of upstream's answer formats that tasks share.

A serving task (intent, pii, jailbreak) turns its option-free model output (``Task.predict``) into three things,
so that ``serve`` only routes:

- ``batch_result(raw, options, threshold)``: one entry of ``/api/v1/classify/batch``'s ``results``. Upstream's
  flat fields come first (``category``, ``confidence``, ``probabilities``), then ours (spans, score, threshold,
  explanation). A client that reads ``category`` works unchanged.
- ``single_response(raw, options, threshold, text)``: the body of the task's own endpoint
  (``/api/v1/classify/{intent,pii,security}``), in upstream's shape, plus our fields.
- ``statistics(results, threshold)``: upstream's ``statistics`` block over a batch's results.

``processing_time_ms`` is added by the server, which is the only one that knows the time.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AnswerOptions:
    """Every option upstream's clients send, under upstream's names (plus ``threshold``, resolved by the server).

    ``confidence_threshold`` replaces the task's threshold when it is set; the server passes the result as
    ``threshold``. Options that do not apply to a task are ignored by it, as upstream does.
    """

    return_probabilities: bool = False
    include_explanation: bool = False
    confidence_threshold: float | None = None
    # PII (upstream's PIIOptions)
    entity_types: tuple[str, ...] = ()
    return_positions: bool = False  # positions are always returned; accepted for upstream's clients
    mask_entities: bool = False
    reveal_entity_text: bool = False
    # security (upstream's SecurityOptions)
    include_reasoning: bool = False
    detection_types: tuple[str, ...] = ()


def category_statistics(results: list[dict], low: int) -> dict:
    """Upstream's block: how often each ``category`` came back, their mean ``confidence``, and ``low`` (the
    task's own count of uncertain answers)."""
    dist: dict[str, int] = {}
    for r in results:
        dist[r["category"]] = dist.get(r["category"], 0) + 1
    avg = sum(r["confidence"] for r in results) / len(results) if results else 0.0
    return {"category_distribution": dist, "avg_confidence": avg, "low_confidence_count": int(low)}


def utf8_offset(text: str, index: int) -> int:
    """Byte offset of character ``index``: upstream (Go over Rust tokenizers) reports positions in UTF-8 bytes."""
    return len(text[:index].encode("utf-8"))
