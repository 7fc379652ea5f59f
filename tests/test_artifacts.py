"""Model directories: where their files are, what their metadata says, what upstream's loaders would trip over."""

import json
from pathlib import Path

from loraroute.artifacts import ModelDir
from loraroute.tasks import task_of


def write_files(root: Path, files: dict[str, object]) -> Path:
    root.mkdir(parents=True)
    for name, content in files.items():
        (root / name).write_text(json.dumps(content))
    return root


def test_a_model_directory_names_the_files_upstream_and_loraroute_read():
    model = ModelDir("models/lora_intent_classifier_bert_r4_model")
    root = Path("models/lora_intent_classifier_bert_r4_model")
    assert model.path == root
    assert {
        "config": model.config,
        "lora_config": model.lora_config,
        "label_mapping": model.label_mapping,
        "thresholds": model.thresholds,
        "training_config": model.training_config,
        "weights": model.weights,
        "tokenizer": model.tokenizer,
        "adapter": model.adapter,
        "onnx_fp32": model.onnx_fp32,
        "onnx_int8": model.onnx_int8,
    } == {
        "config": root / "config.json",
        "lora_config": root / "lora_config.json",
        "label_mapping": root / "label_mapping.json",
        "thresholds": root / "thresholds.json",
        "training_config": root / "training_config.yaml",
        "weights": root / "model.safetensors",
        "tokenizer": root / "tokenizer.json",
        "adapter": root / "adapter",
        "onnx_fp32": root / "onnx" / "model.onnx",
        "onnx_int8": root / "onnx" / "model.int8.onnx",
    }


def test_a_merged_models_meta_is_lora_config_with_labels_in_id_order_and_its_thresholds(tmp_path):
    root = write_files(
        tmp_path / "lora_jailbreak_classifier_bert_r4_model",
        {
            "config.json": {"id2label": {"1": "jailbreak", "0": "benign"}},
            "lora_config.json": {"task": "jailbreak", "rank": 4, "max_length": 256},
            "thresholds.json": {"threshold": 0.4},
        },
    )
    assert ModelDir(root).meta() == {
        "task": "jailbreak",
        "rank": 4,
        "max_length": 256,
        "labels": ["benign", "jailbreak"],
        "thresholds": {"threshold": 0.4},
    }
    assert not ModelDir(root).adapter_only


def test_an_adapter_only_directory_takes_its_labels_from_label_mapping(tmp_path):
    root = write_files(
        tmp_path / "lora_intent_generative_smollm2_r8_model",
        {
            "adapter_config.json": {"peft_type": "LORA"},
            "label_mapping.json": {"id2label": {"0": "law", "1": "math"}},
            "lora_config.json": {"task": "generative-intent", "max_length": 384},
        },
    )
    model = ModelDir(root)
    assert model.adapter_only
    assert model.meta() == {"task": "generative-intent", "max_length": 384, "labels": ["law", "math"]}


def test_without_lora_config_meta_has_no_task_and_the_default_max_length(tmp_path):
    root = write_files(tmp_path / "lora_pii_detector_x_model", {"config.json": {"id2label": {"0": "O"}}})
    assert ModelDir(root).meta() == {"labels": ["O"], "max_length": 512}


def test_a_broken_directory_has_every_contract_problem_named_or_the_file_checks_first_for_discovery(tmp_path):
    root = write_files(
        tmp_path / "lora_intent_classifier_bert_r4_model",
        {"config.json": {"id2label": {"0": "law", "2": "math"}}, "lora_config.json": {"task": "pii"}},
    )
    assert ModelDir(root).problems(task_of) == [
        "tokenizer.json: missing",
        "config.json: 'architectures' missing or empty (transformers cannot pick a model class)",
        "config.json: id2label keys are not 0..1",
        "model.safetensors: missing (the merged model)",
        "lora_config.json: missing key(s) base_model, rank, alpha, target_modules, num_labels",
    ]
    assert ModelDir(root).problems(task_of, "intent") == [
        "no model weights (*.safetensors or onnx/model.onnx)",
        "no tokenizer (tokenizer.json, vocab.txt or vocab.json)",
        "lora_config.json says task 'pii', the name says 'intent'",
    ]
    assert ModelDir(tmp_path / "nowhere").problems(task_of) == [f"{tmp_path / 'nowhere'}: no such model directory"]
    unnamed = write_files(tmp_path / "my_model", {"config.json": {}})
    assert "lora_config.json: my_model: not a loraroute model directory" in "\n".join(
        ModelDir(unnamed).problems(task_of)
    )
