"""Settings: dataclasses with help text, and the one resolver that builds them from layers.

Every field carries its help in ``metadata["help"]``; the CLI builds its options from these dataclasses, so help
text and YAML keys cannot drift apart. A task with extra settings subclasses :class:`TrainConfig`; the server's
settings (``serve.config.ServeConfig``) share the same :class:`Settings` base. Every command and the Python API
build their settings with :func:`resolve_config`: dataclass defaults < a command's defaults < YAML file < explicit
options < ``key=value`` overrides, a key the dataclass does not know an error naming where it came from.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml


class ConfigError(ValueError):
    """A setting that is unknown, malformed or out of range: the input is wrong, and no work has been done.

    The command line exits 2 on it (bad usage), against 1 for a run that fails; it is a ValueError, so callers that
    catch ValueError keep working."""


def option(default: Any, help: str, choices: tuple | None = None, **kwargs) -> Any:
    """A dataclass field with help text (and optional choices) for the CLI and docs."""
    meta = {"help": help}
    if choices:
        meta["choices"] = choices
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta, **kwargs)
    return field(default=default, metadata=meta, **kwargs)


S = TypeVar("S", bound="Settings")


class Settings:
    """What the settings dataclasses share: YAML and dict in and out through :func:`resolve_config`, and fields
    with ``choices`` checked. A subclass's ``validate()`` raises :class:`ConfigError` (or a plain ValueError, which
    the resolver turns into one)."""

    def choice_problems(self) -> list[str]:
        problems = []
        for f in fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                problems.append(f"{f.name} must be one of {', '.join(choices)}, got {getattr(self, f.name)!r}")
        return problems

    def validate(self) -> None:
        problems = self.choice_problems()
        if problems:
            raise ConfigError("Invalid configuration: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self, path: str | Path | None = None, header: str | None = None) -> str:
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if header:
            text = "".join(f"# {line}\n" for line in header.splitlines()) + text
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_dict(cls: type[S], values: dict[str, Any], where: str = "config") -> S:
        return resolve_config(cls, options=values, where=where)

    @classmethod
    def from_yaml(cls: type[S], path: str | Path, overrides: list[str] | None = None) -> S:
        return resolve_config(cls, yaml_path=path, overrides=overrides)


@dataclass
class TrainConfig(Settings):
    """Settings shared by every task. Defaults are the measured CPU defaults (see README, docs/benchmarks.md)."""

    task: str = option("intent", "Task to train: intent, pii, jailbreak, generative-intent or solver.")
    model: str = option(
        "minilm",
        "Base model: an alias (minilm, bert-base-uncased, roberta-base, modernbert-base, deberta-v3-base, "
        "distilbert-base-uncased), a hub id, or a local directory. 'minilm' is the embedded all-MiniLM-L6-v2.",
    )
    data: str | None = option(
        None,
        "Training data: a hub dataset id or a local .jsonl/.json/.csv/.parquet file. Default: the task's offline set.",
    )
    data_config: str | None = option(None, "Hub dataset configuration (subset) name, if the dataset has several.")
    data_split: str | None = option(None, "Hub dataset split to read (default: all splits, re-split by loraroute).")
    text_column: str | None = option(None, "Column holding the input text (default: the task's convention).")
    label_column: str | None = option(None, "Column holding the label (default: the task's convention).")
    max_samples: int | None = option(None, "Keep at most this many examples (stratified, seeded) before splitting.")
    val_size: float = option(0.1, "Fraction held out for validation (model selection, early stopping).")
    test_size: float = option(0.1, "Fraction held out for the final test report; never used for selection.")
    max_length: int = option(128, "Maximum tokens per example; longer inputs are truncated.")
    output_dir: str = option(
        "models",
        "Directory that receives the model directory (upstream discovery scans ./models). Checkpoints and "
        "run logs go beside it, in ../.loraroute-checkpoints/<its name>/ckpt-<model name>/, where discovery "
        "never looks.",
    )
    name: str | None = option(None, "Model directory name (default: lora_{task}_{arch}_r{rank}_model).")

    rank: int = option(16, "LoRA rank r.")
    alpha: int | None = option(None, "LoRA alpha (default: 2 x rank, i.e. 32 at rank 16).")
    lora_dropout: float = option(
        0.0, "Dropout on the LoRA input. 0 by default: its random numbers cost 23-30% of a CPU step (measured)."
    )
    model_dropout: float | None = option(
        0.0,
        "Override the base model's hidden and attention dropout (None keeps the checkpoint's). 0 by default: "
        "attention dropout disables fused attention and dropout masks dominate CPU step time.",
    )
    target_modules: list[str] | None = option(
        None, "LoRA target module names (default: chosen from the model's config.model_type)."
    )

    epochs: float = option(4.0, "Training epochs (early stopping may end sooner).")
    batch_size: int = option(32, "Examples per device per step.")
    grad_accum: int = option(1, "Gradient accumulation steps.")
    learning_rate: float = option(1e-3, "Peak learning rate (LoRA and head), linear decay after warmup.")
    weight_decay: float = option(0.01, "AdamW weight decay.")
    warmup_ratio: float = option(0.06, "Fraction of steps spent in linear warmup.")
    precision: str = option(
        "auto",
        "Compute precision: auto picks bf16 where the CPU/GPU supports it, else fp32.",
        choices=("auto", "bf16", "fp16", "fp32"),
    )
    group_by_length: bool = option(True, "Batch examples of similar length together (3-4x less padding on CPU).")
    early_stopping_patience: int = option(2, "Stop after this many evaluations without improvement (0 disables).")
    evals_per_epoch: int = option(1, "Validation passes per epoch (also the checkpoint cadence).")
    seed: int = option(42, "Seed for splits, LoRA initialisation and data order.")
    resume: bool = option(
        False,
        "Resume from the last checkpoint of an interrupted run with the same name and output_dir (read from "
        "<output_dir>/../.loraroute-checkpoints/<output_dir name>/ckpt-<model name>/).",
    )
    keep_checkpoints: bool = option(
        False,
        "Keep intermediate checkpoints (in <output_dir>/../.loraroute-checkpoints/) after a successful run; "
        "`loraroute clean` removes them later.",
    )
    threads: int | None = option(None, "CPU threads for torch (default: torch's choice).")
    report_to: list[str] = option(
        ["none"],
        "Experiment trackers the Trainer logs to: none, all (every one installed), or names such as "
        "tensorboard, mlflow, wandb (each needs its package and reads its usual environment variables). "
        "TensorBoard's event files are written to the run's checkpoint directory "
        "(../.loraroute-checkpoints/<output_dir name>/ckpt-<model name>/runs/) and copied into the model "
        "directory's runs/ when the run succeeds; $TENSORBOARD_LOGGING_DIR sends them elsewhere.",
    )

    @property
    def lora_alpha(self) -> int:
        return self.alpha if self.alpha is not None else 2 * self.rank

    def validate(self) -> None:
        problems = []
        if self.rank <= 0:
            problems.append("rank must be positive")
        for name in ("val_size", "test_size"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                problems.append(f"{name} must be in [0, 1), got {value}")
        if self.val_size + self.test_size >= 1.0:
            problems.append("val_size + test_size must leave data for training")
        if not 0.0 <= self.lora_dropout < 1.0:
            problems.append("lora_dropout must be in [0, 1)")
        if self.batch_size <= 0 or self.grad_accum <= 0:
            problems.append("batch_size and grad_accum must be positive")
        if self.max_length < 8:
            problems.append("max_length must be at least 8")
        problems += report_to_problems(self.report_to)
        problems += self.choice_problems()
        if problems:
            raise ConfigError("Invalid configuration: " + "; ".join(problems))


def resolve_config(
    cls: type[S],
    *,
    defaults: dict[str, Any] | None = None,
    yaml_path: str | Path | None = None,
    options: dict[str, Any] | None = None,
    overrides: list[str] | None = None,
    fixed: dict[str, Any] | None = None,
    where: str = "options",
) -> S:
    """Settings of ``cls`` from layers, each overriding the ones before it.

    The dataclass defaults < ``defaults`` (a task's or a command's own) < the YAML file ``yaml_path`` <
    ``options`` (given explicitly: command-line options, keyword arguments; ``where`` names them in messages) <
    ``overrides`` (``key=value`` strings) < ``fixed`` (what the command itself decides, such as the task). A key
    that ``cls`` does not have is a :class:`ConfigError` naming the file or ``where`` it came from; each value is
    coerced to its field's type where it enters, and the merged settings are validated once."""
    layers = [
        (defaults, "defaults"),
        (read_yaml(yaml_path) if yaml_path else None, str(yaml_path)),
        (options, where),
        (parse_overrides(overrides) if overrides else None, "key=value overrides"),
        (fixed, where),
    ]
    values: dict[str, Any] = {}
    for layer, source in layers:
        values.update(_coerced(cls, layer or {}, source))
    cfg = cls(**values)
    try:
        cfg.validate()
    except ConfigError:
        raise
    except ValueError as exc:  # a task's own validate() raising a plain ValueError is still a bad setting
        raise ConfigError(str(exc)) from None
    return cfg


