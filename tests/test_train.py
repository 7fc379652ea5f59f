"""Training end to end on tiny random models: loss falls, artifacts reload exactly, runs reproduce and resume."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

from loraroute.artifacts import artifact_name
from loraroute.checkpoints import CHECKPOINTS, RUN_PID
from loraroute.inference import Predictor
from loraroute.metrics.reports import Report
from loraroute.tasks import get_task
from loraroute.tasks.intent import IntentConfig
from loraroute.training import train_task
from tests.conftest import ENCODER_ARCHS, TINY_TRAINING

PROBES = ["question 1: integral matrix prime", "question 2: tenant court appeal", "question 3: gene enzyme cell"]


def tiny_cfg(model_dir, data, out, **overrides):
    values = dict(
        model=str(model_dir),
        data=str(data),
        output_dir=str(out),
        epochs=10,
        **TINY_TRAINING,
        name="m",
    )
    values.update(overrides)
    return IntentConfig.from_dict(values)


def mean_loss(predictor, records):
    logits, _ = predictor.logits([r["text"] for r in records])
    probs = torch.softmax(torch.tensor(np.stack(logits)), -1)
    y = torch.tensor([predictor.label2id[r["label"]] for r in records])
    return float(-torch.log(probs[torch.arange(len(y)), y]).mean())


# bert in the fast lane; the other architectures only in the full suite (each trains for ~3 s)
@pytest.mark.parametrize("arch", [a if a == "bert" else pytest.param(a, marks=pytest.mark.slow) for a in ENCODER_ARCHS])
def test_training_lowers_the_loss_and_writes_the_contract_layout(tiny_encoder, intent_file, tmp_path, arch):
    task = get_task("intent")
    cfg = tiny_cfg(tiny_encoder(arch), intent_file, tmp_path, name=None)
    result = train_task(task, cfg)
    out = result.artifact_dir
    assert out.name == f"lora_intent_classifier_{out.name.split('_')[3]}_r4_model"
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "label_mapping.json",
        "category_mapping.json",
        "lora_config.json",
        "training_config.yaml",
        "eval_report.json",
        "eval_report.md",
        "confusion_matrix.png",
        "README.md",
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
    ):
        assert (out / name).exists(), name
    config = json.loads((out / "config.json").read_text())
    assert sorted(config["id2label"].values()) == ["biology", "law", "math"]
    mapping = json.loads((out / "label_mapping.json").read_text())
    assert set(mapping) == {"category_to_idx", "idx_to_category"}
    lora = json.loads((out / "lora_config.json").read_text())
    assert lora["rank"] == 4 and lora["alpha"] == 8 and lora["target_modules"]
    # the adapter file carries the trained head, not only LoRA matrices
    adapter = load_file(out / "adapter" / "adapter_model.safetensors")
    assert any("classifier" in k for k in adapter) and any("lora_A" in k for k in adapter)
    assert not any(out.parent.glob(".tmp-*")), "temporary directory left behind"
    # servers running as other users must read the model (safetensors writes its files 0600)
    assert all(p.stat().st_mode & 0o777 == (0o755 if p.is_dir() else 0o644) for p in [out, *out.rglob("*")])

    trained = Predictor.load(out)
    records = [json.loads(line) for line in intent_file.read_text().splitlines()]
    untrained_cfg = tiny_cfg(tiny_encoder(arch), intent_file, tmp_path / "u", epochs=0.01, learning_rate=1e-9)
    untrained = Predictor.load(train_task(task, untrained_cfg).artifact_dir)
    assert mean_loss(trained, records) < mean_loss(untrained, records) - 0.2


@pytest.fixture(scope="module")
def bert_run(tiny_encoder, tmp_path_factory):
    from tests.conftest import write_intent_jsonl

    tmp = tmp_path_factory.mktemp("bert-run")
    data = write_intent_jsonl(tmp / "d.jsonl")
    return train_task(get_task("intent"), tiny_cfg(tiny_encoder("bert"), data, tmp)), data, tmp


def test_reloaded_merged_model_gives_identical_logits_head_included(bert_run):
    result, _, _ = bert_run
    first = np.stack(Predictor.load(result.artifact_dir).logits(PROBES)[0])
    second = np.stack(Predictor.load(result.artifact_dir).logits(PROBES)[0])
    assert np.array_equal(first, second)
    assert np.abs(first).max() > 0.1  # a trained head, not zeros


def test_merged_logits_equal_base_plus_adapter_logits(bert_run):
    result, _, _ = bert_run
    merged = np.stack(Predictor.load(result.artifact_dir).logits(PROBES)[0])
    adapter = np.stack(Predictor.load(result.artifact_dir, use_adapter=True).logits(PROBES)[0])
    np.testing.assert_allclose(merged, adapter, rtol=1e-5, atol=1e-5)


def test_the_written_report_renders_its_own_markdown_and_summary(bert_run):
    result, _, _ = bert_run
    task = get_task("intent")
    report = json.loads((result.artifact_dir / "eval_report.json").read_text())
    assert report == result.report and "training" in report
    assert task.report_markdown(report) + "\n" == (result.artifact_dir / "eval_report.md").read_text()
    assert task.summary(report).startswith(f"Test split ({report['split_sizes']['test']} examples):\n| metric |")


def test_evaluating_writes_nothing_and_training_writes_the_report_once(
    tiny_encoder, intent_file, tmp_path, monkeypatch
):
    task, models, seen, writes = get_task("intent"), tmp_path / "models", [], []

    def tree():
        return {p: p.stat().st_mtime_ns for p in models.rglob("*")}

    def evaluate(predictor, splits, cfg):
        before = tree()
        report = type(task).evaluate(task, predictor, splits, cfg)
        seen.append(before == tree())
        return report

    def write(report, out_dir):
        writes.append(set(report.data))
        original(report, out_dir)

    original = Report.write
    monkeypatch.setattr(task, "evaluate", evaluate)
    monkeypatch.setattr(Report, "write", write)
    result = train_task(task, tiny_cfg(tiny_encoder("bert"), intent_file, models, epochs=1))
    assert seen == [True]
    assert len(writes) == 1 and "training" in writes[0]  # written after training added its section
    assert (result.artifact_dir / "confusion_matrix.png").exists()


def test_two_runs_with_the_same_seed_give_identical_weights(bert_run, tiny_encoder):
    result, data, tmp = bert_run
    again = train_task(get_task("intent"), tiny_cfg(tiny_encoder("bert"), data, tmp / "again"))
    a = load_file(result.artifact_dir / "model.safetensors")
    b = load_file(again.artifact_dir / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


class Interrupt(TrainerCallback):
    """Simulates a crash (Ctrl-C, OOM kill) right after a checkpoint is written."""

    def __init__(self, after_step):
        self.after_step = after_step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step >= self.after_step:
            raise KeyboardInterrupt


def test_resume_after_an_interrupted_run_ends_where_an_uninterrupted_run_ends(bert_run, tiny_encoder):
    result, data, tmp = bert_run
    cfg = tiny_cfg(tiny_encoder("bert"), data, tmp / "resumed")
    with pytest.raises(KeyboardInterrupt):
        train_task(get_task("intent"), cfg, callbacks=[Interrupt(after_step=30)])
    assert not (tmp / "resumed" / "m").exists(), "an interrupted run must not leave a model directory"
    assert get_last_checkpoint(str(tmp / CHECKPOINTS / "resumed" / "ckpt-m")), "resume reads the sibling folder"
    resumed = train_task(get_task("intent"), tiny_cfg(tiny_encoder("bert"), data, tmp / "resumed", resume=True))
    a = load_file(result.artifact_dir / "model.safetensors")
    b = load_file(resumed.artifact_dir / "model.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


DEAD_PID = 2**22 + 1  # above the largest pid_max Linux allows: never a live process


class WatchModelsTree(TrainerCallback):
    """At every checkpoint: the lora_* directories under the models directory's parent, and this run's checkpoint
    folder's contents."""

    def __init__(self, parent, ckpt):
        self.parent, self.ckpt, self.seen = parent, ckpt, []

    def on_save(self, args, state, control, **kwargs):
        lora = sorted(
            str(p.relative_to(self.parent)) for p in self.parent.rglob("*") if p.is_dir() and p.name.startswith("lora_")
        )
        self.seen.append((lora, sorted(p.name for p in self.ckpt.iterdir())))


