"""Checkpoints beside the models directory, and the leftovers of dead runs: found, told from live runs' work,
removed."""

import os
import time

from loraroute.checkpoints import CHECKPOINTS, RUN_PID, checkpoint_dir, checkpoint_root, clean, leftovers
from loraroute.config import TrainConfig
from loraroute.files import atomic_directory

DEAD_PID = 2**22 + 1  # above the largest pid_max Linux allows (2^22): never a live process
HOURS_AGO = time.time() - 3 * 3600


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
