"""What an operator watches: Prometheus metrics (``GET /metrics``) and log lines that carry the request id.

Each app has its own registry, so several apps in one process (tests, benchmarks) never share counters. Label
values are bounded: endpoints are the app's own routes (anything else is ``unmatched``), tasks are the served ones,
and error codes are the server's own.
"""

from __future__ import annotations

import json
import logging
import time
from contextvars import ContextVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")
CONTENT_TYPE = CONTENT_TYPE_LATEST
# A one-text call takes 5-60 ms on 2 cores; a full 100 x 10,000-character request tens of seconds.
SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TEXTS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    def __init__(self, endpoints: set[str]):
        self.endpoints = endpoints
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "loraroute_requests",
            "HTTP requests answered, by endpoint and status code",
            ["endpoint", "status"],
            registry=r,
        )
        self.errors = Counter("loraroute_errors", "Error answers by error code", ["code"], registry=r)
        self.latency = Histogram(
            "loraroute_request_seconds",
            "Time from request to response, by endpoint",
            ["endpoint"],
            buckets=SECONDS,
            registry=r,
        )
        self.task_seconds = Histogram(
            "loraroute_model_call_seconds", "Time of one model call, by task", ["task"], buckets=SECONDS, registry=r
        )
        self.batch_texts = Histogram(
            "loraroute_model_call_texts", "Texts in one model call, by task", ["task"], buckets=TEXTS, registry=r
        )
        self.queued = Gauge("loraroute_queued_texts", "Texts waiting for the models", registry=r)
        self.model_info = Gauge(
            "loraroute_model_info",
            "Served models (value 1), with directory, backend and threshold",
            ["task", "model", "backend", "threshold"],
            registry=r,
        )

    def endpoint(self, path: str) -> str:
        return path if path in self.endpoints else "unmatched"

    def observe_response(self, path: str, status: int, seconds: float) -> None:
        endpoint = self.endpoint(path)
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def observe_call(self, task: str, texts: int, seconds: float) -> None:
        self.task_seconds.labels(task).observe(seconds)
        self.batch_texts.labels(task).observe(texts)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every log record (``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: what log shippers (Loki, Elasticsearch, CloudWatch) parse without a pattern."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(log_format: str) -> None:
    """The root handler for ``serve``: every line (uvicorn's included) carries the request id."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        JsonFormatter()
        if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s", datefmt="%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
