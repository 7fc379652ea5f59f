import argparse
import json
from dataclasses import fields

import pytest

from loraroute import __version__
from loraroute.cli import STATES_DEFAULT, build_parser, main
from loraroute.tasks import get_task, task_names


def help_text(*argv):
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args([*argv, "--help"])


@pytest.mark.parametrize("task", task_names())
def test_train_help_explains_every_config_option(task, capsys):
    help_text("train", task)
    out = capsys.readouterr().out
    for f in fields(get_task(task).config_class):
        if f.name != "task":
            assert "--" + f.name.replace("_", "-") in out, f.name
    assert "KEY=VALUE" in out


def test_top_level_and_predict_help(capsys):
    help_text()
    assert "train" in capsys.readouterr().out
    help_text("predict")
    out = capsys.readouterr().out
    assert "--input" in out and "--use-adapter" in out and "--threshold" in out


@pytest.mark.slow  # trains a tiny model end to end
def test_train_then_predict_through_the_command_line(tiny_encoder, intent_file, tmp_path, capsys):
    code = main(
        [
            "train",
            "intent",
            "--model",
            str(tiny_encoder("bert")),
            "--data",
            str(intent_file),
            "--output-dir",
            str(tmp_path),
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--name",
            "cli_model",
            "max_length=32",
            "rank=4",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "cli_model" in out
    model_dir = tmp_path / "cli_model"
    saved = (model_dir / "training_config.yaml").read_text()
    assert "rank: 4" in saved and "max_length: 32" in saved

    assert main(["predict", "--model", str(model_dir), "question: integral matrix"]) == 0
    result = json.loads(capsys.readouterr().out.strip())
    assert result["label"] in {"math", "law", "biology"} and 0 < result["confidence"] <= 1
    assert abs(sum(result["probabilities"].values()) - 1) < 1e-5

    (tmp_path / "in.jsonl").write_text('{"text": "court appeal", "id": 7}\n{"text": "gene dna", "id": 8}\n')
    assert (
        main(
            [
                "predict",
                "--model",
                str(model_dir),
                "--input",
                str(tmp_path / "in.jsonl"),
                "--output",
                str(tmp_path / "out.jsonl"),
                "--use-adapter",
            ]
        )
        == 0
    )
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [7, 8]
    assert all({"text", "label", "confidence", "probabilities"} <= set(r) for r in rows)


def test_bad_data_gives_an_error_message_not_a_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"txt": "x", "label": "a"}\n')
    assert main(["train", "intent", "--data", str(bad), "--output-dir", str(tmp_path)]) == 2
    assert "bad.jsonl:1: missing field 'text'" in capsys.readouterr().err


def test_clean_prints_what_it_removes_and_the_bytes_freed(tmp_path, capsys):
    stale = tmp_path / "models" / f".tmp-lora_x_model-{2**22 + 1}-abc123_z"  # pid above any pid_max: dead
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"x" * 2048)
    assert main(["clean", "--models-dir", str(tmp_path / "models"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would remove {stale}" in out and "2048 bytes" in out and stale.exists()
    assert main(["clean", "--models-dir", str(tmp_path / "models")]) == 0
    out = capsys.readouterr().out
    assert f"removed {stale}" in out and "2048 bytes" in out and "freed" in out and not stale.exists()


def test_help_says_where_checkpoints_go(capsys):
    help_text("train", "intent")
    out = " ".join(capsys.readouterr().out.split())
    assert ".loraroute-checkpoints" in out and "loraroute clean" in out
    help_text("clean")
    assert "--dry-run" in capsys.readouterr().out


def test_version_prints_the_program_and_its_version(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0 and capsys.readouterr().out == f"loraroute {__version__}\n"


def every_option(parser: argparse.ArgumentParser, command: str = "loraroute"):
    """(command, option action) for every option of every command and subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from every_option(sub, f"{command} {name}")
        elif action.help and action.help != argparse.SUPPRESS:
            yield command, action


def test_no_option_help_states_its_default_twice():
    for command, action in every_option(build_parser()):
        mentions = STATES_DEFAULT.findall(action.help)
        assert len(mentions) <= 1, f"{command} {action.option_strings}: {action.help}"
        assert "%(default)" not in action.help  # the config options' argparse default is SUPPRESS


def test_every_config_option_states_its_default_once():
    for command, action in every_option(build_parser()):
        if action.default is argparse.SUPPRESS and action.dest not in ("help", "version"):
            assert len(STATES_DEFAULT.findall(action.help)) == 1, f"{command} {action.option_strings}: {action.help}"


def test_help_explains_the_exit_status(capsys):
    help_text()
    out = " ".join(capsys.readouterr().out.split())
    assert "Exit status: 0 success; 1 a run that failed" in out and "2 bad usage, found before any model" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "intent", "epoch_count=2"], "unknown key(s) epoch_count"),
        (["train", "intent", "rank=eight"], "rank: expected int"),
        (["train", "intent", "rank=-1"], "rank must be positive"),
        (["train", "intent", "--report-to", "tensorbored"], "unknown tracker(s) tensorbored"),
        (["train", "intent", "--config", "no-such-recipe.yaml"], "no-such-recipe.yaml: no such file (--config)"),
        (["train", "intent", "--data", "./no-such.jsonl"], "./no-such.jsonl: no such file (--data)"),
        (["predict", "--model", "models/x", "--input", "no-such.jsonl"], "no-such.jsonl: no such file (--input)"),
        (["export", "onnx", "no-such-model"], "no-such-model: no such model directory"),
        (["train-all", "--tasks", "intent", "intnet"], "unknown task(s) intnet (--tasks)"),
        (["discover", "no-such-models"], "no-such-models: no such models directory"),
    ],
)
def test_bad_usage_exits_2_before_any_work(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no models/, no checkpoints: nothing ran


def test_an_unknown_option_exits_2(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["train", "intent", "--epoch-count", "2"])
    assert exit.value.code == 2 and "--epoch-count" in capsys.readouterr().err


def test_a_run_that_fails_exits_1(intent_file, tmp_path, capsys):
    not_a_model = tmp_path / "empty-model"
    not_a_model.mkdir()
    code = main(
        [
            "train",
            "intent",
            "--model",
            str(not_a_model),
            "--data",
            str(intent_file),
            "--output-dir",
            str(tmp_path / "models"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "\nerror: " in err and "Traceback" not in err  # a message after the run's log


@pytest.mark.parametrize(
    "argv, message",
    [
        (["predict", "--model", "m"], "give either TEXT arguments or --input FILE"),
        (["serve", "--models-dir", ".", "--port", "0"], "port must be positive"),
    ],
)
def test_commands_that_cannot_start_exit_2(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err
