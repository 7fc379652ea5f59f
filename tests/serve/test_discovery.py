"""Discovery: upstream's prefix and architecture rules over trees of real model directories and decoys."""

import json

import pytest

from loraroute.cli import main
from loraroute.serve.discovery import discover, parse_name
from tests.serve.conftest import copy_model


def by_name(found):
    return {c.path.name: c for c in found.candidates}


@pytest.fixture
def decoy_tree(tmp_path, trained_tree):
    """Real intent models on three architectures plus every kind of directory discovery must pass over."""
    root = tmp_path / "models"
    root.mkdir()
    copy_model(trained_tree["intent_bert"], root / "lora_intent_classifier_bert_r4_model")
    copy_model(trained_tree["intent_roberta"], root / "lora_intent_classifier_roberta_r4_model")
    copy_model(trained_tree["intent_bert"], root / "lora_intent_classifier_modernbert_r4_model")
    broken = copy_model(trained_tree["intent_bert"], root / "lora_intent_classifier_bert_r8_model")
    (broken / "model.safetensors").unlink()
    copy_model(trained_tree["intent_bert"], root / "intent_classifier_bert_r4_model")  # wrong prefix
    copy_model(trained_tree["intent_bert"], root / ".tmp-lora_intent_classifier_bert_r4_model-x1y2")
    (root / ".checkpoints" / "lora_intent_classifier_bert_r4_model").mkdir(parents=True)
    (root / "lora_pii_detector_bert_r4_model.txt").write_text("a file, not a directory")
    if "pii_bert" in trained_tree:
        copy_model(trained_tree["pii_bert"], root / "lora_pii_detector_bert_r4_model")
    return root


@pytest.mark.slow  # first user of the session's tiny trained models (~15 s)
def test_bert_wins_over_roberta_and_modernbert_and_every_decoy_is_rejected_with_a_reason(decoy_tree):
    found = discover(decoy_tree)
    seen = by_name(found)
    assert found.chosen["intent"].name == "lora_intent_classifier_bert_r4_model"
    assert seen["lora_intent_classifier_roberta_r4_model"].status == "not chosen"
    assert "lower priority" in seen["lora_intent_classifier_roberta_r4_model"].reason
    assert seen["lora_intent_classifier_modernbert_r4_model"].status == "not chosen"
    assert seen["intent_classifier_bert_r4_model"].status == "rejected"
    assert "prefix" in seen["intent_classifier_bert_r4_model"].reason
    for hidden in (".checkpoints", ".tmp-lora_intent_classifier_bert_r4_model-x1y2"):
        assert seen[hidden].status == "rejected" and "hidden" in seen[hidden].reason
    assert "lora_pii_detector_bert_r4_model.txt" not in seen
    table = found.table()
    for name in seen:
        assert name in table


def test_a_directory_missing_its_weights_is_rejected_and_the_next_valid_one_is_chosen(decoy_tree, tmp_path):
    # r8 sorts ahead of r4 within bert (higher rank first), so it is checked first and must be skipped
    (decoy_tree / "lora_intent_classifier_bert_r4_model").rename(tmp_path / "moved")
    found = discover(decoy_tree)
    seen = by_name(found)
    assert seen["lora_intent_classifier_bert_r8_model"].status == "rejected"
    assert "weights" in seen["lora_intent_classifier_bert_r8_model"].reason
    assert found.chosen["intent"].name == "lora_intent_classifier_roberta_r4_model"


def test_a_directory_whose_metadata_names_another_task_is_rejected(trained_tree, tmp_path):
    copy_model(trained_tree["intent_bert"], tmp_path / "lora_jailbreak_classifier_bert_r4_model")
    found = discover(tmp_path)
    (cand,) = found.candidates
    assert cand.status == "rejected" and "says task 'intent'" in cand.reason
    assert "security" not in found.chosen


def test_real_pii_and_intent_models_pass_the_contract_check(decoy_tree, trained_tree):
    found = discover(decoy_tree)
    assert found.chosen["pii"].name == "lora_pii_detector_bert_r4_model"
    assert "no valid model for security" in found.rule


def skeleton(root, name):
    (root / name).mkdir(parents=True)
    return root / name


def all_valid(path, task):
    return []


def test_the_first_architecture_with_a_complete_set_wins_over_per_task_priority(tmp_path):
    for name in [
        "lora_intent_classifier_bert_r16_model",
        "lora_pii_detector_bert_r16_model",
        "lora_intent_classifier_roberta_r16_model",
        "lora_pii_detector_roberta_r16_model",
        "lora_jailbreak_classifier_roberta_r16_model",
        "lora_jailbreak_classifier_minilm_r16_model",
    ]:
        skeleton(tmp_path, name)
    found = discover(tmp_path, check=all_valid)
    assert {t: p.name for t, p in found.chosen.items()} == {
        "intent": "lora_intent_classifier_roberta_r16_model",
        "pii": "lora_pii_detector_roberta_r16_model",
        "security": "lora_jailbreak_classifier_roberta_r16_model",
    }
    assert "complete" in found.rule


