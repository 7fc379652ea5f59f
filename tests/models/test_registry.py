import pytest
import torch.nn as nn

from loraroute.models.loading import attach_lora, load_base_model
from loraroute.models.registry import (
    ALIASES,
    LORA_TARGETS,
    arch_name,
    candle_config_fields,
    head_modules,
    lora_targets,
    resolve_model,
)
from tests.conftest import ENCODER_ARCHS


@pytest.mark.parametrize("arch", ENCODER_ARCHS)
def test_targets_resolve_from_model_type_and_attach_to_every_layer(tiny_encoder, arch):
    model = load_base_model(str(tiny_encoder(arch)), "sequence", ["a", "b"])
    targets = lora_targets(model)
    assert targets == LORA_TARGETS[model.config.model_type]
    peft_model = attach_lora(model, "sequence", rank=4, alpha=8, dropout=0.0, target_modules=None, seed=0)
    adapted = {name.rsplit(".", 1)[0] for name, _ in peft_model.named_parameters() if "lora_A" in name}
    for target in targets:
        assert any(name.endswith(target) or f".{target}." in name for name in adapted), target
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert any("lora_A" in n for n in trainable)
    # the classification head is trained in full, not frozen
    assert any("classifier" in n and "lora" not in n for n in trainable)


def test_unsupported_model_type_names_supported_ones_and_the_override():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = type("C", (), {"model_type": "gpt-odd"})()
            self.proj = nn.Linear(4, 4)

    with pytest.raises(ValueError) as err:
        lora_targets(Odd())
    assert "gpt-odd" in str(err.value) and "--target-modules" in str(err.value) and "modernbert" in str(err.value)
    assert lora_targets(Odd(), ["proj"]) == ["proj"]


def test_missing_target_module_is_reported_with_the_real_layer_names(tiny_encoder):
    model = load_base_model(str(tiny_encoder("bert")), "sequence", ["a", "b"])
    with pytest.raises(ValueError, match="q_proj.*not found.*query"):
        lora_targets(model, ["q_proj"])


def test_bert_head_includes_pooler_and_classifier(tiny_encoder):
    model = load_base_model(str(tiny_encoder("bert")), "sequence", ["a", "b"])
    assert set(head_modules(model)) == {"classifier", "pooler"}


def test_model_references_resolve_offline_and_name_artifacts():
    assert resolve_model("minilm").endswith("model")
    assert resolve_model("bert-base-uncased") == ALIASES["bert-base-uncased"]
    assert arch_name("minilm") == "minilm"
    assert arch_name("FacebookAI/roberta-base") == "roberta-base"
    assert arch_name("some-org/My_Model") == "my-model"


def test_hub_model_that_cannot_be_fetched_says_to_pass_a_local_path(monkeypatch):
    import huggingface_hub.constants

    # Offline mode answers at once; without it the same error comes after the hub client's network retries.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(RuntimeError, match="local directory"):
        load_base_model("no-such-org/no-such-model", "sequence", ["a", "b"])


def test_modernbert_configs_get_the_field_names_candle_parses():
    layers = ["full_attention", "sliding_attention", "sliding_attention"] * 7 + ["full_attention"]  # base: 22
    config = {
        "model_type": "modernbert",
        "norm_eps": 1e-5,
        "layer_types": layers,
        "rope_parameters": {"full_attention": {"rope_theta": 160000.0}, "sliding_attention": {"rope_theta": 10000.0}},
    }
    assert candle_config_fields(config) == {
        "layer_norm_eps": 1e-5,
        "global_attn_every_n_layers": 3,
        "global_rope_theta": 160000.0,
        "local_rope_theta": 10000.0,
    }
    irregular = {
        **config,
        "layer_types": [
            "full_attention",
            "sliding_attention",
            "full_attention",
            "sliding_attention",
            "sliding_attention",
            "full_attention",
        ],
    }
    assert "global_attn_every_n_layers" not in candle_config_fields(irregular)  # no n describes it: left out
    assert "layer_norm_eps" not in candle_config_fields({**config, "layer_norm_eps": 1e-6})  # present: kept
    assert candle_config_fields({"model_type": "bert", "norm_eps": 1e-5}) == {}
