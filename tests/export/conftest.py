"""Tiny trained model directories for the export and verify tests (trained once per session, copied to corrupt)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from loraroute.tasks import get_task
from loraroute.tasks.intent import IntentConfig
from loraroute.training import train_task
from tests.conftest import TINY_TRAINING, write_intent_jsonl


@pytest.fixture(scope="session")
def intent_artifact(tiny_encoder, tmp_path_factory):
    """Factory: arch -> a trained tiny intent model directory (math, law, biology).

    Ten epochs, as in tests/test_train.py: after three, most probe margins are below 0.05 logits, where int8
    rounding flips a near-tie; a trained model's margins are what int8 agreement is meant to measure."""
    cache: dict[str, Path] = {}

    def make(arch: str = "bert") -> Path:
        if arch not in cache:
            tmp = tmp_path_factory.mktemp(f"intent-{arch}")
            data = write_intent_jsonl(tmp / "d.jsonl")
            cfg = IntentConfig.from_dict(
                dict(
                    model=str(tiny_encoder(arch)),
                    data=str(data),
                    output_dir=str(tmp),
                    epochs=10,
                    **TINY_TRAINING,
                )
            )
            cache[arch] = train_task(get_task("intent"), cfg).artifact_dir
        return cache[arch]

    return make


@pytest.fixture(scope="session")
def pii_artifact(tiny_encoder, tmp_path_factory):
    """A trained tiny PII (token classification) model directory, from the offline generator."""
    from loraroute.tasks.pii import PIIConfig

    tmp = tmp_path_factory.mktemp("pii")
    cfg = PIIConfig.from_dict(
        dict(
            model=str(tiny_encoder("bert")),
            output_dir=str(tmp),
            n_samples=240,
            max_samples=None,
            chat_samples=0,
            lookalike_samples=0,
            natural_repeats=0,
            epochs=3,
            batch_size=16,
            learning_rate=1e-2,
            rank=4,
            max_length=64,
            early_stopping_patience=0,
            seed=3,
            precision="fp32",
        )
    )
    return train_task(get_task("pii"), cfg).artifact_dir


@pytest.fixture
def copy_of(tmp_path):
    """Copy a model directory (keeping its lora_* name) so a test can corrupt it."""

    def make(model_dir: Path) -> Path:
        return Path(shutil.copytree(model_dir, tmp_path / Path(model_dir).name))

    return make
