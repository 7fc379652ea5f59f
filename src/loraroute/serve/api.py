"""The HTTP API (FastAPI): upstream's classification endpoints (vLLM semantic-router's ``/api/v1/classify/*``) with
upstream's field names and types, plus health and model endpoints.

Each task answers for itself (``Task.batch_result``, ``single_response``, ``statistics``); this module validates,
routes and times. Every error, malformed JSON and unknown routes included, comes back as ``{"error": {"code",
"message", "timestamp", "request_id"}}`` with upstream's codes where upstream has one. Error messages never carry a
filesystem path or exception text: the server log has those, under the request id.
"""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from loraroute._version import __version__
from loraroute.serve.batching import DeadlineExceeded, MicroBatcher, QueueFull, lane_plan
from loraroute.serve.config import ServeConfig
from loraroute.serve.discovery import SERVE_TASKS, Discovery
from loraroute.serve.guards import Guard, error_body, guarded_http_protocol
from loraroute.serve.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from loraroute.serve.metrics import Metrics, configure_logging
from loraroute.serve.schema import (
    BatchRequest,
    BatchResponse,
    CombinedRequest,
    CombinedResponse,
    ErrorResponse,
    HealthResponse,
    IntentRequest,
    IntentResponse,
    ModelsResponse,
    PIIRequest,
    PIIResponse,
    SecurityRequest,
    SecurityResponse,
    answer_options,
    unknown_fields,
)
from loraroute.serve.unified import UnifiedClassifier
from loraroute.tasks.answers import AnswerOptions

