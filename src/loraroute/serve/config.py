"""Server settings: one dataclass whose fields become `loraroute serve` options (kept free of heavy imports).

It shares :class:`loraroute.config.Settings` with the training configs: built by the same resolver, so an unknown
key is an error here too, and values are coerced and checked the same way."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from loraroute.config import ConfigError, Settings, option

BACKENDS = ("auto", "onnx", "onnx-int8", "pytorch")


@dataclass
class ServeConfig(Settings):
    models_dir: str = option("models", "Directory scanned for lora_* model directories (see `loraroute discover`).")
    host: str = option("127.0.0.1", "Interface to listen on (0.0.0.0 exposes the server to the network).")
    port: int = option(8080, "TCP port.")
    backend: str = option(
        "auto",
        "Inference backend: auto uses ONNX Runtime where onnx/model.onnx exists, else PyTorch.",
        choices=BACKENDS,
    )
    max_batch_texts: int = option(100, "Most texts one request may carry (upstream's batch limit); more gets 413.")
    max_text_chars: int = option(10_000, "Most characters per text; a longer text gets 413.")
    micro_batch_texts: int = option(64, "Most texts the server puts in one model call across concurrent requests.")
    micro_batch_wait_ms: float = option(2.0, "How long a batch waits for more requests when others are queued.")
    parallel_tasks: bool = option(
        True,
        "Run the tasks' models side by side on a lane per usable core (up to one per task; the cores left over "
        "become intra-op threads, unless --threads), work dealt to lanes by measured cost; --no-parallel-tasks "
        "runs them one after another, each on every core (docs/benchmarks.md).",
    )
    intent_threshold: float | None = option(
        None, "Intent confidence under which an answer is flagged low_confidence (unset: upstream's 0.6)."
    )
    pii_threshold: float | None = option(None, "Minimum PII entity confidence (unset: upstream's 0.5).")
    security_threshold: float | None = option(
        None, "P(jailbreak) decision threshold (unset: the model's calibrated thresholds.json, else upstream's 0.7)."
    )
    threads: int | None = option(None, "CPU threads per model call, PyTorch and ONNX Runtime (default: theirs).")
    strict: bool = option(
        False, "Answer 400 to request fields the API does not know (default: ignore and log them, as upstream does)."
    )
    # --- limits: one client must not take the server down for the others -------------------------------------
    max_body_bytes: int = option(
        10 * 1024 * 1024,
        "Largest request body in bytes, counted while it streams "
        "(chunked or not); more gets 413. Upstream's limit is 10 MiB.",
    )
    max_queued_texts: int = option(
        2000,
        "Texts waiting for the models across all requests; a request that would go past it gets 503 with Retry-After.",
    )
    chunk_chars: int = option(
        8000,
        "Characters of text per unit of model work: a large request is split into units "
        "this size and interleaved with other requests, so a small request waits for "
        "at most about one unit.",
    )
    request_timeout_s: float = option(
        30.0, "Seconds a request may take end to end before it gets 504 and its remaining work is dropped."
    )
    header_timeout_s: float = option(10.0, "Seconds a client has to send a request's headers.")
    body_timeout_s: float = option(30.0, "Seconds a client has to send a request's whole body.")
    keep_alive_s: float = option(5.0, "Seconds an idle keep-alive connection stays open.")
    max_connections: int = option(256, "Open connections and requests at once; more get 503 at once.")
    # --- access ---------------------------------------------------------------------------------------------------
    api_key_file: str | None = option(
        None,
        "File holding the API key (one line). Every endpoint but /health then needs 'Authorization: Bearer "
        "KEY'. The LORAROUTE_API_KEY environment variable does the same.",
    )
    docs: bool = option(True, "Serve the interactive API docs at /docs (--no-docs turns them off).")
    cors_origins: list[str] = option(
        [],
        "Origins a browser may call the API from (CORS), e.g. "
        "https://console.example.com; '*' allows any. None by default.",
    )
    # --- operations -------------------------------------------------------------------------------------------------
    log_format: str = option(
        "text", "Log lines as text or as one JSON object a line; each carries the request id.", choices=("text", "json")
    )
    access_log: bool = option(False, "Log one line per request (client, method, path, status, milliseconds).")

    def validate(self) -> None:
        problems = []
        for name in (
            "port",
            "max_batch_texts",
            "max_text_chars",
            "micro_batch_texts",
            "max_body_bytes",
            "max_queued_texts",
            "chunk_chars",
            "max_connections",
        ):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be positive")
        for name in ("request_timeout_s", "header_timeout_s", "body_timeout_s", "keep_alive_s"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive")
        if self.micro_batch_wait_ms < 0:
            problems.append("micro_batch_wait_ms must be >= 0")
        for name in ("intent_threshold", "pii_threshold", "security_threshold"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                problems.append(f"{name} must be in [0, 1]")
        if self.max_queued_texts < self.max_batch_texts:
            problems.append("max_queued_texts must be at least max_batch_texts (else a full request never fits)")
        problems += self.choice_problems()  # backend, log_format
        if problems:
            raise ConfigError("Invalid serve configuration: " + "; ".join(problems))

    def thresholds(self) -> dict[str, float | None]:
        """Thresholds the operator set (None: the model's or the task's own)."""
        return {"intent": self.intent_threshold, "pii": self.pii_threshold, "security": self.security_threshold}

    def api_key(self) -> str | None:
        """The bearer token from --api-key-file, else $LORAROUTE_API_KEY; None leaves the API open."""
        if self.api_key_file:
            try:
                key = Path(self.api_key_file).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{self.api_key_file}: cannot read the API key ({exc})") from None
            if not key:
                raise ConfigError(f"{self.api_key_file}: the API key file is empty")
            return key
        return os.environ.get("LORAROUTE_API_KEY", "").strip() or None
