"""Jailbreak detectors on every hand-written set, side by side with an independent detector as a peer.

    pip install metatronnanoguard tiktoken     # the peer: bench only (its tokenizer is a pickle, never in loraroute)
    python bench/jailbreak_peers.py models/lora_jailbreak_classifier_minilm_r16_model [MORE_MODEL_DIRS]

Rows per set (the test-only sets of ``data.jailbreak.EVAL_SETS``): each loraroute model as
``predict`` answers (decoded readings included) and without rescan, at its stored threshold; the peer, NanoGuard
(``metatronnanoguard``: a 16.8M-parameter prompt-injection transformer with bundled weights), at its own default
threshold 0.5 and with loraroute's decode-and-rescan in front of it (the highest score over the prompt and its
decoded views). Columns: ROC-AUC, recall, benign FPR. A table of flag rates per family group follows.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from loraroute.data.jailbreak import EVAL_SETS, load_eval_set
from loraroute.metrics.binary import binary_report
from loraroute.metrics.reports import markdown_table
from loraroute.tasks.jailbreak_decode import best_readings, rescan_inputs


def nanoguard_scorer():
    try:
        from nanoguard import NanoGuard
    except ImportError:
        print("(peer skipped: pip install metatronnanoguard tiktoken)", file=sys.stderr)
        return None
    guard = NanoGuard(device="cpu")

    def score(texts: list[str]) -> np.ndarray:  # in batches of 32: scan_batch pads every text to 512 tokens
        results = [r for i in range(0, len(texts), 32) for r in guard.scan_batch(texts[i : i + 32])]
        return np.array([r.injection_score for r in results], dtype=np.float64)

    return score


def with_rescan(score):
    """``score`` applied to each text and its decoded views; the highest per text (loraroute's rescan verdict)."""

    def rescored(texts: list[str]) -> np.ndarray:
        inputs, views = rescan_inputs(texts)
        flat = score(inputs)
        return flat[[row for row, _ in best_readings(flat, views)]]

    return rescored


def loraroute_scorers(model_dir: str):
    from loraroute.inference import Predictor

    predictor = Predictor.load(model_dir)
    threshold = float(predictor.meta.get("thresholds", {}).get("threshold", 0.5))
    path = Path(model_dir).resolve()  # parent/name: two runs' directories often share the lora_* name
    name = f"{path.parent.name}/{path.name.replace('lora_jailbreak_classifier_', '')}"
    task = predictor.task
    return [
        (f"loraroute {name}", lambda t: task.jailbreak_scores(predictor, t, rescan=True), threshold),
        (f"loraroute {name}, no rescan", lambda t: task.jailbreak_scores(predictor, t, rescan=False), threshold),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="loraroute jailbreak model directories")
    args = parser.parse_args()

    detectors = [d for m in args.models for d in loraroute_scorers(m)]
    peer = nanoguard_scorer()
    if peer is not None:
        detectors += [("NanoGuard (peer)", peer, 0.5), ("NanoGuard + loraroute rescan", with_rescan(peer), 0.5)]
    sets = {name: load_eval_set(name) for name in EVAL_SETS}

    rows, family_rows, seconds = [], {}, {}
    for det, score, threshold in detectors:
        start = time.perf_counter()
        for set_name, records in sets.items():
            y = np.array([r["label"] == "jailbreak" for r in records], dtype=int)
            s = score([r["text"] for r in records])
            m = binary_report(y, s, threshold)
            rows.append([set_name, det, threshold, m["roc_auc"], m["recall"], m["fpr"]])
            for group in sorted({r["family"].split(":")[0] for r in records}):
                idx = [i for i, r in enumerate(records) if r["family"].split(":")[0] == group]
                key = (set_name, group, records[idx[0]]["label"], len(idx))
                family_rows.setdefault(key, {})[det] = float((s[idx] >= threshold).mean())
        seconds[det] = time.perf_counter() - start
    print(markdown_table(["set", "detector", "threshold", "roc_auc", "recall", "benign_fpr"], rows))
    names = [d for d, _, _ in detectors]
    print("\nShare flagged as an attack, per family group (attacks: higher is better; benign: lower)\n")
    print(
        markdown_table(
            ["set", "family group", "label", "n", *names],
            [[*key, *(v.get(d, "") for d in names)] for key, v in family_rows.items()],
        )
    )
    print("\nSeconds for all sets: " + ", ".join(f"{d} {t:.0f}" for d, t in seconds.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
