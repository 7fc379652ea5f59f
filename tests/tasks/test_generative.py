"""Generative intent on tiny random Qwen3 and Llama models: prompts, completion-only features, the end-to-end run."""

from __future__ import annotations

import json

import pytest

from loraroute.inference import Predictor
from loraroute.tasks import get_task
from loraroute.tasks.causal_lm import IGNORE_INDEX
from loraroute.tasks.generative import INSTRUCTION_TEMPLATE
from loraroute.training import train_task
from tests.conftest import build_chat_tokenizer

CATS = ["biology", "law", "math"]


def tiny_cfg(model_dir, data, out, **overrides):
    task = get_task("generative-intent")
    values = dict(
        model=str(model_dir),
        data=str(data),
        output_dir=str(out),
        epochs=1,
        batch_size=8,
        rank=4,
        learning_rate=1e-2,
        max_length=256,
        eval_size=6,
        max_new_tokens=4,
        precision="fp32",
        seed=3,
    )
    values.update(overrides)
    return task, task.config_class.from_dict(values)


def test_prompt_lists_the_categories_inside_the_chat_template(tmp_path):
    task, cfg = tiny_cfg(tmp_path, tmp_path / "d.jsonl", tmp_path)
    tok = build_chat_tokenizer()
    prompt = task.prompt(tok, {"text": " Which enzyme unwinds DNA? ", "_labels": CATS}, cfg)
    assert prompt.startswith("<|im_start|>user\nClassify the question")
    assert "Categories: biology, law, math\n" in prompt
    assert prompt.endswith("Q: Which enzyme unwinds DNA?<|im_end|>\n<|im_start|>assistant\n")


def test_encoded_labels_cover_only_the_category_name_and_end_of_turn(tmp_path):
    task, cfg = tiny_cfg(tmp_path, tmp_path / "d.jsonl", tmp_path)
    tok = build_chat_tokenizer()
    records = [
        {"text": "Which enzyme unwinds DNA?", "label": "biology"},
        {"text": "Sort a list in O(n log n)?", "label": "computer science"},
    ]
    ds = task.encode(records, tok, {}, cfg)
    for row, record in zip(ds, records):
        answer = [t for t in row["labels"] if t != IGNORE_INDEX]
        assert tok.decode(answer) == record["label"] + "<|im_end|>"
        assert row["length"] == len(row["input_ids"])
        assert row["labels"][: len(row["labels"]) - len(answer)] == [IGNORE_INDEX] * (len(row["labels"]) - len(answer))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["qwen3", "llama"])
def test_training_writes_adapter_label_mapping_and_a_report_with_unparsed(kind, tiny_causal_lm, intent_file, tmp_path):
    task, cfg = tiny_cfg(tiny_causal_lm(kind), intent_file, tmp_path)
    result = train_task(task, cfg)
    out = result.artifact_dir
    for name in (
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer.json",
        "label_mapping.json",
        "lora_config.json",
        "training_config.yaml",
        "eval_report.json",
        "eval_report.md",
        "README.md",
    ):
        assert (out / name).exists(), name
    assert not (out / "model.safetensors").exists(), "causal tasks ship the adapter, not a merged model"
    mapping = json.loads((out / "label_mapping.json").read_text())
    assert set(mapping) == {"label2id", "id2label", "instruction_template"}
    assert len(mapping["label2id"]) == 14 and mapping["id2label"]["9"] == "math"
    assert "{question}" in mapping["instruction_template"] and "{categories}" not in mapping["instruction_template"]
    test = json.loads((out / "eval_report.json").read_text())["test"]
    assert test["num_examples"] == 6 and 0 <= test["unparsed"] <= 6
    assert set(test["per_class"]) == set(mapping["label2id"])
    history = [e for e in json.loads((out / "eval_report.json").read_text())["examples"]]
    assert all(e["parsed"] is None or e["parsed"] in mapping["label2id"] for e in history)
    report = json.loads((out / "eval_report.json").read_text())
    assert task.report_markdown(report) + "\n" == (out / "eval_report.md").read_text()
    assert task.summary(report).endswith(
        f"unparsed {test['unparsed']} (accuracy on parsed answers {test['accuracy_on_parsed']:.4f})"
    )

    predictor = Predictor.load(out)
    assert predictor.labels == list(mapping["label2id"])
    (answer,) = predictor.predict(["What is an integral?"])
    assert set(answer) == {"label", "parsed", "output"}
    assert answer["label"] is None or answer["label"] in mapping["label2id"]


def test_instruction_template_fills_both_placeholders():
    text = INSTRUCTION_TEMPLATE.format(categories="a, b", question="q?")
    assert "Categories: a, b" in text and text.endswith("Q: q?")