def _coerced(cls: type, values: dict[str, Any], where: str) -> dict[str, Any]:
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)} for {cls.__name__}; valid keys: {', '.join(sorted(known))}"
        )
    return {k: coerce(v, known[k].type, f"{where}: {k}") for k, v in values.items()}


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML file's top-level mapping; anything else is a :class:`ConfigError` naming the file."""
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    return values


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """Turn ``key=value`` strings into a dict; values are parsed as YAML scalars/lists (``rank=8``, ``x=[a,b]``)."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override {pair!r} is not of the form key=value")
        key, raw = pair.split("=", 1)
        out[key.strip().replace("-", "_")] = yaml.safe_load(raw) if raw else None
    return out


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(inner type, optional?) for annotations such as ``int | None`` or ``list[str] | None``."""
    if isinstance(tp, str):
        tp = eval(tp, {"list": list, "dict": dict}, {})  # annotations are strings under `from __future__`
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], True
    return tp, False


def coerce(value: Any, annotation: Any, where: str) -> Any:
    tp, optional = _base_type(annotation)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where}: must not be empty")
    origin = typing.get_origin(tp)
    try:
        if origin is list:
            if isinstance(value, str):
                value = [v for v in value.replace(",", " ").split() if v]
            if not isinstance(value, (list, tuple)):
                raise TypeError
            (inner,) = typing.get_args(tp) or (str,)
            return [inner(v) for v in value]
        if tp is bool:
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
                return value.lower() in ("true", "yes", "1")
            if not isinstance(value, bool):
                raise TypeError
            return value
        if tp is int and isinstance(value, float) and not value.is_integer():
            raise TypeError
        return tp(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {value!r}") from None


def report_to_problems(report_to: list[str]) -> list[str]:
    """What is wrong with a ``report_to`` list, found before the run instead of when the Trainer starts."""
    names = [report_to] if isinstance(report_to, str) else list(report_to)
    if names == ["none"]:
        return []  # the default: nothing to check, and no transformers import
    if not names:
        return ["report_to must name at least one tracker, or none"]
    if ("none" in names or "all" in names) and len(names) > 1:
        return [f"report_to: 'none' and 'all' stand alone, got {names}"]
    if names == ["all"]:
        return []
    from transformers.integrations import integration_utils as trackers

    known = trackers.INTEGRATION_TO_CALLBACK
    unknown = [n for n in names if n not in known]
    if unknown:
        return [f"report_to: unknown tracker(s) {', '.join(unknown)}; known: none, all, {', '.join(known)}"]
    missing = [n for n in names if n not in trackers.get_available_reporting_integrations()]
    return [f"report_to: {', '.join(missing)} not installed (install its package)"] if missing else []


def field_type(cls: type, name: str) -> tuple[Any, bool]:
    return _base_type({f.name: f.type for f in fields(cls)}[name])