def test_without_a_complete_set_each_task_takes_its_best_valid_directory(tmp_path):
    for name in [
        "lora_intent_classifier_modernbert_r16_model",
        "lora_intent_classifier_bert_r16_model",
        "lora_pii_detector_roberta_r16_model",
        "lora_pii_detector_minilm_r16_model",
        "lora_jailbreak_classifier_bert_r16_model",
        "lora_jailbreak_classifier_modernbert_r16_model",
    ]:
        skeleton(tmp_path, name)

    def broken_bert_jailbreak(path, task):
        return ["contract check failed: labels"] if path.name == "lora_jailbreak_classifier_bert_r16_model" else []

    found = discover(tmp_path, check=broken_bert_jailbreak)
    assert {t: p.name for t, p in found.chosen.items()} == {
        "intent": "lora_intent_classifier_bert_r16_model",
        "pii": "lora_pii_detector_roberta_r16_model",
        "security": "lora_jailbreak_classifier_modernbert_r16_model",
    }
    assert by_name(found)["lora_jailbreak_classifier_bert_r16_model"].reason == "contract check failed: labels"


@pytest.mark.parametrize(
    "name, expected",
    [
        ("lora_intent_classifier_bert-base-uncased_r16_model", ("intent", "bert-base-uncased", 16)),
        ("lora_pii_detector_modernbert_r8_model", ("pii", "modernbert", 8)),
        ("lora_jailbreak_classifier_model", ("security", "unknown", 0)),
        ("lora_jailbreak_classifier_deberta-v3-base_r32_model", ("security", "deberta-v3-base", 32)),
        ("lora_router_bert_r16_model", (None, "", 0)),
    ],
)
def test_task_architecture_and_rank_are_read_from_the_directory_name(name, expected):
    assert parse_name(name) == expected


def test_deberta_and_distilbert_do_not_count_as_bert(tmp_path):
    for name in [
        "lora_intent_classifier_deberta-v3-base_r16_model",
        "lora_intent_classifier_distilbert_r16_model",
        "lora_intent_classifier_bert-base-uncased_r16_model",
    ]:
        skeleton(tmp_path, name)
    assert (
        discover(tmp_path, check=all_valid).chosen["intent"].name
        == "lora_intent_classifier_bert-base-uncased_r16_model"
    )


def test_discover_command_prints_the_table_and_json(decoy_tree, capsys):
    assert main(["discover", str(decoy_tree)]) == 0
    assert "| lora_intent_classifier_bert_r4_model | intent | bert | chosen |" in capsys.readouterr().out
    assert main(["discover", str(decoy_tree), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["chosen"]["intent"].endswith("lora_intent_classifier_bert_r4_model")


def test_discover_on_a_missing_directory_names_it(tmp_path, capsys):
    assert main(["discover", str(tmp_path / "nope")]) == 2
    assert "nope: no such models directory" in capsys.readouterr().err


@pytest.mark.slow
def test_the_report_says_what_upstreams_recursive_walk_would_load(real_set, tmp_path):
    root = tmp_path / "models"
    for model in real_set.iterdir():
        copy_model(model, root / model.name.replace("_bert_", "_minilm_"))
    found = discover(root)
    assert found.upstream["complete"] and found.upstream["bucket"] == "bert"  # MiniLM is upstream's bert bucket
    assert found.upstream["agrees"] and found.upstream["loadable"]
    assert "upstream loads the same three directories" in found.table()
    # A checkpoint where an older loraroute kept it: upstream's walk (hidden dirs included, lexical order) finds it
    # before the real model, so it would load a half-trained directory.
    (root / ".checkpoints" / "lora_intent_classifier_minilm_r16_model").mkdir(parents=True)
    found = discover(root)
    assert not found.upstream["agrees"]
    assert found.upstream["picks"]["intent"] == ".checkpoints/lora_intent_classifier_minilm_r16_model"
    assert found.chosen["intent"].name == "lora_intent_classifier_minilm_r4_model"


@pytest.mark.slow
def test_upstream_needs_all_three_tasks_in_one_bucket_and_readable_weights(real_set, tmp_path):
    root = tmp_path / "models"
    for model in real_set.iterdir():
        arch = "roberta-base" if model.name.startswith("lora_pii") else "bert-base-uncased"
        copy_model(model, root / model.name.replace("_bert_", f"_{arch}_"))
    found = discover(root)
    assert not found.upstream["complete"] and "no complete set" in found.upstream["summary"]
    (root / "lora_pii_detector_roberta-base_r4_model").rename(root / "lora_pii_detector_bert-base-uncased_r4_model")
    weights = root / "lora_pii_detector_bert-base-uncased_r4_model" / "model.safetensors"
    weights.chmod(0o600)
    found = discover(root)
    assert found.upstream["complete"] and not found.upstream["loadable"]
    assert "mode 0600" in found.upstream["summary"]
