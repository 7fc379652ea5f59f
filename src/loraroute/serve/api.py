"""The HTTP API (FastAPI): upstream's ``POST /api/v1/classify/batch`` plus single-task, health and model endpoints.

Every error, including malformed JSON and unknown routes, comes back as ``{"error": {"code", "message",
"timestamp"}}``; upstream's codes are kept (INVALID_INPUT, INVALID_TASK_TYPE, UNIFIED_CLASSIFIER_UNAVAILABLE,
UNIFIED_CLASSIFICATION_ERROR). Size limits answer 413 before any model runs.
"""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from datetime import datetime, timezone

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from loraroute import __version__
from loraroute.serve.batching import MicroBatcher
from loraroute.serve.discovery import SERVE_TASKS, Discovery
from loraroute.serve.config import ServeConfig
from loraroute.serve.unified import Options, UnifiedClassifier, task_statistics

log = logging.getLogger(__name__)
TASK_TYPES = (*SERVE_TASKS, "all")


# --- request schema (upstream's) -------------------------------------------------------------------------------
class ClassifyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt option is an error, not silently ignored
    return_probabilities: StrictBool = Field(False, description="Include per-label probabilities.")
    confidence_threshold: float | None = Field(None, ge=0.0, le=1.0, description=(
        "Replaces the threshold of each task asked: intent low-confidence cut-off, PII minimum entity confidence, "
        "security P(jailbreak) decision threshold."))
    include_explanation: StrictBool = Field(False, description="Add a one-line reason to each answer.")


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[StrictStr] = Field(description="Texts to classify (1 to max_batch_texts, none empty).")
    task_type: StrictStr = Field("intent", description="intent | pii | security | all")
    options: ClassifyOptions | None = None


class SingleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: StrictStr
    options: ClassifyOptions | None = None


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str) -> JSONResponse:
    stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return JSONResponse(status_code=status, content={"error": {"code": code, "message": message, "timestamp": stamp}})


