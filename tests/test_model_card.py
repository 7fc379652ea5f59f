"""Model cards carry Hub metadata that huggingface_hub's own parser reads back, with the eval report's numbers; and
the merged model directories load in plain transformers pipelines, answering as loraroute does where they must."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from loraroute.artifacts import read_json
from loraroute.config import TrainConfig
from loraroute.inference import Predictor
from loraroute.metrics.classification import softmax
from loraroute.model_card import card_data, hub_base_model, model_card, write_model_card
from loraroute.tasks import get_task
from loraroute.training import train_task
from tests.conftest import write_intent_jsonl
from tests.serve.conftest import INTENT_PROBES, train_tiny_intent, train_tiny_jailbreak, train_tiny_pii

PIPELINE_TAGS = {"intent": "text-classification", "pii": "token-classification", "jailbreak": "text-classification"}


@pytest.fixture(scope="module")
def trained(tiny_encoder, tmp_path_factory) -> dict[str, Path]:
    """A tiny trained model directory per encoder task; intent on a local file, PII and jailbreak offline."""
    root = tmp_path_factory.mktemp("cards")
    encoder = tiny_encoder("bert")
    return {
        "intent": train_tiny_intent(encoder, write_intent_jsonl(root / "intent.jsonl"), root / "models", "bert"),
        "pii": train_tiny_pii(encoder, root / "models", "bert"),
        "jailbreak": train_tiny_jailbreak(encoder, root / "models", "bert"),
    }


@pytest.fixture(scope="module")
def offline_intent(tiny_encoder, tmp_path_factory) -> Path:
    """Intent on its offline default (MMLU + generated prompts), as `make demo` trains it: the report then has the
    natural-prompt set."""
    task = get_task("intent")
    cfg = task.config_class.from_dict(
        dict(
            model=str(tiny_encoder("bert")),
            output_dir=str(tmp_path_factory.mktemp("offline-intent")),
            max_samples=280,
            request_prompts_per_class=2,
            epochs=1,
            batch_size=32,
            rank=4,
            max_length=32,
            early_stopping_patience=0,
            seed=3,
            precision="fp32",
        )
    )
    return train_task(task, cfg).artifact_dir


def loaded(model_dir: Path):
    """(card, model-index name, eval results) as huggingface_hub parses README.md."""
    card = ModelCard.load(model_dir / "README.md")
    name, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    return card, name, results


def results_for(results, dataset_type: str) -> dict[str, float]:
    return {r.metric_type: r.metric_value for r in results if r.dataset_type == dataset_type}


@pytest.mark.parametrize("task", ["intent", "pii", "jailbreak"])
def test_every_encoder_task_card_has_hub_metadata_that_huggingface_hub_parses(trained, task):
    model_dir = trained[task]
    card, name, results = loaded(model_dir)
    data = card.data
    assert data.library_name == "transformers"  # the merged top level is what loads it
    assert {"loraroute", "peft", "lora", task} <= set(data.tags)
    assert data.pipeline_tag == PIPELINE_TAGS[task] and data.license == "apache-2.0"
    assert data.base_model is None, "a local base directory is no hub id"
    assert name == data.model_name == model_dir.name
    report = read_json(model_dir / "eval_report.json")
    test = results_for(results, results[0].dataset_type)
    assert results[0].dataset_split == "test" and results[0].task_type == PIPELINE_TAGS[task]
    expected = {
        k: v for k, v in report["test"].items() if isinstance(v, float) and not math.isnan(v) and k != "threshold"
    }
    assert test == pytest.approx(expected)
    assert all(isinstance(r.metric_value, float) and not math.isnan(r.metric_value) for r in results)
    # The parsed metadata writes back to the same YAML: nothing the parser dropped or changed.
    assert ModelCard(str(card)).data.to_dict() == data.to_dict()


def test_the_card_title_is_the_final_directory_name_not_the_temporary_one(trained):
    text = (trained["intent"] / "README.md").read_text()
    assert f"\n# {trained['intent'].name}\n" in text and ".tmp-" not in text


def test_the_card_body_says_how_to_load_route_and_reproduce(trained):
    card = ModelCard.load(trained["jailbreak"] / "README.md")
    assert "loraroute predict --model" in card.text
    assert '"Using the models with vLLM semantic-router"' in card.text
    assert 'pipeline("text-classification"' in card.text and "thresholds.json" in card.text
    assert "loraroute train jailbreak --config training_config.yaml" in card.text
    assert "| roc_auc |" in card.text
    pii = ModelCard.load(trained["pii"] / "README.md").text
    assert 'aggregation_strategy="first"' in pii and "Presidio's recognizers" in pii and "has_pii" in pii


def test_jailbreak_card_carries_every_hand_written_set(trained):
    _, _, results = loaded(trained["jailbreak"])
    report = read_json(trained["jailbreak"] / "eval_report.json")
    for name in report["eval_sets"]:
        got = results_for(results, f"jailbreak_{name}")
        assert got["roc_auc"] == pytest.approx(report[name]["roc_auc"])
        assert got["benign_fpr"] == pytest.approx(report[name]["benign_fpr"])
        assert "threshold" not in got, "the threshold is a setting, not a measurement"
    assert {r.dataset_type for r in results} == {
        "loraroute-jailbreak-offline",
        "jailbreak_realistic",
        "jailbreak_blind",
        "jailbreak_families",
        "jailbreak_families_blind",
    }
    card = ModelCard.load(trained["jailbreak"] / "README.md")
    assert card.data.datasets == ["cais/mmlu"] and "garak" in card.data.tags


def test_a_make_demo_intent_card_names_mmlu_the_natural_set_and_the_minilm_hub_id(offline_intent):
    card, _, results = loaded(offline_intent)
    report = read_json(offline_intent / "eval_report.json")
    assert card.data.datasets == ["cais/mmlu"]
    assert results_for(results, "loraroute-intent-offline")["accuracy"] == pytest.approx(report["test"]["accuracy"])
    natural = results_for(results, "intent_natural")
    assert natural["accuracy"] == pytest.approx(report["natural"]["accuracy"])
    assert natural["macro_f1"] == pytest.approx(report["natural"]["macro_f1"])
    typos = results_for(results, "intent_natural_typos")
    assert typos == {"accuracy": pytest.approx(report["natural_typos"]["accuracy"])}
    # The demo trains on the embedded MiniLM: the same report under cfg.model = "minilm" names its hub id.
    task = get_task("intent")
    cfg = task.config_class.from_yaml(offline_intent / "training_config.yaml")
    cfg.model = "minilm"
    demo = model_card(task, cfg, report, "lora_intent_classifier_minilm_r16_model")
    assert demo.data.base_model == "sentence-transformers/all-MiniLM-L6-v2" and demo.data.license == "apache-2.0"
    assert ModelCard(str(demo)).data.base_model == "sentence-transformers/all-MiniLM-L6-v2"


def test_base_model_is_a_hub_id_or_left_out_and_its_licence_follows(tmp_path):
    assert hub_base_model("minilm") == "sentence-transformers/all-MiniLM-L6-v2"
    assert hub_base_model("bert-base-uncased") == "google-bert/bert-base-uncased"
    assert hub_base_model("someone/their-encoder") == "someone/their-encoder"
    assert hub_base_model(str(tmp_path)) is None and hub_base_model("./local") is None
    task = get_task("intent")
    licences = {
        ref: card_data(task, TrainConfig(model=ref), {"test": {}}, "x").license
        for ref in ("minilm", "roberta-base", "deberta-v3-base", "modernbert-base")
    }
    assert licences == {
        "minilm": "apache-2.0",
        "roberta-base": "mit",
        "deberta-v3-base": "mit",
        "modernbert-base": "apache-2.0",
    }


def test_hub_data_is_named_as_the_dataset_and_a_local_file_is_not(tmp_path):
    task = get_task("pii")
    report = {"task": "pii", "test": {"micro_f1": 0.5}}
    hub = card_data(task, task.config_class(data="ai4privacy/pii-masking-300k"), report, "x")
    assert hub.datasets == ["ai4privacy/pii-masking-300k"] and "presidio-evaluator" not in hub.tags
    assert hub.eval_results[0].dataset_type == "ai4privacy/pii-masking-300k"
    (tmp_path / "mine.jsonl").write_text("")
    local = card_data(task, task.config_class(data=str(tmp_path / "mine.jsonl")), report, "x")
    assert local.datasets is None and local.eval_results[0].dataset_type == "local-file"
    assert str(tmp_path) not in local.eval_results[0].dataset_name
    offline = card_data(task, task.config_class(), report, "x")
    assert offline.datasets is None and "presidio-evaluator" in offline.tags


def test_an_adapter_only_causal_card_is_a_peft_text_generation_card(tmp_path):
    task = get_task("generative-intent")
    cfg = task.config_class(model="qwen3-0.6b")
    report = {
        "task": task.name,
        "split_sizes": {"train": 8, "validation": 2, "test": 2},
        "test": {"num_examples": 2, "accuracy": 0.5, "accuracy_on_parsed": 1.0, "unparsed": 1},
    }
    write_model_card(tmp_path, task, cfg, report)
    card, name, results = loaded(tmp_path)
    assert card.data.library_name == "peft" and card.data.pipeline_tag == "text-generation"
    assert card.data.base_model == "Qwen/Qwen3-0.6B" and name.startswith("lora_generative_intent_classifier")
    assert {r.metric_type for r in results} == {"accuracy", "accuracy_on_parsed"}
    assert "PeftModel.from_pretrained" in card.text and "pipeline(" not in card.text


# --- plain transformers pipelines on the merged directories ----------------------------------------------------
def test_text_classification_pipeline_gives_loraroute_s_intent_answer(trained):
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(trained["intent"]), device="cpu")
    ours = Predictor.load(trained["intent"]).predict(INTENT_PROBES)
    theirs = pipe(INTENT_PROBES, truncation=True, max_length=32)
    assert [t["label"] for t in theirs] == [o["label"] for o in ours]
    assert [t["score"] for t in theirs] == pytest.approx([o["confidence"] for o in ours], abs=1e-5)


def test_jailbreak_pipeline_scores_match_but_only_loraroute_applies_the_calibrated_threshold(trained):
    from transformers import pipeline

    texts = get_task("jailbreak").demo_texts
    pipe = pipeline("text-classification", model=str(trained["jailbreak"]), device="cpu", top_k=None)
    predictor = Predictor.load(trained["jailbreak"])
    ours = predictor.predict(texts)
    theirs = [{d["label"]: d["score"] for d in row} for row in pipe(texts)]
    assert [t["jailbreak"] for t in theirs] == pytest.approx([o["score"] for o in ours], abs=1e-5)
    stored = read_json(trained["jailbreak"] / "thresholds.json")["threshold"]
    assert all(o["threshold"] == stored for o in ours)
    assert [o["is_jailbreak"] for o in ours] == [t["jailbreak"] >= stored for t in theirs]


def test_token_classification_pipeline_tokens_and_first_aggregation_match_loraroute_argmax(trained):
    """Per token, the pipeline's label and score are the model's raw argmax, as in loraroute's logits. With
    aggregation "first" its entities are exactly loraroute's decoding="argmax" without recognizers, threshold or
    has_pii gate (a WordPiece model, texts within one window); loraroute's default (Viterbi BIO, whole chunks,
    recognizers, calibrated thresholds) is the part only loraroute applies."""
    from transformers import pipeline

    texts = get_task("pii").demo_texts + [
        "Contact Mr John Smithers at jo@acme.com, or call 555-123-4567 now!",
        "Ask Dr. Ann Lee, 10 Main St, Boston, or mail ann.lee@clinic.org.",
    ]
    predictor = Predictor.load(trained["pii"])
    labels = predictor.labels
    logits, encodings = predictor.logits(texts)
    probs = [softmax(np.asarray(row, dtype=np.float64)) for row in logits]
    assert all(enc["windows"] == 1 for enc in encodings), "longer texts are windowed by loraroute, not the pipeline"
    # A near-tie between the two best labels could go either way between two runtimes: such texts are not compared.
    clear = [i for i, p in enumerate(probs) if (np.diff(np.sort(p, axis=-1)[:, -2:], axis=-1) > 1e-4).all()]
    assert len(clear) >= 3
    tokens = pipeline("token-classification", model=str(trained["pii"]), device="cpu", aggregation_strategy="none")
    found = tokens(texts)
    for i in clear:
        real = [t for t, w in enumerate(encodings[i]["word_ids"]) if w is not None]  # the pipeline skips specials
        best = {t: labels[int(probs[i][t].argmax())] for t in real}
        assert {e["index"]: e["entity"] for e in found[i]} == {t: lab for t, lab in best.items() if lab != "O"}
        assert [float(e["score"]) for e in found[i]] == pytest.approx(
            [probs[i][e["index"]].max() for e in found[i]], abs=1e-5
        )
    first = pipeline("token-classification", model=str(trained["pii"]), device="cpu", aggregation_strategy="first")
    theirs = first(texts)
    ours = predictor.predict(texts, decoding="argmax", patterns=False, threshold=0.0, gate=False)
    for i in clear:
        assert [(e["entity_group"], e["start"], e["end"]) for e in theirs[i]] == [
            (e["entity_type"], e["start"], e["end"]) for e in ours[i]["entities"]
        ], texts[i]
        assert [float(e["score"]) for e in theirs[i]] == pytest.approx(
            [e["confidence"] for e in ours[i]["entities"]], abs=1e-5
        )


def test_a_solver_card_names_the_set_it_was_scored_on():
    task = get_task("solver")
    report = {
        "task": "solver",
        "test": {"num_examples": 4, "accuracy": 0.5, "baseline_accuracy": 0.25},
        "comparison": {"evaluation": {"source": "TIGER-Lab/MMLU-Pro (test)"}},
    }
    data = card_data(task, task.config_class(), report, "lora_solver_math")
    assert {r.dataset_type for r in data.eval_results} == {"TIGER-Lab/MMLU-Pro"}
    assert {r.metric_type for r in data.eval_results} == {"accuracy", "baseline_accuracy"}
