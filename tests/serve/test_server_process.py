"""The real thing: `loraroute serve` as its own process on a free loopback port, called over HTTP."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.serve.conftest import INTENT_PROBES, copy_model

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url, body=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_serve_command_answers_batches_over_http(trained_tree, tmp_path):
    models = tmp_path / "models"
    copy_model(trained_tree["intent_bert"], models / "lora_intent_classifier_bert_r4_model")
    port = free_port()
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "loraroute.cli", "serve", "--models-dir", str(models),
                             "--port", str(port), "--max-batch-texts", "8"],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # import + model load on a contended 2-core machine
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if call(base + "/health", timeout=2)[1]["status"] == "healthy":
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, "server did not become healthy in 120 s"
            time.sleep(0.5)
        status, body = call(base + "/api/v1/classify/batch",
                            {"texts": INTENT_PROBES, "task_type": "all", "options": {"return_probabilities": True}})
        assert status == 200 and body["total_count"] == 3
        assert all(set(r["intent"]["probabilities"]) == {"biology", "law", "math"} for r in body["results"])
        assert body["unavailable_tasks"] == ["pii", "security"]
        status, body = call(base + "/api/v1/classify/batch", {"texts": ["x"] * 9})
        assert status == 413 and body["error"]["code"] == "INVALID_INPUT"
        assert "lora_intent_classifier_bert_r4_model" in (tmp_path / "server.log").read_text()  # discovery table
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
