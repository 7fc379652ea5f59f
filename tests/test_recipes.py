"""Recipes: every YAML in recipes/ loads with its task's config class, says how to run it, and overrides apply;
unknown keys are errors naming the key; the configuration saved with a model reproduces its run."""

from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from loraroute.cli import build_parser, config_from_args, main
from loraroute.tasks import get_task, task_names
from loraroute.train_all import encoder_tasks

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
RECIPE_FILES = sorted(RECIPES.glob("*.yaml"))
MODELS = ("minilm", "bert-base-uncased", "roberta-base", "modernbert-base")


def recipe_task(path: Path) -> str:
    return yaml.safe_load(path.read_text())["task"]


@pytest.mark.parametrize("path", RECIPE_FILES, ids=lambda p: p.name)
def test_every_recipe_loads_with_its_task_config_class(path):
    task = recipe_task(path)
    assert task in task_names(), f"{path.name}: task {task!r} is not a registered task"
    config_class = get_task(task).config_class
    cfg = config_class.from_yaml(path)
    assert type(cfg) is config_class
    assert path.stem == f"{task}_{cfg.model}", "file name is {task}_{model}.yaml"
    assert cfg.lora_alpha == 2 * cfg.rank


@pytest.mark.parametrize("path", RECIPE_FILES, ids=lambda p: p.name)
def test_every_recipe_header_gives_the_exact_command_that_runs_it(path):
    header = [line for line in path.read_text().splitlines() if line.startswith("#")]
    command = f"loraroute train {recipe_task(path)} --config recipes/{path.name}"
    assert any(line.split(":", 1)[-1].strip() == command for line in header), header


def test_there_is_a_recipe_per_encoder_task_and_base_model():
    for task in {"intent", "pii", "jailbreak"} | set(encoder_tasks()):
        for model in MODELS:
            assert (RECIPES / f"{task}_{model}.yaml").exists(), f"{task}_{model}.yaml"


def parse_train(argv):
    args = build_parser().parse_args(["train", *argv])
    task = get_task(args.task)
    return config_from_args(task.config_class, args, task=task.name)


def test_command_line_options_and_key_value_overrides_beat_the_recipe():
    recipe = str(RECIPES / "intent_bert-base-uncased.yaml")
    cfg = parse_train(["intent", "--config", recipe, "--epochs", "2", "rank=8", "max_length=64"])
    from_file = yaml.safe_load(Path(recipe).read_text())
    assert (cfg.epochs, cfg.rank, cfg.max_length) == (2.0, 8, 64)
    assert cfg.learning_rate == from_file["learning_rate"] and cfg.model == "bert-base-uncased"
    assert cfg.alpha == from_file["alpha"], "an explicit alpha in the recipe stays explicit"


@pytest.mark.parametrize("task", encoder_tasks())
def test_an_unknown_recipe_key_is_an_error_naming_the_key_and_file(task, tmp_path):
    recipe = tmp_path / "typo.yaml"
    recipe.write_text(f"task: {task}\nlearning_rat: 0.001\n")
    with pytest.raises(ValueError, match=r"typo\.yaml: unknown key\(s\) learning_rat"):
        get_task(task).config_class.from_yaml(recipe)


def test_an_unknown_override_key_is_an_error_naming_the_key():
    with pytest.raises(ValueError, match="unknown key.*epochz"):
        parse_train(["intent", "--config", str(RECIPES / "intent_minilm.yaml"), "epochz=3"])


def test_a_value_of_the_wrong_type_is_an_error_naming_the_key(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("task: intent\nrank: sixteen\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: rank: expected int"):
        get_task("intent").config_class.from_yaml(recipe)


def test_train_all_starts_each_run_from_its_recipe():
    from loraroute.train_all import recipe_for, run_config

    where = recipe_for(get_task("intent"), "roberta-base", RECIPES)
    values = run_config(get_task("intent"), "roberta-base", "out", {}, False, RECIPES).to_dict()
    assert str(where).endswith("intent_roberta-base.yaml")
    assert values["batch_size"] * values["grad_accum"] == 32


@pytest.mark.slow
def test_the_saved_training_config_reproduces_the_run(tiny_encoder, intent_file, tmp_path):
    first = tmp_path / "first"
    assert (
        main(
            [
                "train",
                "intent",
                "--model",
                str(tiny_encoder("bert")),
                "--data",
                str(intent_file),
                "--output-dir",
                str(first),
                "--name",
                "m",
                "epochs=2",
                "max_length=32",
                "batch_size=8",
                "learning_rate=0.01",
                "rank=4",
                "precision=fp32",
                "seed=5",
            ]
        )
        == 0
    )
    saved = first / "m" / "training_config.yaml"
    assert "loraroute train intent --config m/training_config.yaml" in saved.read_text()
    second = tmp_path / "second"
    assert main(["train", "intent", "--config", str(saved), f"output_dir={second}"]) == 0
    a, b = load_file(first / "m" / "model.safetensors"), load_file(second / "m" / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert yaml.safe_load((second / "m" / "training_config.yaml").read_text()) == {
        **yaml.safe_load(saved.read_text()),
        "output_dir": str(second),
    }


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*_minilm.yaml")), ids=lambda p: p.name)
def test_the_embedded_model_recipes_are_their_config_defaults(path):
    """The MiniLM recipes say they hold the measured defaults; a default changed without its recipe is caught."""
    settings = yaml.safe_load(path.read_text())
    task = settings.pop("task")
    cfg, default = get_task(task).config_class.from_yaml(path), get_task(task).config_class()
    assert settings.pop("alpha") == cfg.lora_alpha == default.lora_alpha
    assert {k: getattr(default, k) for k in settings} == settings
