"""Jailbreak data variants over several seeds: the spread a single run hides, and what a variant is chosen on.

    for s in 0 1 42; do loraroute train jailbreak seed=$s --output-dir runs/base_s$s; done   # one per variant+seed
    python bench/jailbreak_seeds.py base=runs/base_s0,runs/base_s1,runs/base_s42 new=runs/new_s0,... \
        [--sets realistic,blind,families] [--target-fpr 0.03]

Each model is recalibrated here on the traffic calibration set as it stands now (``data/jailbreak_calibration.jsonl``,
at ``--target-fpr``), so runs trained before that set grew are judged by the same rule. Printed per variant: the
mean and the range over its seeds of the threshold, the calibration set's recall at that threshold and its flag rate
per family; then, on each set of ``--sets`` (default: every ``EVAL_SETS`` set), ROC-AUC, recall and benign FPR, and
the flag rate of each family group. Choose a variant on the calibration columns only: the eval sets are test data,
and the newest one (``families_blind``) should stay out of ``--sets`` until the choice is made.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from loraroute.data.jailbreak import EVAL_SETS, load_calibration_set, load_eval_set
from loraroute.metrics.reports import markdown_table


def score_run(model_dir: str, sets: dict[str, list[dict]], target_fpr: float) -> dict[str, float]:
    """One run's numbers, flat: ``calibration:recall``, ``calibration:benign:persona``, ``blind:roc_auc``, ..."""
    from loraroute.inference import Predictor

    predictor = Predictor.load(model_dir)
    task, calibration = predictor.task, load_calibration_set()
    threshold = task.calibrate(predictor, calibration, target_fpr, "traffic calibration set")["threshold"]
    out = {"threshold": threshold}
    for name, records in {"calibration": calibration, **sets}.items():
        metrics, families, _ = task.score_eval_set(predictor, records, threshold)
        out |= {f"{name}:{k}": metrics[k] for k in ("roc_auc", "recall", "benign_fpr")}
        grouped = name != "calibration"  # the calibration set's families are flat (``benign:persona``)
        out |= {f"{name}:{f}": v["flagged"] for f, v in families.items() if f.endswith(":*") == grouped}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+", metavar="NAME=DIR[,DIR...]", help="a variant and its seeds' runs")
    parser.add_argument("--sets", default=",".join(EVAL_SETS), help="eval sets to score (comma-separated)")
    parser.add_argument("--target-fpr", type=float, default=0.03, help="calibration set FPR the threshold aims for")
    args = parser.parse_args()

    variants = {}
    for spec in args.variants:
        name, sep, dirs = spec.partition("=")
        if not sep or not dirs:
            parser.error(f"{spec!r}: expected NAME=DIR[,DIR...]")
        variants[name] = dirs.split(",")
    sets = {name: load_eval_set(name) for name in filter(None, args.sets.split(","))}
    runs = {name: [score_run(d, sets, args.target_fpr) for d in dirs] for name, dirs in variants.items()}

    keys = list(dict.fromkeys(k for rs in runs.values() for r in rs for k in r))
    rows = []
    for key in keys:
        row = [key]
        for rs in runs.values():
            values = np.array([r.get(key, np.nan) for r in rs])
            row.append(f"{np.nanmean(values):.3f} ({np.nanmin(values):.3f}-{np.nanmax(values):.3f})")
        rows.append(row)
    seeds = ", ".join(f"{n}: {len(d)}" for n, d in variants.items())
    print(f"Mean (min-max) over seeds ({seeds}); flag rates are shares flagged at the recalibrated threshold\n")
    print(markdown_table(["metric", *runs], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
