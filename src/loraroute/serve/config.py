"""Server settings: one dataclass whose fields become `loraroute serve` options (kept free of heavy imports)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from loraroute.config import option

BACKENDS = ("auto", "onnx", "onnx-int8", "pytorch")


@dataclass
class ServeConfig:
    models_dir: str = option("models", "Directory scanned for lora_* model directories (see `loraroute discover`).")
    host: str = option("127.0.0.1", "Interface to listen on (0.0.0.0 exposes the server to the network).")
    port: int = option(8080, "TCP port.")
    backend: str = option("auto", "Inference backend: auto uses ONNX Runtime where onnx/model.onnx exists, else "
                                  "PyTorch.", choices=BACKENDS)
    max_batch_texts: int = option(100, "Most texts one request may carry (upstream's batch limit); more gets 413.")
    max_text_chars: int = option(10_000, "Most characters per text; a longer text gets 413.")
    micro_batch_texts: int = option(64, "Most texts the server puts in one model call across concurrent requests.")
    micro_batch_wait_ms: float = option(2.0, "How long a batch waits for more requests when others are queued.")
    parallel_tasks: bool = option(
        False, "Run the three tasks' models side by side, one ONNX Runtime thread each (unless --threads): lower "
               "latency for one prompt, lower throughput under load (docs/benchmarks.md).")
    intent_threshold: float = option(0.6, "Intent confidence under which an answer is flagged low_confidence.")
    pii_threshold: float = option(0.5, "Minimum PII entity confidence.")
    security_threshold: float = option(0.7, "P(jailbreak) decision threshold when the model ships no thresholds.json.")
    threads: int | None = option(None, "CPU threads per model call, PyTorch and ONNX Runtime (default: theirs).")

    def validate(self) -> None:
        problems = []
        for name in ("port", "max_batch_texts", "max_text_chars", "micro_batch_texts"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be positive")
        if self.micro_batch_wait_ms < 0:
            problems.append("micro_batch_wait_ms must be >= 0")
        for name in ("intent_threshold", "pii_threshold", "security_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be in [0, 1]")
        if self.backend not in BACKENDS:
            problems.append(f"backend must be one of {', '.join(BACKENDS)}")
        if problems:
            raise ValueError("Invalid serve configuration: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ServeConfig":
        cfg = cls(**{k: v for k, v in values.items() if k in {f.name for f in fields(cls)}})
        cfg.validate()
        return cfg

    def thresholds(self) -> dict[str, float]:
        return {"intent": self.intent_threshold, "pii": self.pii_threshold, "security": self.security_threshold}
