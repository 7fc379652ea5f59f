"""loraroute.models.loading: base models with a fresh head, tokenizers, pickle refusal, LoRA seeding, precision."""

from __future__ import annotations

import pytest
import torch

from loraroute.models.loading import (
    attach_lora,
    load_base_model,
    load_tokenizer,
    refuse_pickle_only,
    resolve_precision,
    trainable_parameters,
)


def test_a_pickle_only_directory_is_refused_with_the_files_named(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"never unpickled")
    (tmp_path / "extra.pt").write_bytes(b"never unpickled")
    with pytest.raises(ValueError, match=r"only pickle weights \(extra.pt, pytorch_model.bin\).*safetensors only"):
        refuse_pickle_only(tmp_path)


def test_safetensors_beside_pickles_and_a_missing_path_are_accepted(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"ignored")
    (tmp_path / "model.safetensors").write_bytes(b"")
    refuse_pickle_only(tmp_path)
    refuse_pickle_only(tmp_path / "not-there")  # a hub id is checked after download, not here


@pytest.mark.parametrize("kind", ["sequence", "token"])
def test_base_model_gets_a_fresh_head_named_by_the_labels(tiny_encoder, kind):
    model = load_base_model(str(tiny_encoder("bert")), kind, ["neg", "pos", "other"])
    assert model.config.num_labels == 3
    assert model.config.id2label == {0: "neg", 1: "pos", 2: "other"}
    assert model.config.label2id == {"neg": 0, "pos": 1, "other": 2}


def test_model_dropout_overrides_every_dropout_field_the_config_has(tiny_encoder):
    model = load_base_model(str(tiny_encoder("bert")), "sequence", ["a", "b"], model_dropout=0.0)
    assert model.config.hidden_dropout_prob == 0.0 and model.config.attention_probs_dropout_prob == 0.0
    kept = load_base_model(str(tiny_encoder("bert")), "sequence", ["a", "b"], model_dropout=None)
    assert kept.config.hidden_dropout_prob == pytest.approx(0.1)  # BertConfig's own default


def test_a_byte_level_bpe_tokenizer_gets_a_prefix_space(tiny_bpe_encoder):
    tok = load_tokenizer(str(tiny_bpe_encoder("roberta")))
    assert tok.is_fast
    # with a prefix space, a word at the start tokenizes as the same word inside a sentence
    assert tok("hello", add_special_tokens=False)["input_ids"] == tok(" hello", add_special_tokens=False)["input_ids"]


def test_attach_lora_is_seeded_and_trains_only_lora_and_the_head(tiny_encoder):
    def build():
        model = load_base_model(str(tiny_encoder("bert")), "sequence", ["a", "b"])
        return attach_lora(model, "sequence", rank=4, alpha=8, dropout=0.0, target_modules=None, seed=7)

    first, second = build(), build()
    lora = [(n, a, b) for (n, a), (_, b) in zip(first.named_parameters(), second.named_parameters()) if "lora_" in n]
    assert lora
    for name, a, b in lora:
        assert torch.equal(a, b), name  # same seed: the same LoRA A matrices (B starts at zero)
    trainable = {n for n, p in first.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "classifier" in n or "pooler" in n for n in trainable)
    n_trainable, n_total = trainable_parameters(first)
    assert 0 < n_trainable < n_total


def test_explicit_precision_is_kept_and_auto_honours_the_fp32_override(monkeypatch):
    assert resolve_precision("fp16") == "fp16"
    if not torch.cuda.is_available():
        monkeypatch.setenv("LORAROUTE_FORCE_FP32", "1")
        assert resolve_precision("auto") == "fp32"