@pytest.fixture(scope="module")
def watched_run(tiny_encoder, tmp_path_factory):
    from tests.conftest import write_intent_jsonl

    tmp = tmp_path_factory.mktemp("watched")
    data = write_intent_jsonl(tmp / "d.jsonl")
    cfg = tiny_cfg(tiny_encoder("bert"), data, tmp / "models", name=None, epochs=2)
    name = artifact_name(get_task("intent").artifact_prefix, cfg)
    stale = tmp / "models" / f".tmp-{name}-{DEAD_PID}-abc123_z"  # what a killed run leaves
    stale.mkdir(parents=True)
    watch = WatchModelsTree(tmp, tmp / CHECKPOINTS / "models" / f"ckpt-{name}")
    result = train_task(get_task("intent"), cfg, callbacks=[watch])
    return result, watch, stale, tmp


def test_no_lora_directory_appears_in_the_models_tree_while_training(watched_run):
    result, watch, _, tmp = watched_run
    assert result.artifact_dir.parent == tmp / "models" and result.artifact_dir.name.startswith("lora_")
    assert len(watch.seen) >= 2
    for lora, ckpt in watch.seen:
        assert lora == [], "upstream discovery would take a checkpoint for a model"
        assert RUN_PID in ckpt and any(name.startswith("checkpoint-") for name in ckpt)
    assert not (tmp / CHECKPOINTS).exists(), "a successful run removes its checkpoints and their emptied folders"


def test_a_run_removes_the_temporary_directory_a_killed_run_of_its_model_left(watched_run):
    _, _, stale, _ = watched_run
    assert not stale.exists()
