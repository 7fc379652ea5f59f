"""One classifier over intent, PII and security: a batch of texts in, per text answers for every task asked.

Model inference (``infer``) is separate from shaping answers (``format``): inference runs without any request
option (intent probabilities always, PII entities at any confidence, the jailbreak score), and options --
probabilities, thresholds, explanations -- are applied afterwards per request. That is what lets the server batch
texts from requests with different options into one model call, and what makes every option take effect (upstream
ignores them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loraroute.serve.config import BACKENDS
from loraroute.serve.discovery import SERVE_TASKS

log = logging.getLogger(__name__)

# Upstream's defaults: category confidence 0.6, jailbreak threshold 0.7, PII entity confidence 0.5.
DEFAULT_THRESHOLDS = {"intent": 0.6, "pii": 0.5, "security": 0.7}


def load_predictor(path: Path, backend: str = "auto", threads: int | None = None) -> tuple[Any, str]:
    """(predictor, backend used): ONNX Runtime when an exported model exists (``auto``), else PyTorch."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    path = Path(path)
    if backend != "pytorch":
        int8 = backend == "onnx-int8"
        onnx_file = path / "onnx" / ("model.int8.onnx" if int8 else "model.onnx")
        try:
            from loraroute.export.onnx import OnnxPredictor
        except ImportError as exc:
            if backend != "auto":
                raise RuntimeError(f"backend {backend!r} needs loraroute.export.onnx ({exc})") from None
            OnnxPredictor = None
        if OnnxPredictor is not None and onnx_file.is_file():
            predictor = _server_onnx_predictor(OnnxPredictor, path, onnx_file, threads)
            return predictor, backend if backend != "auto" else "onnx"
        if backend != "auto":
            flag = " --int8" if int8 else ""
            raise FileNotFoundError(f"{onnx_file}: missing; write it with `loraroute export onnx {path}{flag}`")
    from loraroute.predict import Predictor

    return Predictor.load(path), "pytorch"


def _server_onnx_predictor(cls, path: Path, onnx_file: Path, threads: int | None):
    """OnnxPredictor on a session tuned for a server: ONNX Runtime's worker threads spin for a while after each
    call by default, which on a 2-core machine takes the CPU the event loop needs to parse the next requests."""
    import onnxruntime as ort

    from loraroute.models.loading import load_tokenizer
    from loraroute.predict import read_meta

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    session = ort.InferenceSession(str(onnx_file), options, providers=providers)
    return cls(session, load_tokenizer(str(path)), read_meta(path))


@dataclass
class Options:
    """Per-request options (upstream's schema). ``confidence_threshold`` replaces each asked task's threshold."""

    return_probabilities: bool = False
    confidence_threshold: float | None = None
    include_explanation: bool = False


