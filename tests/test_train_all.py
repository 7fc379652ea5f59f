"""train-all: runs every task x model, goes on past failures, checks each model, and writes a summary to trust."""

import json
import re
import types

import pytest
import torch

import loraroute.training
from loraroute import train_all as ta
from loraroute.cli import main
from loraroute.inference import Predictor
from loraroute.resources import Resources
from loraroute.tasks import get_task
from loraroute.training import RunResult
from tests.conftest import write_intent_jsonl

TINY_SETTINGS = ["max_length=32", "precision=fp32", "learning_rate=0.01", "batch_size=8"]


@pytest.fixture(scope="module")
def batch_run(tiny_encoder, tmp_path_factory):
    """`loraroute train-all --quick` over two tiny models, the first of which fails on purpose."""
    tmp = tmp_path_factory.mktemp("train-all")
    data = write_intent_jsonl(tmp / "intent.jsonl")
    broken, good = tiny_encoder("distilbert"), tiny_encoder("bert")
    real = loraroute.training.train_task

    def planted(task, cfg, callbacks=None):
        if cfg.model == str(broken):
            raise RuntimeError("planted failure")
        return real(task, cfg, callbacks=callbacks)

    out = tmp / "models"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loraroute.training, "train_task", planted)
        rc = main(
            [
                "train-all",
                "--tasks",
                "intent",
                "--models",
                str(broken),
                str(good),
                "--quick",
                "--output-dir",
                str(out),
                f"data={data}",
                *TINY_SETTINGS,
            ]
        )
    summary = json.loads((out / "summary.json").read_text())
    return rc, out, summary, (broken, good)


@pytest.mark.slow
def test_loop_goes_on_past_a_failed_model_and_the_exit_status_is_nonzero(batch_run):
    rc, _, summary, (broken, good) = batch_run
    assert rc == 1
    first, second = summary["runs"]
    assert (first["model"], first["status"]) == (str(broken), "failed")
    assert first["error"] == "train: RuntimeError: planted failure"
    assert (second["model"], second["status"]) == (str(good), "ok")
    assert (summary["succeeded"], summary["failed"]) == (1, 1)


@pytest.mark.slow
def test_summary_md_and_json_list_task_model_status_duration_metric_and_artifact(batch_run):
    _, out, summary, _ = batch_run
    ok = summary["runs"][1]
    assert ok["task"] == "intent" and ok["metric_name"] == get_task("intent").headline_metric
    assert 0.0 <= ok["metric"] <= 1.0 and ok["seconds"] > 0
    report = json.loads((out / ok["artifact"].split("/")[-1] / "eval_report.json").read_text())
    assert ok["metric"] == report["test"]["accuracy"]
    md = (out / "summary.md").read_text()
    assert "| task | model | status | duration | metric | value | artifact |" in md
    assert f"| {ok['metric']:.4f} | {ok['artifact']} |" in md
    assert "train: RuntimeError: planted failure" in md
    assert summary["settings"]["quick"] is True and summary["resources"]["threads"] >= 1


@pytest.mark.slow
def test_every_listed_artifact_loads_with_predict_and_answers_the_probe_texts(batch_run):
    _, _, summary, _ = batch_run
    listed = [run for run in summary["runs"] if run["artifact"]]
    assert listed
    for run in listed:
        predictor = Predictor.load(run["artifact"])
        answers = predictor.predict(["question 9: integral matrix"])
        assert answers[0]["label"] in predictor.labels
        probes = run["probes"]
        assert [p["text"] for p in probes] == get_task("intent").demo_texts
        assert all(p["label"] in predictor.labels for p in probes)
        assert run["verify"]["passed"] is True  # the test install has the onnx extra: verify always runs


@pytest.mark.slow
def test_each_model_directory_has_its_log_and_training_curves(batch_run):
    _, _, summary, _ = batch_run
    artifact = summary["runs"][1]["artifact"]
    log = (loraroute.training.Path(artifact) / "train.log").read_text()
    assert "resources: cpu" in log or "resources: cuda" in log  # the batch plan line
    assert re.search(r"loraroute.steps: step \d+ epoch [\d.]+ loss=", log)  # per-step loss, file only
    assert "validation at step" in log
    png = loraroute.training.Path(artifact) / "training_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert summary["runs"][1]["log"].endswith("train.log")


