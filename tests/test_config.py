import pytest

from loraroute.config import TrainConfig, parse_overrides


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
