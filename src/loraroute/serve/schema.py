"""Request and response bodies, in upstream's names and types (vLLM semantic-router's ``pkg/apiserver`` and
``pkg/services``).

Every option upstream's clients send is accepted on every endpoint that has it. JSON types are strict (``true`` is
not a threshold, ``"0.5"`` is not a number). Fields the API does not know are kept aside (``extra="allow"``) so the
server can ignore and log them, as upstream does, or refuse them under ``serve --strict``.

The response models document what the server sends (the OpenAPI document is checked against real responses):
upstream's fields are declared, and ours are allowed beside them. The tasks build the answers; nothing validates
them on the way out.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictStr

from loraroute.tasks.answers import AnswerOptions

Threshold = Annotated[StrictFloat, Field(ge=0.0, le=1.0)]
THRESHOLD_HELP = (
    "Replaces the task's threshold: intent low-confidence cut-off, PII minimum entity confidence, "
    "security P(jailbreak) decision threshold. 0 is a threshold of 0 (upstream reads 0 as unset)."
)


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Options(_Body):
    """What every endpoint's options accept."""

    confidence_threshold: Threshold | None = Field(None, description=THRESHOLD_HELP)
    include_explanation: StrictBool = Field(False, description="Add a one-line reason to each answer.")


class ClassifyOptions(_Options):
    """Upstream's ClassificationOptions (batch) and IntentOptions."""

    return_probabilities: StrictBool = Field(False, description="Include per-label probabilities.")
    evaluate_all_signals: StrictBool = Field(False, description="Upstream's signal option; accepted, no effect here.")
    trace: StrictBool = Field(False, description="Upstream's decision trace; accepted, no effect here.")


class PIIOptions(_Options):
    """Upstream's PIIOptions, plus ``include_explanation``."""

    entity_types: list[StrictStr] = Field(default_factory=list, description="Keep only these types (any case).")
    return_positions: StrictBool = Field(False, description="Accepted; positions are always returned.")
    mask_entities: StrictBool = Field(False, description="Add masked_text and each entity's masked_value.")
    reveal_entity_text: StrictBool = Field(False, description="Put the entity's text in value (else [DETECTED]).")


class SecurityOptions(_Options):
    """Upstream's SecurityOptions, plus the batch options that apply to a verdict."""

    detection_types: list[StrictStr] = Field(default_factory=list, description="Accepted; one detector here.")
    sensitivity: StrictStr | None = Field(None, description="Accepted; use confidence_threshold to move the cut.")
    include_reasoning: StrictBool = Field(False, description="Add upstream's reasoning line when flagged.")
    return_probabilities: StrictBool = Field(False, description="Include P(benign) and P(jailbreak).")


class BatchRequest(_Body):
    texts: list[StrictStr] = Field(description="Texts to classify (1 to max_batch_texts, none empty).")
    task_type: StrictStr = Field("", description="intent | pii | security | all; empty or absent means intent.")
    options: ClassifyOptions | None = None


class IntentRequest(_Body):
    text: StrictStr
    options: ClassifyOptions | None = None


class PIIRequest(_Body):
    text: StrictStr
    options: PIIOptions | None = None


class SecurityRequest(_Body):
    text: StrictStr
    options: SecurityOptions | None = None


class CombinedRequest(_Body):
    text: StrictStr
    intent_options: ClassifyOptions | None = None
    pii_options: PIIOptions | None = None
    security_options: SecurityOptions | None = None


# --- responses --------------------------------------------------------------------------------------------------
class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")  # our fields beside upstream's


class ErrorDetail(_Answer):
    code: str
    message: str
    timestamp: str = Field(description="UTC, ISO 8601 with milliseconds and Z.")
    request_id: str | None = Field(None, description="The X-Request-ID the server log records this request under.")


class ErrorResponse(_Answer):
    error: ErrorDetail


class Statistics(_Answer):
    category_distribution: dict[str, int]
    avg_confidence: float
    low_confidence_count: int


class BatchResult(_Answer):
    category: str
    confidence: float
    processing_time_ms: int
    probabilities: dict[str, float] | None = None


class BatchResponse(_Answer):
    results: list[BatchResult]
    total_count: int
    processing_time_ms: int
    statistics: Statistics


class Classification(_Answer):
    category: str
    confidence: float
    processing_time_ms: int


class IntentResponse(_Answer):
    classification: Classification
    probabilities: dict[str, float] | None = None


class PIIEntity(_Answer):
    type: str
    value: str
    confidence: float
    start_position: int = Field(description="UTF-8 byte offset, as upstream's (ours, `start`, counts characters).")
    end_position: int
    masked_value: str | None = None


class PIIResponse(_Answer):
    has_pii: bool
    entities: list[PIIEntity]
    masked_text: str | None = None
    security_recommendation: Literal["allow", "block"]
    processing_time_ms: int


class SecurityResponse(_Answer):
    is_jailbreak: bool
    risk_score: float = Field(description="P(jailbreak).")
    confidence: float
    detection_types: list[str]
    recommendation: Literal["allow", "block"]
    patterns_detected: list[str]
    reasoning: str | None = None
    processing_time_ms: int


class CombinedResponse(_Answer):
    intent: IntentResponse | None
    pii: PIIResponse | None
    security: SecurityResponse | None
    processing_time_ms: int


class HealthResponse(_Answer):
    status: Literal["healthy", "no_models"]
    tasks: list[str]
    version: str


class ModelsResponse(_Answer):
    models: dict[str, dict]
    micro_batching: dict
    discovery: dict | None


def unknown_fields(body: BaseModel, prefix: str = "") -> list[str]:
    """Dotted names of the fields the client sent that the API does not know, nested options included."""
    found = [prefix + name for name in (body.model_extra or {})]
    for name in type(body).model_fields:
        value = getattr(body, name)
        if isinstance(value, BaseModel):
            found += unknown_fields(value, f"{prefix}{name}.")
    return found


def answer_options(options: BaseModel | None) -> AnswerOptions:
    """The task-facing options of any endpoint's options object (absent ones keep their defaults)."""
    if options is None:
        return AnswerOptions()
    declared = type(options).model_fields  # never an unknown (extra) field of the same name
    given = {name: getattr(options, name) for name in AnswerOptions.__dataclass_fields__ if name in declared}
    return AnswerOptions(**{k: tuple(v) if isinstance(v, list) else v for k, v in given.items()})
