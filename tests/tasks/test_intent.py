"""Intent specifics: the low-confidence fallback, the offline data mix and the natural-prompt report."""

import json

import pytest

from loraroute.cli import main
from loraroute.data.intent_requests import load_natural_eval_set
from loraroute.data.text import duplicate_key
from loraroute.inference import Predictor
from loraroute.tasks.intent import IntentConfig, IntentTask

TEXTS = ["question: integral matrix prime", "question: tenant court appeal"]


@pytest.fixture(scope="module")
def fallback_model(tiny_encoder, tmp_path_factory):
    from loraroute.training import train_task
    from tests.conftest import write_intent_jsonl

    tmp = tmp_path_factory.mktemp("intent")
    cfg = IntentConfig(
        model=str(tiny_encoder("bert")),
        data=str(write_intent_jsonl(tmp / "d.jsonl")),
        output_dir=str(tmp),
        name="m",
        epochs=2,
        batch_size=8,
        max_length=32,
        rank=4,
        precision="fp32",
        fallback_threshold=0.99,
    )
    return train_task(IntentTask(), cfg).artifact_dir


def test_fallback_threshold_is_stored_and_applied_by_predict(fallback_model):
    settings = json.loads((fallback_model / "lora_config.json").read_text())["task_settings"]
    assert settings == {"fallback_threshold": 0.99, "fallback_label": "other"}
    answers = Predictor.load(fallback_model).predict(TEXTS)
    # a 3-class model after 2 epochs is never 99% sure: every answer falls back to "other"
    assert all(a["confidence"] < 0.99 for a in answers)
    assert [a["label"] for a in answers] == ["other", "other"] and all(a["fallback"] for a in answers)


def test_threshold_option_overrides_the_stored_fallback(fallback_model, capsys):
    answers = Predictor.load(fallback_model).predict(TEXTS, threshold=0.0)
    assert all(not a["fallback"] and a["label"] in {"math", "law", "biology"} for a in answers)
    assert main(["predict", "--model", str(fallback_model), "--threshold", "0", TEXTS[0]]) == 0
    assert json.loads(capsys.readouterr().out)["fallback"] is False


def test_offline_training_data_never_contains_a_natural_eval_prompt():
    task = IntentTask()
    records, notes = task.offline_records(IntentConfig(request_prompts_per_class=200))
    natural = {duplicate_key(r["text"]) for r in load_natural_eval_set()}
    assert not natural & {duplicate_key(r["text"]) for r in records}
    sources = {r["source"] for r in records}
    assert sources == {"mmlu", "request_templates"}
    assert notes["generated_near_duplicates_of_eval_removed"] >= 0


def test_router_mapping_relabels_accounting_as_business():
    task = IntentTask()
    router, _ = task.offline_records(IntentConfig(request_prompts_per_class=0, mapping="router"))
    mmlu, _ = task.offline_records(IntentConfig(request_prompts_per_class=0, mapping="mmlu"))
    accounting = [i for i, r in enumerate(mmlu) if r["subject"] == "professional accounting"]
    assert accounting and all(mmlu[i]["label"] == "other" and router[i]["label"] == "business" for i in accounting)


def test_summary_adds_the_natural_prompt_sets_scores_when_the_report_has_them():
    report = {"split_sizes": {"test": 2}, "test": {"accuracy": 0.5}}
    assert "Natural-prompt set" not in IntentTask().summary(report)
    natural = IntentTask().summary({**report, "natural": {"accuracy": 0.25, "num_examples": 4}})
    assert natural.endswith("\n\nNatural-prompt set:\n| metric | value |\n|---|---|\n| accuracy | 0.2500 |")
