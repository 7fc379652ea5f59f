"""Tiny trained model directories for the inference tests (trained once per session; copy one to change it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write_intent_jsonl
from tests.serve.conftest import train_tiny_intent, train_tiny_pii


@pytest.fixture(scope="session")
def trained(tiny_encoder, tmp_path_factory) -> dict[str, Path]:
    """Task name -> a trained tiny BERT model directory (merged model at the top, adapter/ beside it)."""
    root = tmp_path_factory.mktemp("inference")
    models = root / "models"
    return {
        "intent": train_tiny_intent(tiny_encoder("bert"), write_intent_jsonl(root / "intent.jsonl"), models, "bert"),
        "pii": train_tiny_pii(tiny_encoder("bert"), models, "bert"),
    }
