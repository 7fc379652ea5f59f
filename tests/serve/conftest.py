"""Serving fixtures: tiny trained model directories, and stand-in predictors that keep the task contracts.

Intent (and PII, when its task is registered) models are really trained on tiny random encoders. Where a task's
module is not available the stand-ins answer in that task's contract shape, so the serving code is exercised on
exactly what a real predictor returns.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from loraroute.tasks import get_task
from loraroute.tasks.intent import IntentConfig
from loraroute.training import train_task
from tests.conftest import TINY_TRAINING, write_intent_jsonl

INTENT_PROBES = ["question 1: integral matrix prime", "question 2: tenant court appeal", "question 3: gene enzyme cell"]


def train_tiny_intent(encoder: Path, data: Path, out: Path, arch: str) -> Path:
    cfg = IntentConfig.from_dict(
        dict(
            model=str(encoder),
            data=str(data),
            output_dir=str(out),
            epochs=4,
            **TINY_TRAINING,
            name=f"lora_intent_classifier_{arch}_r4_model",
        )
    )
    return train_task(get_task("intent"), cfg).artifact_dir


def train_tiny_pii(encoder: Path, out: Path, arch: str) -> Path:
    task = get_task("pii")
    cfg = task.config_class.from_dict(
        dict(
            task="pii",
            model=str(encoder),
            output_dir=str(out),
            n_samples=200,
            max_samples=120,
            chat_samples=0,
            lookalike_samples=0,
            natural_repeats=0,
            epochs=1,
            batch_size=16,
            rank=4,
            max_length=48,
            early_stopping_patience=0,
            seed=3,
            precision="fp32",
            name=f"lora_pii_detector_{arch}_r4_model",
        )
    )
    return train_task(task, cfg).artifact_dir


def train_tiny_jailbreak(encoder: Path, out: Path, arch: str) -> Path:
    task = get_task("jailbreak")
    cfg = task.config_class.from_dict(
        dict(
            task="jailbreak",
            model=str(encoder),
            output_dir=str(out),
            max_per_class=60,
            epochs=1,
            batch_size=16,
            rank=4,
            max_length=48,
            early_stopping_patience=0,
            seed=3,
            precision="fp32",
            name=f"lora_jailbreak_classifier_{arch}_r4_model",
        )
    )
    return train_task(task, cfg).artifact_dir


@pytest.fixture(scope="session")
def real_set(tiny_encoder, trained_tree, tmp_path_factory) -> Path:
    """A models directory with real tiny models for every served task."""
    root = tmp_path_factory.mktemp("real-set")
    copy_model(trained_tree["intent_bert"], root / trained_tree["intent_bert"].name)
    copy_model(trained_tree["pii_bert"], root / trained_tree["pii_bert"].name)
    train_tiny_jailbreak(tiny_encoder("bert"), root, "bert")
    return root


@pytest.fixture(scope="session")
def trained_tree(tiny_encoder, tmp_path_factory) -> dict[str, Path]:
    """Real tiny model directories: intent on bert and roberta, PII on bert."""
    root = tmp_path_factory.mktemp("trained")
    data = write_intent_jsonl(root / "intent.jsonl")
    models = root / "models"
    out = {
        "intent_bert": train_tiny_intent(tiny_encoder("bert"), data, models, "bert"),
        "intent_roberta": train_tiny_intent(tiny_encoder("roberta"), data, models, "roberta"),
    }
    out["pii_bert"] = train_tiny_pii(tiny_encoder("bert"), models, "bert")
    return out


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


class FakeSecurity:
    """Jailbreak contract: a texts-to-score rule standing in for a trained classifier."""

    labels = ["benign", "jailbreak"]

    def __init__(self, threshold: float | None = None, fail: bool = False):
        self.meta = {"task": "jailbreak", "labels": self.labels}
        if threshold is not None:
            self.meta["thresholds"] = {"threshold": threshold}
        self.fail = fail
        self.calls: list[list[str]] = []

    @staticmethod
    def score(text: str) -> float:
        lowered = text.lower()
        return 0.95 if "ignore all previous" in lowered else 0.75 if "pretend" in lowered else 0.05

    def predict(self, texts, threshold=None, return_probabilities=True, **options):
        self.calls.append(list(texts))
        if self.fail:
            raise RuntimeError("inference backend crashed")
        t = threshold if threshold is not None else self.meta.get("thresholds", {}).get("threshold", 0.5)
        out = []
        for text in texts:
            p = self.score(text)
            jb = p >= t
            answer = {
                "label": "jailbreak" if jb else "benign",
                "is_jailbreak": jb,
                "score": p,
                "confidence": p if jb else 1 - p,
                "threshold": t,
            }
            if return_probabilities:
                answer["probabilities"] = {"benign": 1 - p, "jailbreak": p}
            out.append(answer)
        return out


class FakeIntent:
    """Intent contract: 'integral' is math, 'court' is law, anything else biology, at fixed confidences."""

    labels = ["biology", "law", "math"]

    def __init__(self):
        self.meta = {"task": "intent", "labels": self.labels}

    def predict(self, texts, return_probabilities=True, **options):
        out = []
        for text in texts:
            label = "math" if "integral" in text else "law" if "court" in text else "biology"
            probs = {name: 0.8 if name == label else 0.1 for name in self.labels}
            answer = {"label": label, "confidence": 0.8, "fallback": False}
            if return_probabilities:
                answer["probabilities"] = probs
            out.append(answer)
        return out


class FakePII:
    """PII contract: e-mail addresses (confidence 0.9) and 'Dr. Name' persons (confidence 0.4)."""

    labels = ["O", "B-EMAIL_ADDRESS", "I-EMAIL_ADDRESS", "B-PERSON", "I-PERSON"]
    PATTERNS = [("EMAIL_ADDRESS", re.compile(r"[\w.]+@[\w.]+\w"), 0.9), ("PERSON", re.compile(r"(?<=Dr\. )\w+"), 0.4)]

    def __init__(self):
        self.meta = {"task": "pii", "labels": self.labels}
        self.calls: list[list[str]] = []

    def predict(self, texts, threshold=None, **options):
        self.calls.append(list(texts))
        out = []
        for text in texts:
            entities = [
                {"entity_type": kind, "start": m.start(), "end": m.end(), "text": m.group(), "confidence": conf}
                for kind, pattern, conf in self.PATTERNS
                for m in pattern.finditer(text)
            ]
            if threshold is not None:
                entities = [e for e in entities if e["confidence"] >= threshold]
            out.append({"has_pii": bool(entities), "entities": entities})
        return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url, body=None, timeout=10, headers=None):
    """(status, JSON body, headers) of one request; ``body`` bytes go as they are, anything else as JSON."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers


def read_until_closed(sock: socket.socket) -> tuple[bytes, bytes]:
    """(status line and headers, body) of the one response a server sends before it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


@contextlib.contextmanager
def running_server(models: Path, log_path: Path, *options: str):
    """`loraroute serve` as its own process on a free loopback port; yields (base URL, process)."""
    port = free_port()
    log = open(log_path, "w")  # noqa: SIM115 -- the server process writes to it until the fixture ends
    proc = subprocess.Popen(
        [sys.executable, "-m", "loraroute.cli", "serve", "--models-dir", str(models), "--port", str(port), *options],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # import + model load on a contended 2-core machine
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                if call(base + "/health", timeout=2)[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, "server did not become healthy in 120 s"
            time.sleep(0.5)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
