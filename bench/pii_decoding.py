"""PII answers from one trained model, decoded three ways: each word's argmax, constrained Viterbi, and Viterbi with
Presidio's recognizers (``tasks/pii_recognizers.py``, the default).

The model directory carries its training config, so the same template-disjoint validation and test splits are
rebuilt (seeded) and the logits are computed once; only the decoding differs. Entity micro P/R/F1 with exact type
and character boundaries, per split, as a Markdown table:

    flock /tmp/loraroute-cpu.lock .venv/bin/python bench/pii_decoding.py models/lora_pii_detector_minilm_r16_model
"""

from __future__ import annotations

import argparse
from pathlib import Path

from loraroute.artifacts import ModelDir
from loraroute.inference import Predictor
from loraroute.metrics.reports import markdown_table
from loraroute.metrics.spans import entity_metrics
from loraroute.tasks import get_task
from loraroute.tasks.pii import DECODINGS, PIIConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    args = parser.parse_args()

    cfg = PIIConfig.from_yaml(ModelDir(args.model_dir).training_config)
    task = get_task("pii")
    splits = task.load_splits(cfg)
    predictor = Predictor.load(args.model_dir)
    rows = []
    for part in ("validation", "test"):
        records = getattr(splits, part)
        texts = [r["text"] for r in records]
        logits, encodings = predictor.logits(texts)
        for decoding, patterns in [(d, False) for d in DECODINGS] + [("viterbi", True)]:
            answers = task.postprocess(
                texts,
                logits,
                encodings,
                predictor.meta,
                decoding=decoding,
                patterns=patterns,
                threshold=0.0,
                gate=False,
            )  # every entity, as before
            micro = entity_metrics([r["spans"] for r in records], [a["entities"] for a in answers])["micro"]
            rows.append(
                [
                    part,
                    decoding + (" + patterns" if patterns else ""),
                    len(records),
                    micro["precision"],
                    micro["recall"],
                    micro["f1"],
                ]
            )
    print(markdown_table(["split", "answers", "texts", "precision", "recall", "micro-F1"], rows))


if __name__ == "__main__":
    main()
