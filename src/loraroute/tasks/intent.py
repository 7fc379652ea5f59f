"""Intent: which of the 14 MMLU-Pro categories a prompt belongs to."""

from __future__ import annotations

from loraroute.config import TrainConfig
from loraroute.data.mmlu import MMLU_PRO_CATEGORIES, mmlu_intent_records
from loraroute.tasks.sequence import SequenceClassificationTask


class IntentTask(SequenceClassificationTask):
    name = "intent"
    artifact_prefix = "lora_intent_classifier"
    label_map_keys = ("category_to_idx", "idx_to_category")
    label_map_copy = "category_mapping.json"
    categories = MMLU_PRO_CATEGORIES
    demo_texts = [
        "What is the derivative of x^3 sin(x)?",
        "Can my landlord keep my security deposit for normal wear and tear?",
        "Explain how mitochondria produce ATP.",
        "Which sorting algorithm is fastest for nearly sorted arrays?",
        "What caused the fall of the Western Roman Empire?",
    ]

    def offline_records(self, cfg: TrainConfig) -> list[dict]:
        return mmlu_intent_records()

    def hub_columns(self, dataset_id: str) -> tuple[str, str]:
        if dataset_id.lower() == "tiger-lab/mmlu-pro":
            return ("question", "category")
        return self.default_columns
