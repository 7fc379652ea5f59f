"""Specialist solvers on tiny random models: settings table, data sources, leakage, baseline vs trained comparison."""

from __future__ import annotations

import json
import random

import pytest
from transformers import TrainerCallback

from loraroute.data.leakage import DataLeakageError
from loraroute.data.mc_sources import convert_source, local_mc, mc_record
from loraroute.data.mmlu import MMLU_PRO_CATEGORIES
from loraroute.data.sources import DataError
from loraroute.models.loading import load_base_model, load_tokenizer
from loraroute.tasks import get_task
from loraroute.tasks.causal_lm import extract_choice
from loraroute.tasks.solver import SPECIALISTS, SolverConfig, score
from loraroute.train_all import specialist_configs
from loraroute.training import train_task


def write_mc(path, n, seed, prefix="What is"):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = rng.randint(1, 90), rng.randint(1, 90)
        rows.append(
            {
                "question": f"{prefix} {a} plus {b} in exercise {seed}-{i}?",
                "options": [str(a + b), str(a + b + 1), str(a * b), str(abs(a - b) + 100)],
                "answer": "A",
                "category": ["math", "physics"][i % 2],
                "reasoning": f"{a} + {b} = {a + b}.",
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def cfg_for(model_dir, out, **overrides):
    values = dict(
        model=str(model_dir),
        output_dir=str(out),
        epochs=1,
        batch_size=8,
        rank=4,
        learning_rate=1e-2,
        eval_size=6,
        max_new_tokens=6,
        precision="fp32",
        seed=3,
        name="solver",
    )
    values.update(overrides)
    return SolverConfig.from_dict(values)


def test_specialists_cover_the_fourteen_categories_exactly_once():
    cats = [c for spec in SPECIALISTS.values() for c in spec.categories]
    assert sorted(cats) == sorted(MMLU_PRO_CATEGORIES)
    assert len(SPECIALISTS) == 6 and SPECIALISTS["math-reasoner"].categories == ("math", "physics", "engineering")


def test_unset_settings_come_from_the_specialist_and_given_ones_win():
    law = SolverConfig.from_dict({"specialist": "law"})
    assert (law.rank, law.max_length, law.max_new_tokens) == (8, 1024, SPECIALISTS["law"].cot_tokens)
    assert SolverConfig.from_dict({"specialist": "law", "cot": False}).max_new_tokens == 16
    configs = specialist_configs({"rank": 4, "eval_size": 10})
    assert [c.specialist for c in configs] == list(SPECIALISTS)
    assert all(c.rank == 4 and c.eval_size == 10 for c in configs)
    assert configs[0].learning_rate == SPECIALISTS["math-reasoner"].learning_rate
    with pytest.raises(ValueError, match="specialist"):
        SolverConfig.from_dict({"specialist": "astrology"})


def test_local_questions_are_validated_with_the_line_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"question": "q?", "options": ["a", "b"], "answer": "B"}\n'
        '{"question": "q2?", "options": ["a", "b"], "answer": "E"}\n'
    )
    with pytest.raises(DataError, match=r"bad.jsonl:2: answer 'E' is out of range"):
        local_mc(str(path), "math")
    assert mc_record("q", ["x", "y", "z"], 2, "Math", "s")["answer"] == "C"


