"""Class weights vs none on skewed data (toxic-chat has ~2% jailbreaks; the offline default is balanced, where the
two are the same run). Builds a skewed copy of the offline set, trains the embedded MiniLM LoRA twice, prints a table.

  flock /tmp/loraroute-cpu.lock python bench/jailbreak_class_balance.py --benign 1200 --jailbreak 120
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

from loraroute.data.jailbreak import offline_jailbreak_dataset
from loraroute.metrics.reports import markdown_table
from loraroute.tasks import get_task
from loraroute.tasks.jailbreak import JailbreakConfig
from loraroute.training import train_task


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--benign", type=int, default=1200)
    p.add_argument("--jailbreak", type=int, default=120)
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args(argv)
    data = offline_jailbreak_dataset(args.seed, max(args.benign, args.jailbreak))
    rng = random.Random(args.seed)
    rows = [
        r
        for label, n in (("benign", args.benign), ("jailbreak", args.jailbreak))
        for r in rng.sample([r for r in data if r["label"] == label], n)
    ]
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "skewed.jsonl"
        path.write_text("".join(json.dumps({"text": r["text"], "label": r["label"]}) + "\n" for r in rows))
        for balance in ("none", "weights"):
            cfg = JailbreakConfig.from_dict(
                dict(
                    data=str(path),
                    output_dir=tmp,
                    name=f"cb_{balance}",
                    class_balance=balance,
                    epochs=args.epochs,
                    seed=args.seed,
                )
            )
            rep = train_task(get_task("jailbreak"), cfg).report
            t, r = rep["test"], rep["realistic"]
            table.append(
                [
                    balance,
                    t["roc_auc"],
                    t["recall_at_1pct_fpr"],
                    t["recall"],
                    t["fpr_benign"],
                    r["roc_auc"],
                    r["recall"],
                    r["benign_fpr"],
                    rep["training"]["seconds"],
                ]
            )
    print(
        f"\n{args.benign} benign / {args.jailbreak} jailbreak (offline default subsampled), {args.epochs} epochs, "
        f"threshold calibrated to validation FPR 0.01\n"
    )
    print(
        markdown_table(
            [
                "class_balance",
                "test ROC-AUC",
                "test recall@1%FPR",
                "test recall @thr",
                "test FPR @thr",
                "realistic ROC-AUC",
                "realistic recall @thr",
                "realistic FPR @thr",
                "train s",
            ],
            table,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