@pytest.mark.slow
def test_out_of_memory_in_training_is_retried_with_half_batch(tiny_encoder, tmp_path):
    data = write_intent_jsonl(tmp_path / "d.jsonl", per_class=20)
    attempts = []

    def oom_once(task, cfg, callbacks=None):
        attempts.append((cfg.batch_size, cfg.grad_accum))
        if len(attempts) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")
        return loraroute.training.train_task(task, cfg, callbacks=callbacks)

    records = ta.train_all(
        ["intent"],
        [str(tiny_encoder("bert"))],
        tmp_path / "out",
        {"data": str(data), "max_length": 32, "precision": "fp32", "batch_size": 8},
        quick=True,
        fit=False,
        verify=False,
        train=oom_once,
    )
    assert attempts == [(8, 1), (4, 2)]
    assert records[0].status == "ok" and (records[0].batch_size, records[0].grad_accum) == (4, 2)
    assert (
        "out of memory at batch 8" in (tmp_path / "out" / records[0].artifact.split("/")[-1] / "train.log").read_text()
    )


FAKE = Resources("cpu", "test", 1, 8 * 1024**3, 8 * 1024**3, "test")


def test_invalid_settings_fail_every_run_at_the_config_stage_naming_the_key(tmp_path):
    calls = []
    records = ta.train_all(
        ["intent"],
        ["a", "b"],
        tmp_path,
        {"rank": 0},
        fit=False,
        verify=False,
        train=lambda *a, **k: calls.append(a),
        resources=FAKE,
    )
    assert calls == []
    assert [r.status for r in records] == ["failed", "failed"]
    assert all(r.error.startswith("config: ConfigError") and "rank" in r.error for r in records)
    assert json.loads((tmp_path / "summary.json").read_text())["failed"] == 2


@pytest.mark.slow
def test_a_model_that_fails_verify_is_marked_failed(batch_run, tmp_path, monkeypatch):
    _, _, summary, _ = batch_run
    artifact = loraroute.training.Path(summary["runs"][1]["artifact"])
    seen = {}

    def fake_verify(model_dir, extra_texts=None):
        seen.update(model_dir=model_dir, extra_texts=extra_texts)
        return {"passed": False, "problems": ["onnx logits differ by 0.3"]}

    monkeypatch.setattr(ta, "verifier", lambda: fake_verify)
    trained = lambda task, cfg, callbacks=None: RunResult(artifact, {"test": {"accuracy": 0.5}}, 1.0, 1.0)  # noqa
    records = ta.train_all(["intent"], ["x"], tmp_path, fit=False, train=trained, resources=FAKE)
    assert records[0].status == "failed"
    assert records[0].error == "verify: RuntimeError: verify did not pass: onnx logits differ by 0.3"
    assert seen == {"model_dir": str(artifact), "extra_texts": get_task("intent").demo_texts}
    assert records[0].probes and records[0].metric == 0.5


def test_run_settings_layer_recipe_then_quick_then_explicit(tmp_path):
    (tmp_path / "intent_minilm.yaml").write_text("epochs: 7\nmax_samples: 5000\nlearning_rate: 0.0005\nrank: 4\n")
    where = ta.recipe_for(get_task("intent"), "minilm", tmp_path)
    values = ta.run_config(get_task("intent"), "minilm", "out", {"rank": 8}, True, tmp_path).to_dict()
    assert str(where).endswith("intent_minilm.yaml")
    assert values["learning_rate"] == 0.0005  # recipe
    assert (values["epochs"], values["max_samples"]) == (ta.QUICK_EPOCHS, ta.QUICK_SAMPLES)  # --quick
    assert values["rank"] == 8 and values["alpha"] is None  # explicit; alpha follows rank
    assert (values["task"], values["model"], values["output_dir"]) == ("intent", "minilm", "out")


def test_default_tasks_are_the_registered_encoder_tasks_and_causal_ones_are_refused(monkeypatch):
    names = ta.encoder_tasks()
    assert "intent" in names
    assert all(get_task(n).kind != "causal" for n in names)
    monkeypatch.setattr(ta, "get_task", lambda name: types.SimpleNamespace(name=name, kind="causal"))
    with pytest.raises(ValueError, match="loraroute train generative"):
        ta.train_all(["generative"], ["minilm"], resources=FAKE)


def test_cli_passes_epochs_samples_rank_and_alpha_to_every_run(monkeypatch, tmp_path):
    got = {}

    def fake_train_all(tasks, models, output_dir, settings, **kwargs):
        got.update(tasks=tasks, models=models, settings=settings, **kwargs)
        return [ta.RunRecord("intent", "minilm", status="ok")]

    monkeypatch.setattr(ta, "train_all", fake_train_all)
    rc = main(
        [
            "train-all",
            "--models",
            "minilm",
            "bert-base-uncased",
            "--epochs",
            "2",
            "--samples",
            "100",
            "--rank",
            "8",
            "--output-dir",
            str(tmp_path),
            "max_length=64",
        ]
    )
    assert rc == 0
    assert got["models"] == ["minilm", "bert-base-uncased"] and got["tasks"] is None
    assert got["settings"] == {"max_length": 64, "epochs": 2.0, "max_samples": 100, "rank": 8}
    assert got["fit"] is True and got["verify"] is True and got["quick"] is False
