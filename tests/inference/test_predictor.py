"""Predictor: a model directory in, its task's answers out; the merged model and base + adapter/ answer alike."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from loraroute.inference import Predictor
from loraroute.tasks import get_task
from tests.serve.conftest import INTENT_PROBES

TEXTS = {
    "intent": INTENT_PROBES,
    "pii": ["Contact Mr John Smithers at jo@acme.com now", "The quick brown fox.", "Call 555-0100 " * 20],
}


def entities(answers: list[dict]) -> list[list[tuple]]:
    return [[(e["entity_type"], e["start"], e["end"]) for e in a["entities"]] for a in answers]


@pytest.mark.parametrize("task", ["intent", "pii"])
def test_the_merged_model_and_base_plus_adapter_give_the_same_logits_and_answers(trained, task):
    merged = Predictor.load(trained[task])
    adapter = Predictor.load(trained[task], use_adapter=True)
    assert merged.task.name == adapter.task.name == task and merged.labels == adapter.labels
    (merged_logits, merged_enc), (adapter_logits, adapter_enc) = merged.logits(TEXTS[task]), adapter.logits(TEXTS[task])
    assert merged_enc == adapter_enc
    for m, a in zip(merged_logits, adapter_logits):
        np.testing.assert_allclose(m, a, rtol=1e-5, atol=1e-5)
    merged_answers, adapter_answers = merged.predict(TEXTS[task]), adapter.predict(TEXTS[task])
    if task == "intent":
        assert [a["label"] for a in merged_answers] == [a["label"] for a in adapter_answers]
        assert [a["confidence"] for a in merged_answers] == pytest.approx(
            [a["confidence"] for a in adapter_answers], abs=1e-5
        )
    else:
        assert entities(merged_answers) == entities(adapter_answers)
        assert [a["has_pii"] for a in merged_answers] == [a["has_pii"] for a in adapter_answers]


def test_no_texts_give_no_answers(trained):
    assert Predictor.load(trained["intent"]).predict([]) == []


def test_a_directory_whose_lora_config_names_no_task_is_known_by_its_name(trained, tmp_path):
    model_dir = Path(shutil.copytree(trained["intent"], tmp_path / trained["intent"].name))
    config = json.loads((model_dir / "lora_config.json").read_text())
    del config["task"]
    (model_dir / "lora_config.json").write_text(json.dumps(config))
    predictor = Predictor.load(model_dir)
    assert predictor.task.name == predictor.meta["task"] == "intent"
    expected = Predictor.load(trained["intent"]).predict(INTENT_PROBES)
    assert [a["label"] for a in predictor.predict(INTENT_PROBES)] == [a["label"] for a in expected]


def test_a_task_given_to_load_is_used_as_it_is(trained, tmp_path):
    task = get_task("intent")
    # neither lora_config.json nor the directory's name says which task this is: only the caller does
    model_dir = Path(shutil.copytree(trained["intent"], tmp_path / "my-router"))
    config = json.loads((model_dir / "lora_config.json").read_text())
    del config["task"]
    (model_dir / "lora_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="no known lora_\\* prefix"):
        Predictor.load(model_dir)
    predictor = Predictor.load(model_dir, task=task)
    assert predictor.task is task and predictor.meta["task"] == "intent"
