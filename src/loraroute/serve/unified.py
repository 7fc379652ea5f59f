"""One classifier over intent, PII and security: a batch of texts in, per text answers for every task asked.

Model inference (``infer``) is separate from shaping answers: inference runs without any request option (intent
probabilities always, PII entities at any confidence, the jailbreak score), and options -- probabilities,
thresholds, explanations, masking -- are applied afterwards per request, by the task that owns the answer
(``ServedTask.batch_result``, ``single_response``, ``statistics``; see ``loraroute.tasks.answers``). That is what lets
the server batch texts from requests with different options into one model call; this module only routes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from loraroute.artifacts import ModelDir
from loraroute.extras import missing_modules, require_extra
from loraroute.inference.windows import share_encoders
from loraroute.serve.config import BACKENDS
from loraroute.tasks import served_tasks
from loraroute.tasks.answers import AnswerOptions

log = logging.getLogger(__name__)


def load_predictor(path: Path, backend: str = "auto", threads: int | None = None) -> tuple[Any, str]:
    """(predictor, backend used): ONNX Runtime when an exported model exists (``auto``), else PyTorch."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    path = Path(path)
    if backend != "pytorch":
        int8 = backend == "onnx-int8"
        onnx_file = ModelDir(path).onnx_int8 if int8 else ModelDir(path).onnx_fp32
        # auto takes ONNX Runtime only where it can run it: an install without the onnx extra serves PyTorch
        usable = onnx_file.is_file() and (backend != "auto" or not missing_modules("onnxruntime"))
        if usable:
            require_extra("onnx", f"--backend {backend}", "onnxruntime")
            from loraroute.inference import OnnxPredictor

            # spinning worker threads would take the CPU the event loop needs for the next requests (ort_session)
            predictor = OnnxPredictor.load(path, onnx_file=onnx_file, threads=threads, spinning=False)
            return predictor, backend if backend != "auto" else "onnx"
        if backend != "auto":
            flag = " --int8" if int8 else ""
            raise FileNotFoundError(f"{onnx_file}: missing; write it with `loraroute export onnx {path}{flag}`")
    from loraroute.inference import Predictor

    return Predictor.load(path), "pytorch"


class UnifiedClassifier:
    """The served models, one per HTTP task name, and the task that answers for each.

    Thresholds, per task, from the strongest source: the request's ``confidence_threshold``, then the server's
    configuration (``--security-threshold`` ...), then a threshold calibrated into the model directory, then the
    task's default (upstream's).
    """

    def __init__(
        self,
        predictors: dict[str, Any],
        thresholds: dict[str, float | None] | None = None,
        info: dict[str, dict] | None = None,
    ):
        known = served_tasks()
        unknown = set(predictors) - set(known)
        if unknown:
            raise ValueError(f"unknown serving task(s) {sorted(unknown)}; known: {', '.join(known)}")
        self.predictors = predictors
        # One tokenization per text for every model with the same tokenizer (the embedded MiniLM's three share one).
        self.encoders = share_encoders([p for p in predictors.values() if hasattr(p, "encoder")])
        self.answerers = {name: known[name] for name in predictors}
        self.thresholds: dict[str, float] = {}
        self.threshold_source: dict[str, str] = {}
        for name, task in self.answerers.items():
            configured = (thresholds or {}).get(name)
            stored = task.stored_threshold(getattr(predictors[name], "meta", None) or {})
            for source, value in (
                ("config", configured),
                ("thresholds.json", stored),
                ("default", task.default_threshold),
            ):
                if value is not None:
                    self.thresholds[name], self.threshold_source[name] = float(value), source
                    break
        self.info = info or {task: {} for task in predictors}
        self._tasks = [t for t in known if t in predictors]  # in the registry's order, looked up once

    @classmethod
    def load(
        cls,
        chosen: dict[str, Path],
        backend: str = "auto",
        thresholds: dict[str, float | None] | None = None,
        warmup: bool = True,
        threads: int | None = None,
    ) -> UnifiedClassifier:
        predictors, info = {}, {}
        for task, path in chosen.items():
            predictor, used = load_predictor(Path(path), backend, threads)
            predictors[task] = predictor
            # The directory's name only: a response never carries a filesystem path.
            info[task] = {"model": Path(path).name, "backend": used, "labels": list(predictor.labels)}
            log.info("serving %s from %s (%s)", task, path, used)
        classifier = cls(predictors, thresholds, info)
        if warmup and predictors:  # first calls allocate buffers; keep that out of the first request's latency
            classifier.infer(["warm up the models"], classifier.tasks)
        return classifier

    @property
    def tasks(self) -> list[str]:
        return list(self._tasks)

    def infer(self, texts: list[str], tasks: list[str]) -> dict[str, list[dict]]:
        """Option-free model answers per task, in text order (each request's options apply afterwards)."""
        return {task: self.answerers[task].serve_raw(self.predictors[task], texts) for task in tasks}

    def prepare(self, texts: list[str]) -> None:
        """Tokenize ``texts`` once for every shared encoder before the tasks run side by side (each would otherwise
        find them missing and tokenize them again)."""
        for encoder in self.encoders:
            encoder.windows(texts)

    def threshold(self, task: str, options: AnswerOptions) -> float:
        return options.confidence_threshold if options.confidence_threshold is not None else self.thresholds[task]

    def result(self, task: str, raw: dict, options: AnswerOptions) -> dict:
        """One entry of the batch endpoint's ``results`` (the task decides and shapes it)."""
        return self.answerers[task].batch_result(raw, options, self.threshold(task, options))

    def response(self, task: str, raw: dict, options: AnswerOptions, text: str) -> dict:
        """The body of the task's single-text endpoint."""
        return self.answerers[task].single_response(raw, options, self.threshold(task, options), text)

    def statistics(self, task: str, results: list[dict], options: AnswerOptions) -> dict:
        return self.answerers[task].statistics(results, self.threshold(task, options))

    def classify(
        self, texts: list[str], tasks: list[str] | None = None, options: AnswerOptions | None = None
    ) -> list[dict[str, dict]]:
        """Per text, ``{task: batch result}`` for every task asked (default: every loaded task)."""
        tasks = tasks or self.tasks
        missing = [t for t in tasks if t not in self.predictors]
        if missing:
            raise KeyError(f"no model loaded for {', '.join(missing)}")
        options = options or AnswerOptions()
        raw = self.infer(texts, tasks)
        return [{task: self.result(task, raw[task][i], options) for task in tasks} for i in range(len(texts))]
