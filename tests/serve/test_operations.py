"""An operable service: Prometheus metrics, request ids in every log line, JSON logs, an access log, CORS."""

import json
import logging

import pytest
from fastapi.testclient import TestClient

from loraroute.serve.api import create_app
from loraroute.serve.config import ServeConfig
from loraroute.serve.metrics import JsonFormatter, RequestIdFilter
from loraroute.serve.unified import UnifiedClassifier
from tests.serve.conftest import FakeIntent, FakePII, FakeSecurity

BATCH = "/api/v1/classify/batch"


def app_with(**settings):
    classifier = UnifiedClassifier(
        {"intent": FakeIntent(), "pii": FakePII(), "security": FakeSecurity()},
        info={t: {"model": f"lora_{t}_dir", "backend": "pytorch"} for t in ("intent", "pii", "security")},
    )
    return create_app(classifier, None, ServeConfig(**settings))


def metric(text: str, name: str, **labels) -> float:
    """The value of one sample in a Prometheus exposition (labels in any order)."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        sample, _, rest = head.partition("{")
        found = dict(pair.split("=", 1) for pair in rest.rstrip("}").split(",")) if rest else {}
        if sample == name and found == {k: f'"{v}"' for k, v in labels.items()}:
            return float(value)
    raise AssertionError(f"no sample {name}{labels} in\n{text}")


def test_metrics_count_requests_errors_model_calls_and_name_the_models():
    with TestClient(app_with()) as client:
        for _ in range(3):
            assert client.post(BATCH, json={"texts": ["a", "b"], "task_type": "all"}).status_code == 200
        assert client.post(BATCH, json={"texts": []}).status_code == 400
        assert client.get("/no/such/route").status_code == 404
        response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert metric(text, "loraroute_requests_total", endpoint=BATCH, status="200") == 3
    assert metric(text, "loraroute_requests_total", endpoint=BATCH, status="400") == 1
    assert metric(text, "loraroute_requests_total", endpoint="unmatched", status="404") == 1
    assert metric(text, "loraroute_errors_total", code="INVALID_INPUT") == 1
    assert metric(text, "loraroute_errors_total", code="NOT_FOUND") == 1
    assert metric(text, "loraroute_request_seconds_count", endpoint=BATCH) == 4
    for task in ("intent", "pii", "security"):
        assert metric(text, "loraroute_model_call_texts_sum", task=task) == 6  # 3 requests x 2 texts
    assert metric(text, "loraroute_queued_texts") == 0
    assert (
        metric(
            text, "loraroute_model_info", task="security", model="lora_security_dir", backend="pytorch", threshold="0.7"
        )
        == 1
    )


class Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.addFilter(RequestIdFilter())
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def records():
    handler = Records()
    for name in ("loraroute.serve", "loraroute.access"):
        logging.getLogger(name).addHandler(handler)
    logging.getLogger("loraroute.access").setLevel(logging.INFO)
    yield handler.records
    for name in ("loraroute.serve", "loraroute.access"):
        logging.getLogger(name).removeHandler(handler)


def test_the_request_id_is_echoed_or_made_and_on_every_log_line_of_the_request(records):
    failing = FakeSecurity(fail=True)
    app = create_app(UnifiedClassifier({"security": failing}), None, ServeConfig(access_log=True))
    with TestClient(app) as client:
        given = client.post(BATCH, json={"texts": ["hi"], "task_type": "security"}, headers={"X-Request-ID": "req-42"})
        made = client.get("/health", headers={"X-Request-ID": "bad id\nforged log line"})
    assert given.status_code == 500 and given.headers["x-request-id"] == "req-42"
    assert given.json()["error"]["request_id"] == "req-42"
    assert made.headers["x-request-id"] != "bad id\nforged log line" and len(made.headers["x-request-id"]) == 16
    failure = [r for r in records if r.name == "loraroute.serve" and r.levelno == logging.ERROR]
    assert failure and all(r.request_id == "req-42" for r in failure) and failure[0].exc_info
    access = [r.getMessage() for r in records if r.name == "loraroute.access"]
    assert any(BATCH in line and " 500 " in line for line in access)
    assert any("/health" in line and " 200 " in line for line in access)
    line = json.loads(JsonFormatter().format(failure[0]))
    assert (
        line["request_id"] == "req-42" and line["level"] == "ERROR" and "inference backend crashed" in line["exception"]
    )


def test_the_access_log_is_off_by_default(records):
    with TestClient(app_with()) as client:
        client.get("/health")
    assert not [r for r in records if r.name == "loraroute.access"]


def test_cors_answers_a_browsers_preflight_before_the_key_check(tmp_path):
    key = tmp_path / "key"
    key.write_text("k")
    app = app_with(cors_origins=["https://console.example.com"], api_key_file=str(key))
    with TestClient(app) as client:
        preflight = client.options(
            BATCH,
            headers={
                "Origin": "https://console.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://console.example.com"
        denied = client.post(BATCH, json={"texts": ["a"]}, headers={"Origin": "https://console.example.com"})
        assert denied.status_code == 401
        other = client.options(
            BATCH, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in other.headers
    with TestClient(app_with()) as client:  # no origins configured: no CORS headers at all
        plain = client.post(BATCH, json={"texts": ["a"]}, headers={"Origin": "https://console.example.com"})
        assert "access-control-allow-origin" not in plain.headers
