"""Model directories: where their files are, what their metadata says, what upstream's loaders would trip over,
and no leftovers of dead runs."""

import json
import os
import time
from pathlib import Path

from loraroute.artifacts import (
    CHECKPOINTS,
    RUN_PID,
    ModelDir,
    checkpoint_dir,
    checkpoint_root,
    clean,
    leftovers,
)
from loraroute.config import TrainConfig
from loraroute.files import atomic_directory
from loraroute.tasks import task_of

DEAD_PID = 2**22 + 1  # above the largest pid_max Linux allows (2^22): never a live process
HOURS_AGO = time.time() - 3 * 3600


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


def test_the_temporary_directory_names_its_live_run_and_is_never_a_leftover(tmp_path):
    with atomic_directory(tmp_path / "m") as tmp:
        assert tmp.name.startswith(f".tmp-m-{os.getpid()}-")
        assert leftovers(tmp_path) == [] and leftovers(tmp_path, "m") == []
    assert not any(tmp_path.glob(".tmp-*"))


def make_dirs(root, *names, age=None):
    for name in names:
        (root / name).mkdir(parents=True)
        (root / name / "weights.bin").write_bytes(b"x" * 1000)
        if age is not None:
            for path in (root / name / "weights.bin", root / name):
                os.utime(path, (age, age))


def test_a_runs_cleanup_removes_only_its_own_models_dead_leftovers(tmp_path):
    dead = [f".tmp-m-{DEAD_PID}-abc123_z", f".old-m-{DEAD_PID}"]
    kept = [
        f".tmp-m-{os.getpid()}-abc123_z",  # a live run of the same model
        f".tmp-m-2-{DEAD_PID}-abc123_z",  # model "m-2", not "m"
        f".tmp-other-{DEAD_PID}-abc123_z",
    ]  # another model
    make_dirs(tmp_path, *dead, *kept)
    removed = clean(tmp_path, name="m")
    assert sorted(p.name for p, _, _ in removed) == sorted(dead)
    assert all(size == 1000 and f"run {DEAD_PID} is gone" in why for _, why, size in removed)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


def test_checkpoints_live_beside_the_models_directory_under_a_name_discovery_never_takes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = checkpoint_dir(TrainConfig(output_dir="models"), "lora_pii_detector_bert_r4_model")
    assert path == tmp_path / CHECKPOINTS / "models" / "ckpt-lora_pii_detector_bert_r4_model"


def test_clean_removes_dead_runs_leftovers_and_finished_checkpoints_and_keeps_live_ones(tmp_path):
    models = tmp_path / "models"
    make_dirs(models, f".tmp-a-{DEAD_PID}-abc123_z", f".tmp-b-{os.getpid()}-abc123_z", "lora_done_model")
    make_dirs(models, ".tmp-legacy-abc123_z", ".checkpoints/lora_x_model", age=HOURS_AGO)  # older loraroute
    make_dirs(models, ".tmp-recent-abc123_z")  # no pid and written just now: may be an older loraroute's live run
    for name, pid in (("ckpt-dead", DEAD_PID), ("ckpt-live", os.getpid()), ("ckpt-lora_done_model", None)):
        make_dirs(checkpoint_root(models), name)
        if pid is not None:  # what train_task writes while it runs
            (checkpoint_root(models) / name / RUN_PID).write_text(f"{pid}\n")
    expected = {
        f"models/.tmp-a-{DEAD_PID}-abc123_z",
        "models/.tmp-legacy-abc123_z",
        "models/.checkpoints/lora_x_model",
        f"{CHECKPOINTS}/models/ckpt-dead",
        f"{CHECKPOINTS}/models/ckpt-lora_done_model",
    }

    planned = clean(models, dry_run=True)
    assert {str(p.relative_to(tmp_path)) for p, _, _ in planned} == expected
    assert all((tmp_path / name).exists() for name in expected), "a dry run removes nothing"
    why = {p.name: w for p, w, _ in planned}
    assert why["ckpt-lora_done_model"] == "its run ended; model finished"
    assert why["ckpt-dead"].startswith(f"run {DEAD_PID} is gone")

    removed = clean(models)
    assert removed == planned
    assert not any((tmp_path / name).exists() for name in expected)
    assert not (models / ".checkpoints").exists(), "an emptied legacy folder goes too"
    left = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_dir()}
    assert left == {
        "models",
        f"models/.tmp-b-{os.getpid()}-abc123_z",
        "models/lora_done_model",
        "models/.tmp-recent-abc123_z",
        CHECKPOINTS,
        f"{CHECKPOINTS}/models",
        f"{CHECKPOINTS}/models/ckpt-live",
    }