def test_no_leakage_sources_become_lettered_questions_with_reasoning():
    gsm = convert_source(
        "gsm8k",
        [{"question": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = <<3+4=7>>7 apples.\n#### 7"}],
        "math-reasoner",
        seed=0,
    )[0]
    assert gsm["options"][ord(gsm["answer"]) - 65] == "7" and len(set(gsm["options"])) == len(gsm["options"]) >= 3
    assert gsm["reasoning"] == "3 + 4 = 7 apples." and gsm["source"] == "gsm8k"
    arc = convert_source(
        "arc",
        [{"question": "Which is a gas?", "answerKey": "B", "choices": {"label": ["A", "B"], "text": ["ice", "steam"]}}],
        "s",
        seed=0,
    )[0]
    assert arc["options"] == ["ice", "steam"] and arc["answer"] == "B"
    sciq = convert_source(
        "sciq",
        [
            {
                "question": "q?",
                "correct_answer": "ok",
                "distractor1": "x",
                "distractor2": "y",
                "distractor3": "z",
                "support": "because",
            }
        ],
        "s",
        seed=1,
    )[0]
    assert sciq["options"][ord(sciq["answer"]) - 65] == "ok" and sciq["reasoning"] == "because"
    strategy = convert_source(
        "strategyqa", [{"question": "Can fish fly?", "answer": False, "facts": ["Fish swim."]}], "s", seed=0
    )[0]
    assert strategy["options"] == ["Yes", "No"] and strategy["answer"] == "B"
    with pytest.raises(ValueError, match="unknown training source"):
        convert_source("mmlu-pro", [], "s", seed=0)


def test_score_counts_unparsed_as_wrong_per_category():
    records = [
        {"answer": "A", "category": "math"},
        {"answer": "B", "category": "math"},
        {"answer": "C", "category": "physics"},
    ]
    out = score(records, ["A", None, "D"])
    assert (out["n"], out["correct"], out["unparsed"]) == (3, 1, 1)
    assert out["per_category"]["math"] == {"n": 2, "correct": 1, "accuracy": 0.5, "unparsed": 1}
    assert out["per_category"]["physics"]["accuracy"] == 0.0
    assert out["answer_counts"] == {"A": 1, "D": 1, "unparsed": 1}


def test_split_by_question_drops_near_duplicates_of_evaluation_questions(tmp_path):
    passage = (
        "This question refers to the following information: the council met in the old town hall to "
        "debate the new tax on grain and wool imports from the northern provinces"
    )
    rows = [
        {
            "question": f"{passage}. Which group gained most ({i})?",
            "options": ["a", "b", "c", "d"],
            "answer": "A",
            "category": "math",
        }
        for i in range(6)
    ]
    rows += [
        {
            "question": f"Unrelated exercise number {i} about limits?",
            "options": ["1", "2", "3", "4"],
            "answer": "B",
            "category": "math",
        }
        for i in range(40)
    ]
    (tmp_path / "pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = cfg_for(tmp_path, tmp_path, data=str(tmp_path / "pool.jsonl"), eval_size=20)
    splits = get_task("solver").load_splits(cfg)
    test_texts = {r["text"] for r in splits.test}
    assert not test_texts & {r["text"] for r in splits.train + splits.validation}
    assert any(passage in t for t in test_texts)  # seed 3 holds out passage questions ...
    assert splits.notes["train_near_duplicates_removed"] == 6 - sum(passage in t for t in test_texts)
    assert not any(passage in r["question"] for r in splits.train + splits.validation)  # ... and their siblings left
    assert splits.notes["leakage_check"].startswith("passed")


class TrainingStarted(TrainerCallback):
    started = False

    def on_train_begin(self, args, state, control, **kwargs):
        TrainingStarted.started = True


def test_planted_leak_fails_the_run_before_training(tiny_causal_lm, tmp_path):
    train_rows = write_mc(tmp_path / "train.jsonl", 20, seed=1)
    eval_rows = write_mc(tmp_path / "eval.jsonl", 6, seed=2)
    planted = dict(train_rows[5], question=train_rows[5]["question"].upper() + "  ")  # case/space differ only
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in eval_rows + [planted]))
    cfg = cfg_for(
        tiny_causal_lm("llama"),
        tmp_path / "out",
        data=str(tmp_path / "train.jsonl"),
        eval_data=str(tmp_path / "eval.jsonl"),
        eval_size=10,
    )
    with pytest.raises(DataLeakageError, match="1 of 7 question"):
        train_task(get_task("solver"), cfg, callbacks=[TrainingStarted()])
    assert not TrainingStarted.started
    assert not (tmp_path / "out" / "solver").exists()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["qwen3", "llama"])
def test_baseline_and_trained_model_answer_the_same_held_out_questions(kind, tiny_causal_lm, tmp_path):
    write_mc(tmp_path / "train.jsonl", 24, seed=1)
    eval_rows = write_mc(tmp_path / "eval.jsonl", 6, seed=2)
    model_dir = tiny_causal_lm(kind)
    cfg = cfg_for(
        model_dir, tmp_path / "out", data=str(tmp_path / "train.jsonl"), eval_data=str(tmp_path / "eval.jsonl")
    )
    out = train_task(get_task("solver"), cfg).artifact_dir
    for name in (
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer.json",
        "solver_config.json",
        "training_comparison.json",
        "training_config.yaml",
        "eval_report.json",
        "eval_report.md",
    ):
        assert (out / name).exists(), name
    solver = json.loads((out / "solver_config.json").read_text())
    assert solver["specialist"] == "math-reasoner" and solver["categories"] == ["math", "physics", "engineering"]
    assert solver["cot"] is True and solver["no_data_leakage"] is False
    assert solver["training_sources"] == [str(tmp_path / "train.jsonl")]
    assert "{question}" in solver["prompt_template"]["user"]

    cmp = json.loads((out / "training_comparison.json").read_text())
    assert cmp["baseline"]["n"] == cmp["trained"]["n"] == len(eval_rows) == len(cmp["items"])
    report = json.loads((out / "eval_report.json").read_text())
    assert report["comparison"] == {k: cmp[k] for k in ("evaluation", "generation", "baseline", "trained")}
    assert get_task("solver").report_markdown(report) + "\n" == (out / "eval_report.md").read_text()
    assert "| category | questions | baseline accuracy |" in get_task("solver").summary(report)
    answers = sorted(r["answer"] for r in eval_rows)
    assert sorted(item["answer"] for item in cmp["items"]) == answers
    for run in ("baseline", "trained"):
        assert set(cmp[run]["per_category"]) == {"math", "physics"}
        assert sum(c["n"] for c in cmp[run]["per_category"].values()) == len(eval_rows)
        assert 0 <= cmp[run]["unparsed"] <= len(eval_rows)

    # The baseline is the base model itself: regenerate with the untouched checkpoint and compare.
    task = get_task("solver")
    base, tok = load_base_model(str(model_dir), "causal"), load_tokenizer(str(model_dir))
    records = task.load_splits(cfg).test
    expected = [extract_choice(o, r["options"]) for o, r in zip(task.generate(base, tok, records, cfg), records)]
    assert [item["baseline"] for item in cmp["items"]] == expected