class UnifiedClassifier:
    def __init__(self, predictors: dict[str, Any], thresholds: dict[str, float] | None = None,
                 info: dict[str, dict] | None = None):
        unknown = set(predictors) - set(SERVE_TASKS)
        if unknown:
            raise ValueError(f"unknown serving task(s) {sorted(unknown)}; known: {', '.join(SERVE_TASKS)}")
        self.predictors = predictors
        self.thresholds = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
        self.threshold_source = {task: "config" for task in SERVE_TASKS}
        security = predictors.get("security")
        calibrated = ((getattr(security, "meta", None) or {}).get("thresholds") or {}).get("threshold")
        if calibrated is not None:  # a calibrated threshold shipped with the model beats the generic default
            self.thresholds["security"] = float(calibrated)
            self.threshold_source["security"] = "thresholds.json"
        self.info = info or {task: {} for task in predictors}

    @classmethod
    def load(cls, chosen: dict[str, Path], backend: str = "auto", thresholds: dict[str, float] | None = None,
             warmup: bool = True, threads: int | None = None) -> "UnifiedClassifier":
        predictors, info = {}, {}
        for task, path in chosen.items():
            predictor, used = load_predictor(Path(path), backend, threads)
            predictors[task] = predictor
            info[task] = {"path": str(path), "backend": used, "labels": list(predictor.labels)}
            log.info("serving %s from %s (%s)", task, path, used)
        classifier = cls(predictors, thresholds, info)
        if warmup and predictors:  # first calls allocate buffers; keep that out of the first request's latency
            classifier.infer(["warm up the models"], classifier.tasks)
        return classifier

    @property
    def tasks(self) -> list[str]:
        return [t for t in SERVE_TASKS if t in self.predictors]

    # --- inference -----------------------------------------------------------------------------------------
    def infer(self, texts: list[str], tasks: list[str]) -> dict[str, list[dict]]:
        """Option-free model answers per task, in text order."""
        raw = {}
        for task in tasks:
            predictor = self.predictors[task]
            if task == "intent":
                raw[task] = predictor.predict(texts, return_probabilities=True)
            elif task == "pii":  # every decoded entity; the request's threshold filters them in format()
                raw[task] = predictor.predict(texts)
            else:
                raw[task] = predictor.predict(texts, return_probabilities=True)
        return raw

    # --- answers -------------------------------------------------------------------------------------------
    def threshold(self, task: str, options: Options) -> float:
        return options.confidence_threshold if options.confidence_threshold is not None else self.thresholds[task]

    def format(self, task: str, raw: dict, options: Options) -> dict:
        t = self.threshold(task, options)
        if task == "intent":
            out = {"category": raw["label"], "confidence": raw["confidence"], "low_confidence": raw["confidence"] < t}
            probs = raw.get("probabilities") or {}
            if options.return_probabilities:
                out["probabilities"] = probs
            if options.include_explanation:
                top = sorted(probs.items(), key=lambda kv: -kv[1])[:3]
                out["explanation"] = (", ".join(f"{k} {v:.2f}" for k, v in top) +
                                      f"; {'below' if out['low_confidence'] else 'at or above'} threshold {t:.2f}")
            return out
        if task == "pii":
            kept = [e for e in raw["entities"] if e["confidence"] >= t]
            out = {"has_pii": bool(kept), "entities": kept,
                   "dropped_below_threshold": len(raw["entities"]) - len(kept)}
            if options.include_explanation:
                found = ", ".join(f"{e['entity_type']} {e['text']!r} ({e['confidence']:.2f})" for e in kept)
                out["explanation"] = (f"{len(kept)} entit{'y' if len(kept) == 1 else 'ies'} at confidence >= "
                                      f"{t:.2f}" + (f": {found}" if found else ""))
            return out
        score = float(raw["score"])
        is_jb = score >= t
        label = raw.get("label", "jailbreak")
        out = {"is_jailbreak": is_jb,
               "threat_type": (label if label != "benign" else "jailbreak") if is_jb else "none",
               "confidence": score if is_jb else 1.0 - score, "score": score, "threshold": t}
        if options.return_probabilities and "probabilities" in raw:
            out["probabilities"] = raw["probabilities"]
        if options.include_explanation:
            source = "request" if options.confidence_threshold is not None else self.threshold_source["security"]
            out["explanation"] = (f"P(jailbreak) = {score:.3f} {'>=' if is_jb else '<'} threshold {t:.2f} "
                                  f"(from {source})")
        return out

    def classify(self, texts: list[str], tasks: list[str] | None = None,
                 options: Options | None = None) -> list[dict[str, dict]]:
        """Per text, ``{task: answer}`` for every task asked (default: every loaded task)."""
        tasks = tasks or self.tasks
        missing = [t for t in tasks if t not in self.predictors]
        if missing:
            raise KeyError(f"no model loaded for {', '.join(missing)}")
        options = options or Options()
        raw = self.infer(texts, tasks)
        return [{task: self.format(task, raw[task][i], options) for task in tasks} for i in range(len(texts))]


def task_statistics(task: str, answers: list[dict], threshold: float) -> dict:
    """Upstream's statistics block for one task's answers.

    intent: categories, mean confidence, answers under the threshold; security: benign/jailbreak counts, mean
    confidence of the verdict, verdicts whose score sits within 0.1 of the threshold (near-misses either way);
    pii: entity types found, mean entity confidence, entities dropped for being under the threshold.
    """
    dist: dict[str, int] = {}
    confidences: list[float] = []
    low = 0
    for a in answers:
        if task == "intent":
            dist[a["category"]] = dist.get(a["category"], 0) + 1
            confidences.append(a["confidence"])
            low += a["low_confidence"]
        elif task == "pii":
            for e in a["entities"]:
                dist[e["entity_type"]] = dist.get(e["entity_type"], 0) + 1
                confidences.append(e["confidence"])
            low += a["dropped_below_threshold"]
        else:
            key = "jailbreak" if a["is_jailbreak"] else "benign"
            dist[key] = dist.get(key, 0) + 1
            confidences.append(a["confidence"])
            low += abs(a["score"] - threshold) < 0.1
    avg = sum(confidences) / len(confidences) if confidences else 0.0
    return {"category_distribution": dist, "avg_confidence": avg, "low_confidence_count": int(low)}
