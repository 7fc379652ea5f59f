import pytest

from loraroute.config import ConfigError, TrainConfig, parse_overrides, resolve_config
from loraroute.serve.config import ServeConfig
from loraroute.tasks.intent import IntentConfig


def test_yaml_round_trip_keeps_every_value(tmp_path):
    cfg = TrainConfig(model="bert-base-uncased", rank=8, target_modules=["query", "value"], max_samples=100)
    path = tmp_path / "c.yaml"
    cfg.to_yaml(path, header="loraroute train intent --config c.yaml")
    assert path.read_text().startswith("# loraroute train intent")
    assert TrainConfig.from_yaml(path) == cfg


def test_unknown_key_is_an_error_that_names_the_key_and_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("rank: 8\nlearnin_rate: 0.1\n")
    with pytest.raises(ValueError, match=r"c\.yaml: unknown key\(s\) learnin_rate"):
        TrainConfig.from_yaml(path)


def test_overrides_apply_last_and_parse_types(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("rank: 8\nepochs: 2\n")
    cfg = TrainConfig.from_yaml(path, ["rank=4", "target_modules=[query,value]", "group_by_length=false"])
    assert (cfg.rank, cfg.epochs, cfg.target_modules, cfg.group_by_length) == (4, 2.0, ["query", "value"], False)
    assert cfg.lora_alpha == 8  # alpha follows 2 x rank unless set


def test_wrong_types_and_values_are_reported_by_field():
    with pytest.raises(ValueError, match="rank: expected int"):
        TrainConfig.from_dict({"rank": "big"})
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig.from_dict({"precision": "fp8"})
    with pytest.raises(ValueError, match="val_size \\+ test_size"):
        TrainConfig.from_dict({"val_size": 0.5, "test_size": 0.5})
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["rank"])


def test_every_option_has_help_text():
    from dataclasses import fields

    assert all(f.metadata.get("help") for f in fields(TrainConfig))


# --- the resolver ---------------------------------------------------------------------------------------------
def test_each_layer_overrides_the_ones_below_it(tmp_path):
    """dataclass defaults < defaults < YAML file < options < key=value overrides < fixed."""
    path = tmp_path / "c.yaml"
    path.write_text("rank: 3\nepochs: 3\nseed: 3\nname: from-yaml\n")
    cfg = resolve_config(
        TrainConfig,
        defaults={"rank": 2, "epochs": 2, "seed": 2, "name": "from-defaults", "max_length": 32},
        yaml_path=path,
        options={"epochs": 4, "seed": 4, "name": "from-options"},
        overrides=["seed=5", "name=from-overrides"],
        fixed={"name": "fixed"},
    )
    assert (cfg.max_length, cfg.rank, cfg.epochs, cfg.seed, cfg.name) == (32, 3, 4.0, 5, "fixed")
    assert cfg.batch_size == TrainConfig().batch_size  # no layer sets it: the dataclass default


def test_values_are_coerced_where_they_enter_and_checked_once_merged(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("rank: 0\n")  # out of range alone, fine once an option replaces it
    cfg = resolve_config(TrainConfig, yaml_path=path, options={"rank": "8", "group_by_length": "no"})
    assert (cfg.rank, cfg.group_by_length) == (8, False)
    path.write_text("rank: eight\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: rank: expected int"):
        resolve_config(TrainConfig, yaml_path=path, options={"rank": 8})


@pytest.mark.parametrize("cls", [TrainConfig, IntentConfig, ServeConfig], ids=lambda c: c.__name__)
def test_an_unknown_key_is_an_error_naming_the_file_or_the_option_and_the_key(cls, tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text("prot: 8080\n")
    with pytest.raises(ConfigError, match=rf"settings\.yaml: unknown key\(s\) prot for {cls.__name__}"):
        resolve_config(cls, yaml_path=path)
    with pytest.raises(ConfigError, match=rf"command line: unknown key\(s\) prot for {cls.__name__}"):
        resolve_config(cls, options={"prot": 8080}, where="command line")
    with pytest.raises(ConfigError, match=r"key=value overrides: unknown key\(s\) prot"):
        resolve_config(cls, overrides=["prot=8080"])
    with pytest.raises(ConfigError, match=r"unknown key\(s\) prot"):
        cls.from_dict({"prot": 8080})


def test_serve_config_is_built_and_checked_like_a_training_config(tmp_path):
    path = tmp_path / "serve.yaml"
    path.write_text("port: '9000'\nbackend: onnx\n")
    assert (ServeConfig.from_yaml(path).port, ServeConfig.from_yaml(path).backend) == (9000, "onnx")
    with pytest.raises(ConfigError, match="backend must be one of auto, onnx, onnx-int8, pytorch"):
        ServeConfig.from_dict({"backend": "tensorrt"})
    with pytest.raises(ConfigError, match="port must be positive"):
        ServeConfig.from_dict({"port": 0})


def test_serve_options_given_on_the_command_line_override_the_defaults(tmp_path):
    from loraroute.cli import build_parser, config_from_args

    args = build_parser().parse_args(["serve", "--models-dir", str(tmp_path), "--port", "9000", "--no-docs"])
    cfg = config_from_args(ServeConfig, args)
    assert (cfg.models_dir, cfg.port, cfg.docs, cfg.host) == (str(tmp_path), 9000, False, ServeConfig().host)


def test_train_task_refuses_a_config_that_is_not_the_tasks_own(tmp_path):
    from loraroute.tasks import get_task
    from loraroute.training import train_task

    with pytest.raises(TypeError, match=r"intent needs its own config class, IntentConfig .*not TrainConfig"):
        train_task(get_task("intent"), TrainConfig(output_dir=str(tmp_path)))
    assert not any(tmp_path.iterdir())  # refused before any work
