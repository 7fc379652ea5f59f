"""Runs of many models: ``loraroute train-all`` (every encoder task x every base model, checked after training,
summarised at the end) and ``loraroute train-specialists`` (the six solver specialists).

What the seed's ``train_cpu_optimized.sh`` scripts did per task, done once for all tasks: a failed model is
recorded with its error and the loop goes on; each trained model answers fixed probe texts and (when the export
package provides it) passes ``verify``; the summary lands in the terminal, ``summary.md`` and ``summary.json``.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from loraroute.artifacts import artifact_name, write_json
from loraroute.checkpoints import checkpoint_dir
from loraroute.config import TrainConfig, resolve_config
from loraroute.metrics.reports import markdown_table
from loraroute.progress import LOG_FILE, RunProgress, run_log
from loraroute.resources import Resources, detect_resources, fit_batch, with_oom_retry
from loraroute.tasks import get_task, task_names
from loraroute.tasks.base import EncoderTask, Task
from loraroute.tasks.solver import SPECIALISTS, SolverConfig, SolverTask

log = logging.getLogger("loraroute")

DEFAULT_MODELS = ["minilm"]  # the embedded model: works offline; hub models need a connection or a local path
# --quick: a smoke run of every stage in minutes on 2 CPU cores, not a usable model. 600 examples keep ~40 per
# intent category (14 classes) after stratified sampling; one epoch is enough to see the loss move.
QUICK_SAMPLES = 600
QUICK_EPOCHS = 1.0


@dataclass
class RunRecord:
    task: str
    model: str
    status: str = "pending"  # ok | failed
    seconds: float = 0.0
    metric_name: str | None = None  # Task.headline_metric
    metric: float | None = None  # Task.headline(report): report["test"][metric_name]
    artifact: str | None = None
    log: str | None = None
    error: str | None = None  # "stage: Type: message" for failed runs
    batch_size: int | None = None
    grad_accum: int | None = None
    probes: list[dict[str, Any]] = field(default_factory=list)
    verify: dict[str, Any] | None = None


def encoder_tasks() -> list[str]:
    """Registered tasks that train an encoder (the generative ones take a causal LM and their own command)."""
    return [name for name in task_names() if isinstance(get_task(name), EncoderTask)]


def recipe_for(task: Task, model: str, recipes: str | Path | None) -> Path | None:
    """``recipes/{task}_{model's short name}.yaml`` where that recipe exists."""
    if recipes is None:
        return None
    from loraroute.models.registry import arch_name

    recipe = Path(recipes) / f"{task.name}_{arch_name(model)}.yaml"
    return recipe if recipe.exists() else None


def run_config(
    task: Task, model: str, output_dir: str, settings: dict[str, Any], quick: bool, recipes: str | Path | None
) -> TrainConfig:
    """One run's config: its recipe < --quick < the settings given for every run; task, model and output_dir fixed.

    --quick beats the recipe: it is asked for on the command line, and a recipe's epochs are a real run's."""
    smoke = {"epochs": QUICK_EPOCHS, "max_samples": QUICK_SAMPLES} if quick else {}
    return resolve_config(
        task.config_class,
        yaml_path=recipe_for(task, model, recipes),
        options={**smoke, **settings},
        fixed={"task": task.name, "model": model, "output_dir": str(output_dir)},
        where="train-all settings",
    )


def verifier() -> Callable[..., dict] | None:
    """``loraroute.export.verify.verify_model``, or None where the 'onnx' extra is missing (logged)."""
    from loraroute.extras import missing_modules

    if absent := missing_modules("onnx", "onnxruntime"):  # verify exports and runs ONNX: the core goes without it
        log.warning(
            "train-all: verify skipped: it needs the 'onnx' extra, pip install 'loraroute[onnx]' (missing: %s)",
            ", ".join(absent),
        )
        return None
    from loraroute.export.verify import verify_model  # an import error inside it is a real failure: let it raise

    return verify_model


def check_model(task: Task, record: RunRecord, verify: Callable[..., dict] | None) -> None:
    """Probe texts through a fresh Predictor (what a user loads), then verify; raises on a failed check."""
    from loraroute.inference import Predictor

    stage = "probe"
    try:
        if task.demo_texts:
            answers = Predictor.load(record.artifact).predict(list(task.demo_texts))
            record.probes = [{"text": t, **_brief(a)} for t, a in zip(task.demo_texts, answers)]
        if verify is not None:
            stage = "verify"
            result = verify(record.artifact, extra_texts=list(task.demo_texts) or None)
            record.verify = json.loads(json.dumps(result, default=str))
            if not result.get("passed"):
                raise RuntimeError(f"verify did not pass: {_verify_problems(result)}")
    except Exception as exc:
        raise _Stage(stage, exc) from exc


def _brief(answer: dict) -> dict:
    return {k: v for k, v in answer.items() if k != "probabilities"}


def _verify_problems(result: dict) -> str:
    for key in ("problems", "failures", "errors"):
        if result.get(key):
            return "; ".join(map(str, result[key]))[:300]
    return "see summary.json"


class _Stage(Exception):
    def __init__(self, stage: str, exc: BaseException):
        super().__init__(f"{stage}: {type(exc).__name__}: {exc}")
        self.stage = stage


def train_all(
    tasks: list[str] | None = None,
    models: list[str] | None = None,
    output_dir: str | Path = "models",
    settings: dict[str, Any] | None = None,
    quick: bool = False,
    recipes: str | Path | None = None,
    fit: bool = True,
    verify: bool = True,
    train: Callable | None = None,
    resources: Resources | None = None,
) -> list[RunRecord]:
    """Train tasks x models one after another; never stops at a failed run. Writes summary.{md,json}.

    ``settings`` are TrainConfig keys applied to every run (``epochs``, ``max_samples``, ``rank``, any key=value);
    ``fit`` sizes batch and accumulation to the machine; ``train`` stands in for ``training.train_task``.
    """
    if train is None:
        from loraroute.training import train_task as train
    tasks = tasks or encoder_tasks()
    models = models or list(DEFAULT_MODELS)
    for name in tasks:
        if not isinstance(get_task(name), EncoderTask):
            raise ValueError(f"train-all trains encoder tasks; train {name!r} with `loraroute train {name}`")
    output_dir = Path(output_dir)
    resources = resources or detect_resources()
    verify_model = verifier() if verify else None
    log.info(
        "train-all: %d task(s) x %d model(s) on %s; verify: %s",
        len(tasks),
        len(models),
        resources.describe(),
        "yes" if verify_model else "not available" if verify else "off",
    )
    records = [RunRecord(task, model) for task in tasks for model in models]
    started = datetime.now(timezone.utc)
    overall = tqdm(records, desc="train-all", unit="run", position=0, dynamic_ncols=True)
    try:
        for record in overall:
            overall.set_postfix_str(f"{record.task} / {record.model}")
            run_one(record, output_dir, settings or {}, quick, recipes, fit, train, resources, verify_model)
    finally:
        overall.close()
        write_summary(
            records,
            output_dir,
            started,
            resources,
            {
                "tasks": tasks,
                "models": models,
                "settings": settings or {},
                "quick": quick,
                "recipes": str(recipes) if recipes else None,
                "fit": fit,
                "verify": bool(verify_model),
            },
        )
    return records


def run_one(
    record: RunRecord,
    output_dir: Path,
    settings: dict,
    quick: bool,
    recipes,
    fit: bool,
    train: Callable,
    resources: Resources,
    verify_model,
) -> None:
    start = time.perf_counter()
    task = get_task(record.task)
    cfg: TrainConfig | None = None
    try:
        try:
            cfg = run_config(task, record.model, str(output_dir), settings, quick, recipes)
        except Exception as exc:
            raise _Stage("config", exc) from exc
        run_log_file = checkpoint_dir(cfg, artifact_name(task.artifact_prefix, cfg)) / LOG_FILE
        with run_log(run_log_file):  # the batch plan line lands in the run's log too
            if fit:
                try:
                    cfg = fit_batch(cfg, resources)
                except Exception as exc:
                    raise _Stage("resources", exc) from exc
            progress = RunProgress(desc=f"{record.task}/{record.model}", position=1, leave=False)
            try:
                result = with_oom_retry(lambda c: train(task, c, callbacks=[progress]), cfg)
            except Exception as exc:
                raise _Stage("train", exc) from exc
        record.artifact = str(result.artifact_dir)
        training = result.report.get("training", {})
        record.batch_size = training.get("batch_size", cfg.batch_size)
        record.grad_accum = training.get("grad_accum", cfg.grad_accum)
        record.metric_name = task.headline_metric
        record.metric = task.headline(result.report)
        log_file = Path(record.artifact) / LOG_FILE
        record.log = str(log_file) if log_file.exists() else None
        check_model(task, record, verify_model)
        record.status = "ok"
    except _Stage as exc:
        record.status = "failed"
        record.error = str(exc)
        log.error("%s / %s failed at %s", record.task, record.model, exc)
        if record.log is None and cfg is not None:
            failed_log = checkpoint_dir(cfg, artifact_name(task.artifact_prefix, cfg)) / LOG_FILE
            record.log = str(failed_log) if failed_log.exists() else None
        details = "".join(traceback.format_exception(exc.__cause__ or exc))
        if record.log:  # the terminal gets one line; the run's log gets the whole traceback
            with open(record.log, "a", encoding="utf-8") as fh:
                fh.write(f"train-all: {record.task} / {record.model} failed at {exc}\n{details}")
        else:
            log.debug(details)
    finally:
        record.seconds = round(time.perf_counter() - start, 1)


# --- summary ---------------------------------------------------------------------------------------------------
def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def summary_markdown(records: list[RunRecord]) -> str:
    rows = [
        [
            r.task,
            r.model,
            r.status,
            _duration(r.seconds),
            r.metric_name or "-",
            f"{r.metric:.4f}" if r.metric is not None else "-",
            r.artifact or "-",
        ]
        for r in records
    ]
    text = markdown_table(["task", "model", "status", "duration", "metric", "value", "artifact"], rows)
    failed = [r for r in records if r.status != "ok"]
    if failed:
        text += "\n\nFailures:\n" + "\n".join(
            f"- {r.task} / {r.model}: {r.error or r.status}" + (f" (log: {r.log})" if r.log else "") for r in failed
        )
    return text


def write_summary(
    records: list[RunRecord], output_dir: Path, started: datetime, resources: Resources, settings: dict[str, Any]
) -> tuple[Path, Path]:
    output_dir.mkdir(parents=True, exist_ok=True)
    ok = sum(r.status == "ok" for r in records)
    finished = datetime.now(timezone.utc)
    md = output_dir / "summary.md"
    md.write_text(
        f"# loraroute train-all\n\n{started:%Y-%m-%d %H:%M} UTC, {_duration((finished - started).total_seconds())} "
        f"on {resources.describe()}; {ok} of {len(records)} run(s) succeeded.\n\n{summary_markdown(records)}\n"
    )
    js = output_dir / "summary.json"
    js.write_text(
        json.dumps(
            {
                "started": started.isoformat(timespec="seconds"),
                "finished": finished.isoformat(timespec="seconds"),
                "resources": asdict(resources),
                "settings": settings,
                "succeeded": ok,
                "failed": len(records) - ok,
                "runs": [asdict(r) for r in records],
            },
            indent=2,
            ensure_ascii=False,
            default=str,
        )
        + "\n"
    )
    return md, js


# --- train-specialists -----------------------------------------------------------------------------------------
def specialist_configs(
    options: dict[str, Any] | None = None,
    names: list[str] | None = None,
    *,
    yaml_path: str | Path | None = None,
    overrides: list[str] | None = None,
) -> list[SolverConfig]:
    """One config per specialist: its table settings < the YAML file < ``options`` < key=value overrides."""
    names = names or list(SPECIALISTS)
    unknown = sorted(set(names) - set(SPECIALISTS))
    if unknown:
        raise ValueError(f"unknown specialist(s) {unknown}; choose from {', '.join(SPECIALISTS)}")
    return [
        resolve_config(
            SolverConfig,
            yaml_path=yaml_path,
            options=options,
            overrides=overrides,
            fixed={"specialist": name, "task": "solver"},
            where=f"specialist {name}",
        )
        for name in names
    ]


def train_specialists(configs: list[SolverConfig]) -> list[dict[str, Any]]:
    """Train each specialist's config; a failed run is recorded and the loop goes on. Writes
    ``specialists_summary.{json,md}`` into the output directory."""
    from loraroute.training import train_task

    rows = []
    for cfg in configs:
        row: dict[str, Any] = {
            "specialist": cfg.specialist,
            "categories": ", ".join(SPECIALISTS[cfg.specialist].categories),
        }
        try:
            result = train_task(SolverTask(), cfg)
        except Exception as exc:  # one specialist's bad data must not lose the other five runs
            log.error("%s failed: %s", cfg.specialist, exc)
            rows.append({**row, "status": f"failed: {exc}".splitlines()[0]})
            continue
        if result.artifact_dir is None:  # not the main process
            continue
        test = result.report["test"]
        rows.append(
            {
                **row,
                "status": "ok",
                "questions": test["num_examples"],
                "baseline_accuracy": test["baseline_accuracy"],
                "accuracy": test["accuracy"],
                "gain_points": test["gain_points"],
                "baseline_unparsed": test["baseline_unparsed"],
                "unparsed": test["unparsed"],
                "model_dir": str(result.artifact_dir),
            }
        )
    out = Path(configs[0].output_dir) if configs else Path(".")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "specialists_summary.json", rows)
    (out / "specialists_summary.md").write_text(specialists_table(rows) + "\n")
    return rows


def specialists_table(rows: list[dict[str, Any]]) -> str:
    header = [
        "specialist",
        "categories",
        "questions",
        "baseline acc",
        "trained acc",
        "gain (points)",
        "unparsed (base -> trained)",
        "status",
    ]
    body = [
        [
            r["specialist"],
            r["categories"],
            r.get("questions", "-"),
            r.get("baseline_accuracy", "-"),
            r.get("accuracy", "-"),
            r.get("gain_points", "-"),
            f"{r['baseline_unparsed']} -> {r['unparsed']}" if "unparsed" in r else "-",
            r["status"],
        ]
        for r in rows
    ]
    return markdown_table(header, body)