def _where(loc: tuple) -> str:
    parts = [p for p in loc if p != "body"]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def validation_message(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        detail = next(e for e in errors if e.get("type") == "json_invalid").get("ctx", {}).get("error", "")
        return f"request body is not valid JSON ({detail})" if detail else "request body is not valid JSON"
    return "; ".join(f"{_where(tuple(e.get('loc', ())))}: {e.get('msg')}" for e in errors[:5])


# --- the app ---------------------------------------------------------------------------------------------------
def create_app(classifier: UnifiedClassifier | None, discovery: Discovery | None = None,
               config: ServeConfig | None = None) -> FastAPI:
    config = config or ServeConfig()
    batcher = MicroBatcher(classifier.infer, config.micro_batch_texts, config.micro_batch_wait_ms,
                           config.parallel_tasks) if classifier and classifier.tasks else None
    # A body can be no larger than max_batch_texts texts of max_text_chars (4 bytes per char in UTF-8, 6 as \u
    # escapes) plus JSON overhead; anything bigger is refused before it is parsed.
    max_body = config.max_batch_texts * (config.max_text_chars * 6 + 16) + 64 * 1024

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if batcher is not None:
            await batcher.start()
        yield
        if batcher is not None:
            await batcher.stop()

    app = FastAPI(title="loraroute classification API", version=__version__, lifespan=lifespan,
                  description="Intent, PII and jailbreak classification with LoRA-tuned models "
                              "(vLLM semantic-router's /api/v1/classify/batch schema).")
    app.state.classifier, app.state.discovery, app.state.config, app.state.batcher = \
        classifier, discovery, config, batcher

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return error_response(400, "INVALID_INPUT", validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.middleware("http")
    async def _body_limit(request: Request, call_next):
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_body:
            return error_response(413, "INVALID_INPUT", f"request body of {length} bytes is over the limit of "
                                                        f"{max_body} bytes")
        return await call_next(request)

    def check_texts(texts: list[str]) -> None:
        if not texts:
            raise ApiError(400, "INVALID_INPUT", "texts must hold at least one text")
        if len(texts) > config.max_batch_texts:
            raise ApiError(413, "INVALID_INPUT", f"texts holds {len(texts)} texts; the limit is "
                                                 f"{config.max_batch_texts} per request (--max-batch-texts)")
        for i, text in enumerate(texts):
            if not text.strip():
                raise ApiError(400, "INVALID_INPUT", f"texts[{i}] is empty")
            if len(text) > config.max_text_chars:
                raise ApiError(413, "INVALID_INPUT", f"texts[{i}] has {len(text)} characters; the limit is "
                                                     f"{config.max_text_chars} (--max-text-chars)")

    def resolve_tasks(task_type: str) -> list[str]:
        if task_type not in TASK_TYPES:
            raise ApiError(400, "INVALID_TASK_TYPE", f"task_type {task_type!r} is not one of {', '.join(TASK_TYPES)}")
        if classifier is None or not classifier.tasks:
            where = f" in {discovery.models_dir}" if discovery else ""
            raise ApiError(503, "UNIFIED_CLASSIFIER_UNAVAILABLE", f"no models are loaded (none found{where})")
        if task_type == "all":
            return classifier.tasks
        if task_type not in classifier.tasks:
            raise ApiError(503, "UNIFIED_CLASSIFIER_UNAVAILABLE", f"no {task_type} model is loaded; loaded: "
                                                                  f"{', '.join(classifier.tasks)}")
        return [task_type]

    async def run(texts: list[str], tasks: list[str], options: Options) -> list[dict[str, dict]]:
        try:
            raw = await batcher.submit(texts, tasks)
            return [{t: classifier.format(t, raw[t][i], options) for t in tasks} for i in range(len(texts))]
        except Exception as exc:
            log.exception("classification failed")
            raise ApiError(500, "UNIFIED_CLASSIFICATION_ERROR", f"{type(exc).__name__}: {exc}") from None

    def options_of(body) -> Options:
        o = body.options or ClassifyOptions()
        return Options(o.return_probabilities, o.confidence_threshold, o.include_explanation)

    @app.post("/api/v1/classify/batch", summary="Classify a batch of texts for one task or all of them")
    async def classify_batch(body: BatchRequest) -> JSONResponse:
        start = time.perf_counter()
        tasks = resolve_tasks(body.task_type)
        check_texts(body.texts)
        options = options_of(body)
        answers = await run(body.texts, tasks, options)
        if body.task_type == "all":
            results = [{t: a.get(t) for t in SERVE_TASKS} for a in answers]
            by_task = {t: task_statistics(t, [a[t] for a in answers], classifier.threshold(t, options))
                       for t in tasks}
            statistics = {**by_task[tasks[0]], "by_task": by_task}
        else:
            task = tasks[0]
            results = [a[task] for a in answers]
            statistics = task_statistics(task, results, classifier.threshold(task, options))
        response = {"results": results, "total_count": len(results),
                    "processing_time_ms": (time.perf_counter() - start) * 1000, "statistics": statistics}
        if body.task_type == "all":
            response["unavailable_tasks"] = [t for t in SERVE_TASKS if t not in tasks]
        return JSONResponse(response)  # plain JSON types already: skips FastAPI's per-field encoding pass

    def single(task: str):
        async def endpoint(body: SingleRequest) -> JSONResponse:
            start = time.perf_counter()
            tasks = resolve_tasks(task)
            check_texts([body.text])
            (answer,) = await run([body.text], tasks, options_of(body))
            return JSONResponse({**answer[task], "processing_time_ms": (time.perf_counter() - start) * 1000})
        endpoint.__name__ = f"classify_{task}"
        return endpoint

    for task in SERVE_TASKS:
        app.post(f"/api/v1/classify/{task}", summary=f"Classify one text: {task}")(single(task))

    @app.get("/health", summary="Liveness and which tasks are served")
    async def health() -> dict:
        tasks = classifier.tasks if classifier else []
        return {"status": "healthy" if tasks else "no_models", "tasks": tasks, "version": __version__}

    @app.get("/api/v1/models", summary="Models served and what discovery found")
    async def models() -> dict:
        served = {}
        for task in classifier.tasks if classifier else []:
            served[task] = {**classifier.info.get(task, {}), "threshold": classifier.thresholds[task],
                            "threshold_source": classifier.threshold_source[task]}
        stats = {"batches": batcher.batches, "texts": batcher.batched_texts} if batcher else {}
        return {"models": served, "micro_batching": stats,
                "discovery": discovery.to_dict() if discovery else None}

    return app


def serve(config: ServeConfig) -> None:
    """Discover, load, and run uvicorn until interrupted."""
    import uvicorn

    from loraroute.serve.discovery import discover

    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    found = discover(config.models_dir)
    print(found.table(), flush=True)
    onnx_threads = config.threads or (1 if config.parallel_tasks else None)
    classifier = UnifiedClassifier.load(found.chosen, config.backend, config.thresholds(), threads=onnx_threads) \
        if found.chosen else None
    if classifier is None:
        log.warning("no models found in %s: every classify call will answer 503", config.models_dir)
    app = create_app(classifier, found, config)
    uvicorn.run(app, host=config.host, port=config.port, log_level="info", access_log=False)
