"""verify: passes on trained models, fails on corrupted weights and inconsistent files, refuses pickle weights.

What upstream's candle loaders can read, and runtime (e), are tested in test_candle.py."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from loraroute.artifacts import ModelDir
from loraroute.cli import main
from loraroute.data.mmlu import MMLU_PRO_CATEGORIES
from loraroute.data.pii import PRESIDIO_ENTITIES
from loraroute.export.onnx import export_onnx
from loraroute.export.probes import probe_texts
from loraroute.export.verify import REPORT_FILE, verify_model
from loraroute.inference import OnnxPredictor, Predictor
from loraroute.tasks import task_of
from loraroute.tasks.pii_spans import bio_labels


def test_verify_passes_on_a_trained_intent_model_with_int8_and_writes_the_report(intent_artifact, copy_of):
    model_dir = copy_of(intent_artifact("bert"))
    export_onnx(model_dir, int8=True)
    report = verify_model(model_dir)
    assert report["passed"], report["failures"]
    assert set(report["pairs"]) == {"a-b", "b-c", "c-d", "b-e"}  # e: candle, upstream's runtime
    assert all(report["pairs"][p]["max_abs_diff"] <= 1e-4 for p in ("a-b", "b-c", "b-e"))
    assert report["pairs"]["c-d"]["max_abs_diff"] > 0  # int8 really ran the quantised graph
    assert report["contract_problems"] == [] and report["labels_without_written_probe"] == []
    assert json.loads((model_dir / REPORT_FILE).read_text())["passed"] is True


def test_verify_without_an_export_checks_a_temporary_onnx_and_leaves_the_directory_clean(intent_artifact, copy_of):
    model_dir = copy_of(intent_artifact("bert"))
    report = verify_model(model_dir, extra_texts=["question 5: court verdict"])
    assert report["passed"] and set(report["pairs"]) == {"a-b", "b-c", "b-e"}
    assert any("temporary" in note for note in report["notes"])
    assert not (model_dir / "onnx").exists()


def test_verify_fails_when_a_merged_weight_is_corrupted(intent_artifact, copy_of, capsys):
    model_dir = copy_of(intent_artifact("bert"))
    weights = load_file(model_dir / "model.safetensors")
    name = next(k for k in weights if "layer.0.attention.self.query.weight" in k)
    weights[name] = weights[name] + 0.05 * torch.randn_like(weights[name])  # a bad merge or a flipped bit
    save_file(weights, model_dir / "model.safetensors", metadata={"format": "pt"})
    assert main(["verify", str(model_dir)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "FAILED" in out
    report = json.loads((model_dir / REPORT_FILE).read_text())
    assert not report["pairs"]["a-b"]["passed"] and report["pairs"]["a-b"]["max_abs_diff"] > 1e-4
    assert report["pairs"]["b-c"]["passed"]  # ONNX was exported from the same (corrupted) merged weights
    assert report["pairs"]["b-e"]["passed"]  # and candle read that same file


def test_a_label_map_of_the_wrong_size_is_reported_by_file_name(intent_artifact, copy_of):
    model_dir = copy_of(intent_artifact("bert"))
    path = model_dir / "category_mapping.json"
    mapping = json.loads(path.read_text())
    del mapping["category_to_idx"]["law"]
    path.write_text(json.dumps(mapping))
    problems = ModelDir(model_dir).problems(task_of)
    assert problems == ["category_mapping.json: category_to_idx has 2 entries, config.json id2label has 3"]
    report = verify_model(model_dir, write=False)
    assert not report["passed"] and problems[0] in report["failures"]


def test_an_id2label_that_does_not_match_the_classifier_head_is_reported(intent_artifact, copy_of):
    model_dir = copy_of(intent_artifact("bert"))
    config = json.loads((model_dir / "config.json").read_text())
    config["id2label"]["3"] = "history"
    (model_dir / "config.json").write_text(json.dumps(config))
    problems = ModelDir(model_dir).problems(task_of)
    assert "config.json: id2label has 4 labels but model.safetensors' classifier.weight has 3 outputs" in problems


def test_label_maps_with_other_key_names_and_missing_files_are_named(intent_artifact, copy_of):
    model_dir = copy_of(intent_artifact("bert"))
    (model_dir / "label_mapping.json").write_text(json.dumps({"label2id": {}, "id2label": {}}))
    (model_dir / "tokenizer.json").unlink()
    (model_dir / "lora_config.json").unlink()
    config = json.loads((model_dir / "config.json").read_text())
    del config["architectures"]
    (model_dir / "config.json").write_text(json.dumps(config))
    problems = "\n".join(ModelDir(model_dir).problems(task_of))
    for expected in (
        "tokenizer.json: missing",
        "lora_config.json: missing",
        "config.json: 'architectures'",
        "label_mapping.json: expected keys 'category_to_idx' and 'idx_to_category'",
    ):
        assert expected in problems


def test_pickle_only_directories_are_refused_by_every_loader(intent_artifact, copy_of, tmp_path):
    pickled = tmp_path / "lora_intent_classifier_x_r4_model"
    pickled.mkdir()
    (pickled / "config.json").write_text(json.dumps({"id2label": {"0": "a", "1": "b"}}))
    (pickled / "pytorch_model.bin").write_bytes(b"never unpickled")
    for load in (lambda: Predictor.load(pickled), lambda: export_onnx(pickled)):
        with pytest.raises(ValueError, match="only pickle weights"):
            load()
    assert "only pickle weights" in ModelDir(pickled).problems(task_of)[0]
    assert not verify_model(pickled)["passed"]
    # an adapter/ holding adapter_model.bin instead of safetensors is refused too
    model_dir = copy_of(intent_artifact("bert"))
    (model_dir / "adapter" / "adapter_model.safetensors").rename(model_dir / "adapter" / "adapter_model.bin")
    with pytest.raises(ValueError, match="only pickle weights"):
        Predictor.load(model_dir, use_adapter=True)


def test_cli_verify_input_file_adds_probes(intent_artifact, copy_of, tmp_path, capsys):
    model_dir = copy_of(intent_artifact("bert"))
    extra = tmp_path / "extra.jsonl"
    extra.write_text("\n".join(json.dumps({"text": f"question {i}: tenant appeal"}) for i in range(5)) + "\n")
    assert main(["verify", str(model_dir), "--input", str(extra), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["num_texts"] == len(probe_texts("intent", "sequence", ["biology", "law", "math"])[0]) + 5


def test_built_in_probes_cover_every_intent_category_pii_type_and_jailbreak_class():
    assert probe_texts("intent", "sequence", list(MMLU_PRO_CATEGORIES))[1] == []
    assert probe_texts("pii", "token", bio_labels(PRESIDIO_ENTITIES))[1] == []
    assert probe_texts("jailbreak", "sequence", ["benign", "jailbreak"])[1] == []
    texts, missing = probe_texts("intent", "sequence", ["math", "cooking"])
    assert missing == ["cooking"] and any("cooking" in t for t in texts)


@pytest.mark.slow
def test_verify_passes_on_a_pii_model_and_compares_spans(pii_artifact, copy_of):
    model_dir = copy_of(pii_artifact)
    export_onnx(model_dir, int8=True)
    report = verify_model(model_dir)
    assert report["kind"] == "token" and report["passed"], report["failures"]
    assert report["pairs"]["b-c"]["span_f1"] == 1.0
    assert report["pairs"]["b-e"]["span_f1"] == 1.0 and report["pairs"]["b-e"]["max_abs_diff"] <= 1e-4
    assert report["pairs"]["c-d"]["span_f1"] >= 0.98
    texts = ["Call John Smith at (212) 555-0187.", "nothing here"]

    def spans(answers):
        return [[(e["entity_type"], e["start"], e["end"]) for e in a["entities"]] for a in answers]

    assert spans(OnnxPredictor.load(model_dir).predict(texts)) == spans(Predictor.load(model_dir).predict(texts))