log = logging.getLogger("loraroute.serve")
TASK_TYPES = (*SERVE_TASKS, "all")
ENDPOINTS = {
    "/api/v1/classify/batch",
    "/api/v1/classify/combined",
    "/health",
    "/metrics",
    "/api/v1/models",
    *(f"/api/v1/classify/{task}" for task in SERVE_TASKS),
}
LOOPBACK = ("127.0.0.1", "localhost", "::1")
ERRORS = {
    status: {"model": ErrorResponse, "description": what}
    for status, what in (
        (400, "INVALID_INPUT or INVALID_TASK_TYPE"),
        (401, "UNAUTHORIZED: the API key is missing or wrong"),
        (408, "REQUEST_TIMEOUT: the body came too slowly"),
        (413, "REQUEST_BODY_TOO_LARGE, or INVALID_INPUT for too many or too long texts"),
        (500, "UNIFIED_CLASSIFICATION_ERROR or INTERNAL_ERROR (details in the server log)"),
        (503, "UNIFIED_CLASSIFIER_UNAVAILABLE or SERVER_BUSY"),
        (504, "REQUEST_TIMEOUT: past --request-timeout-s"),
    )
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_response(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    request.app.state.metrics.errors.labels(code).inc()
    rid = request.scope.get("state", {}).get("request_id")
    return JSONResponse(status_code=status, content=error_body(code, message, rid), headers=headers)


def _where(loc: tuple) -> str:
    out = ""
    for p in (p for p in loc if p != "body"):
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def validation_message(exc: RequestValidationError) -> str:
    errors = exc.errors()
    bad_json = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if bad_json is not None:
        detail = bad_json.get("ctx", {}).get("error", "")
        return f"request body is not valid JSON ({detail})" if detail else "request body is not valid JSON"
    return "; ".join(f"{_where(tuple(e.get('loc', ())))}: {e.get('msg')}" for e in errors[:5])


def _ms(start: float) -> int:
    return round((time.perf_counter() - start) * 1000)  # upstream's processing_time_ms is an integer


def create_app(
    classifier: UnifiedClassifier | None,
    discovery: Discovery | None = None,
    config: ServeConfig | None = None,
    lanes: int | None = None,
) -> FastAPI:
    """The app `serve` runs; ``lanes``: model threads side by side (default: a core each, up to one per task)."""
    config = config or ServeConfig()
    metrics = Metrics(ENDPOINTS)
    batcher = (
        MicroBatcher(
            classifier.infer,
            max_batch_texts=config.micro_batch_texts,
            max_wait_ms=config.micro_batch_wait_ms,
            parallel_tasks=config.parallel_tasks,
            chunk_chars=config.chunk_chars,
            max_queued_texts=config.max_queued_texts,
            observe=metrics.observe_call,
            prepare=getattr(classifier, "prepare", None),
            lanes=lanes or lane_plan(len(classifier.tasks))[0],
        )
        if classifier and classifier.tasks
        else None
    )
    if batcher is not None:
        metrics.queued.set_function(lambda: batcher.queued_texts)
    for task in classifier.tasks if classifier else []:
        info = classifier.info.get(task, {})
        metrics.model_info.labels(
            task, info.get("model", "-"), info.get("backend", "-"), f"{classifier.thresholds[task]:.4g}"
        ).set(1)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if batcher is not None:
            await batcher.start()
        yield
        if batcher is not None:
            await batcher.stop()

    app = FastAPI(
        title="loraroute classification API",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs" if config.docs else None,
        redoc_url=None,
        description="Intent, PII and jailbreak classification with LoRA-tuned models, in vLLM "
        "semantic-router's /api/v1/classify schema.",
    )
    app.state.classifier, app.state.discovery, app.state.config, app.state.batcher, app.state.metrics = (
        classifier,
        discovery,
        config,
        batcher,
        metrics,
    )
    app.add_middleware(
        Guard,
        max_body_bytes=config.max_body_bytes,
        body_timeout_s=config.body_timeout_s,
        api_key=config.api_key(),
        metrics=metrics,
        access_log=config.access_log,
    )
    if config.cors_origins:  # outermost, so a browser's preflight is answered before the key check
        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return error_response(request, exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return error_response(request, 400, "INVALID_INPUT", validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        # 400 here is a body FastAPI could not decode at all (not UTF-8, nested too deep, a 5,000-digit number).
        code = {400: "INVALID_INPUT", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "REQUEST_BODY_TOO_LARGE"}.get(
            exc.status_code, "HTTP_ERROR"
        )
        message = "request body could not be decoded as JSON" if exc.status_code == 400 else str(exc.detail)
        return error_response(request, exc.status_code, code, message)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):
        rid = request.scope.get("state", {}).get("request_id")
        log.error("[%s] unhandled error", rid, exc_info=exc)
        return error_response(request, 500, "INTERNAL_ERROR", f"internal error (request id {rid})")

    def check_body(request: Request, body: BaseModel) -> None:
        unknown = unknown_fields(body)
        if unknown and config.strict:
            raise ApiError(400, "INVALID_INPUT", f"unknown field(s): {', '.join(unknown)} (serve --strict)")
        if unknown:
            log.warning("[%s] ignored unknown field(s): %s", request.state.request_id, ", ".join(unknown))

    def check_texts(texts: list[str], name: str) -> None:
        if not texts:
            raise ApiError(400, "INVALID_INPUT", f"{name} must hold at least one text")
        if len(texts) > config.max_batch_texts:
            raise ApiError(
                413,
                "INVALID_INPUT",
                f"{name} holds {len(texts)} texts; the limit is "
                f"{config.max_batch_texts} per request (--max-batch-texts)",
            )
        for i, text in enumerate(texts):
            where = f"{name}[{i}]" if name == "texts" else name
            if not text.strip():
                raise ApiError(400, "INVALID_INPUT", f"{where} is empty")
            if len(text) > config.max_text_chars:
                raise ApiError(
                    413,
                    "INVALID_INPUT",
                    f"{where} has {len(text)} characters; the limit is {config.max_text_chars} (--max-text-chars)",
                )
            try:  # valid JSON can still carry a lone surrogate ("\ud800"), which no tokenizer can read
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ApiError(
                    400, "INVALID_INPUT", f"{where} is not valid Unicode ({exc.reason} at character {exc.start})"
                ) from None

    def resolve_tasks(task_type: str) -> list[str]:
        task_type = task_type or "intent"  # upstream: empty or absent means intent
        if task_type not in TASK_TYPES:
            raise ApiError(400, "INVALID_TASK_TYPE", f"task_type {task_type!r} is not one of {', '.join(TASK_TYPES)}")
        if classifier is None or not classifier.tasks:
            raise ApiError(503, "UNIFIED_CLASSIFIER_UNAVAILABLE", "no models are loaded")
        if task_type == "all":
            return classifier.tasks
        if task_type not in classifier.tasks:
            raise ApiError(
                503,
                "UNIFIED_CLASSIFIER_UNAVAILABLE",
                f"no {task_type} model is loaded; loaded: {', '.join(classifier.tasks)}",
            )
        return [task_type]

    async def infer(request: Request, texts: list[str], tasks: list[str]) -> dict[str, list[dict]]:
        rid = request.state.request_id
        try:
            return await batcher.submit(texts, tasks, timeout=config.request_timeout_s)
        except QueueFull as exc:
            raise ApiError(
                503, "SERVER_BUSY", f"the server is at capacity ({exc}); retry shortly", {"Retry-After": "1"}
            ) from None
        except DeadlineExceeded as exc:
            raise ApiError(504, "REQUEST_TIMEOUT", str(exc)) from None
        except Exception:
            log.exception("[%s] classification failed", rid)
            raise ApiError(
                500,
                "UNIFIED_CLASSIFICATION_ERROR",
                f"classification failed; the server log has the details under request id {rid}",
            ) from None

    @app.post(
        "/api/v1/classify/batch",
        summary="Classify a batch of texts for one task or all of them",
        response_model=BatchResponse,
        responses=ERRORS,
    )
    async def classify_batch(request: Request, body: BatchRequest) -> JSONResponse:
        start = time.perf_counter()
        check_body(request, body)
        tasks = resolve_tasks(body.task_type)
        check_texts(body.texts, "texts")
        options = answer_options(body.options)
        raw = await infer(request, body.texts, tasks)
        per_text = _ms(start) // len(body.texts)
        answers = {t: [classifier.result(t, r, options) for r in raw[t]] for t in tasks}
        statistics = {t: classifier.statistics(t, answers[t], options) for t in tasks}
        primary = tasks[0]  # intent when it is served: upstream's `all` answers intent only
        results = []
        for i in range(len(body.texts)):
            top = answers[primary][i]
            flat = {"category": top["category"], "confidence": top["confidence"], "processing_time_ms": per_text}
            if "probabilities" in top:
                flat["probabilities"] = top["probabilities"]
            if body.task_type == "all":
                results.append(
                    {
                        **flat,
                        "primary_task": primary,
                        **{t: answers[t][i] if t in answers else None for t in SERVE_TASKS},
                    }
                )
            else:
                results.append({**flat, **top})
        response = {
            "results": results,
            "total_count": len(results),
            "processing_time_ms": _ms(start),
            "statistics": statistics[primary],
        }
        if body.task_type == "all":
            response["statistics"] = {**statistics[primary], "by_task": statistics}
            response["unavailable_tasks"] = [t for t in SERVE_TASKS if t not in tasks]
        return JSONResponse(response)  # plain JSON types already: skips FastAPI's per-field encoding pass

    async def single(request: Request, task: str, text: str, options: AnswerOptions) -> dict:
        start = time.perf_counter()
        resolve_tasks(task)
        check_texts([text], "text")
        raw = await infer(request, [text], [task])
        return timed(task, classifier.response(task, raw[task][0], options, text), _ms(start))

    def timed(task: str, answer: dict, ms: int) -> dict:
        # upstream times intent inside its classification object, the other answers at the top
        (answer["classification"] if task == "intent" else answer)["processing_time_ms"] = ms
        return answer

    def single_endpoint(task: str, model: type[BaseModel]):
        async def endpoint(request: Request, body) -> JSONResponse:
            check_body(request, body)
            return JSONResponse(await single(request, task, body.text, answer_options(body.options)))

        endpoint.__annotations__["body"] = model  # FastAPI reads the body's type from the signature
        endpoint.__name__ = f"classify_{task}"
        return endpoint

    for task, model, response, summary in (
        ("intent", IntentRequest, IntentResponse, "Classify one text's intent (upstream's IntentResponse)"),
        ("pii", PIIRequest, PIIResponse, "Detect PII in one text (upstream's PIIResponse)"),
        ("security", SecurityRequest, SecurityResponse, "Check one text for a jailbreak (upstream's SecurityResponse)"),
    ):
        app.post(f"/api/v1/classify/{task}", summary=summary, response_model=response, responses=ERRORS)(
            single_endpoint(task, model)
        )

    @app.post(
        "/api/v1/classify/combined",
        summary="All three tasks on one text, each in its endpoint's shape",
        response_model=CombinedResponse,
        responses=ERRORS,
    )
    async def classify_combined(request: Request, body: CombinedRequest) -> JSONResponse:
        start = time.perf_counter()
        check_body(request, body)
        tasks = resolve_tasks("all")
        check_texts([body.text], "text")
        raw = await infer(request, [body.text], tasks)
        options = {"intent": body.intent_options, "pii": body.pii_options, "security": body.security_options}
        out = {
            t: classifier.response(t, raw[t][0], answer_options(options[t]), body.text) if t in raw else None
            for t in SERVE_TASKS
        }
        for task, answer in out.items():
            if answer is not None:
                timed(task, answer, _ms(start))
        return JSONResponse(
            {**out, "processing_time_ms": _ms(start), "unavailable_tasks": [t for t in SERVE_TASKS if t not in tasks]}
        )

    @app.get("/health", summary="Liveness and which tasks are served", response_model=HealthResponse)
    async def health() -> dict:
        tasks = classifier.tasks if classifier else []
        return {"status": "healthy" if tasks else "no_models", "tasks": tasks, "version": __version__}

    @app.get(
        "/metrics",
        summary="Prometheus metrics: requests, errors, latency, model calls, queue, models",
        response_class=PlainTextResponse,
        responses={401: ERRORS[401]},
    )
    async def prometheus_metrics() -> Response:
        return Response(metrics.exposition(), media_type=METRICS_CONTENT_TYPE)

    @app.get(
        "/api/v1/models",
        summary="Models served and what discovery found (directory names, no paths)",
        response_model=ModelsResponse,
        responses={401: ERRORS[401]},
    )
    async def models() -> dict:
        served = {}
        for task in classifier.tasks if classifier else []:
            served[task] = {
                **classifier.info.get(task, {}),
                "threshold": classifier.thresholds[task],
                "threshold_source": classifier.threshold_source[task],
            }
        stats = (
            {"batches": batcher.batches, "texts": batcher.batched_texts, "queued_texts": batcher.queued_texts}
            if batcher
            else {}
        )
        return {
            "models": served,
            "micro_batching": stats,
            "discovery": discovery.to_dict(paths=False) if discovery else None,
        }

    def openapi() -> dict:
        # FastAPI documents a 422 for every body it validates; this server answers those 400 (upstream's code).
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            for path in schema["paths"].values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    return app


def exposure_warning(config: ServeConfig) -> str | None:
    """What to warn an operator about before listening beyond this machine without a key."""
    if config.host in LOOPBACK or config.api_key() is not None:
        return None
    return (
        f"listening on {config.host} without an API key: anyone who reaches this port can classify "
        "(set --api-key-file or LORAROUTE_API_KEY)"
    )


def serve(config: ServeConfig) -> None:
    """Discover, load, and run uvicorn until interrupted."""
    import uvicorn

    from loraroute.serve.discovery import discover

    configure_logging(config.log_format)

    # Side by side, lanes x intra-op threads must not exceed the cores: they would only fight
    found = discover(config.models_dir)
    print(found.table(), flush=True)
    lanes, per_model = lane_plan(len(found.chosen))
    threads = config.threads or (per_model if config.parallel_tasks else None)
    if threads:
        import torch

        torch.set_num_threads(threads)
    classifier = (
        UnifiedClassifier.load(found.chosen, config.backend, config.thresholds(), threads=threads)
        if found.chosen
        else None
    )
    if classifier is None:
        log.warning("no models found in %s: every classify call will answer 503", config.models_dir)
    app = create_app(classifier, found, config, lanes=lanes)
    warning = exposure_warning(config)
    if warning:
        log.warning(warning)
    # log_config=None: uvicorn's loggers go through the handler above (request ids, JSON); our Guard writes the
    # access log, since uvicorn's does not know the request id.
    uvicorn.run(
        app,
        host=config.host,
        port=config.port,
        log_level="info",
        access_log=False,
        log_config=None,
        http=guarded_http_protocol(config.header_timeout_s),
        timeout_keep_alive=config.keep_alive_s,
        limit_concurrency=config.max_connections,
    )
