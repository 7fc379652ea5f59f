"""One training path for every task: data -> LoRA model -> HF Trainer -> test report -> model directory.

Built on transformers' Trainer so ``accelerate launch`` (multi-process, multi-GPU, multi-node) works unchanged:
only the main process writes the model directory.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from loraroute.artifacts import artifact_name, atomic_directory, save_model_artifact, write_json, write_model_card
from loraroute.config import TrainConfig
from loraroute.models.loading import (
    attach_lora,
    load_base_model,
    load_tokenizer,
    resolve_precision,
    trainable_parameters,
)
from loraroute.models.registry import resolve_model
from loraroute.predict import Predictor, read_meta
from loraroute.tasks.base import Task

log = logging.getLogger("loraroute")


@dataclass
class RunResult:
    artifact_dir: Path | None  # None on non-main processes
    report: dict[str, Any]
    train_seconds: float
    train_samples_per_second: float


def checkpoint_dir(cfg: TrainConfig, name: str) -> Path:
    # Hidden, so upstream's discovery (which scans lora_* names) never mistakes checkpoints for a model.
    return Path(cfg.output_dir) / ".checkpoints" / name


def training_arguments(cfg: TrainConfig, task: Task, out: Path, n_train: int) -> TrainingArguments:
    precision = resolve_precision(cfg.precision)
    world = max(1, torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1)
    steps_per_epoch = max(1, math.ceil(n_train / (cfg.batch_size * cfg.grad_accum * world)))
    eval_steps = max(1, steps_per_epoch // max(1, cfg.evals_per_epoch))
    total_steps = math.ceil(steps_per_epoch * cfg.epochs)
    return TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size * 2,
        gradient_accumulation_steps=cfg.grad_accum,
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        warmup_steps=int(cfg.warmup_ratio * total_steps),
        lr_scheduler_type="linear",
        eval_strategy="steps",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model=task.selection_metric,
        greater_is_better=task.selection_greater_is_better,
        logging_steps=max(1, min(50, eval_steps // 4)),
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not torch.cuda.is_available(),
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        length_column_name="length",
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to="none",
        dataloader_num_workers=0,
        disable_tqdm=False,
    )


def train_task(task: Task, cfg: TrainConfig, callbacks: list[TrainerCallback] | None = None) -> RunResult:
    cfg.task = task.name
    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    set_seed(cfg.seed)
    name = artifact_name(task.artifact_prefix, cfg)
    final_dir = Path(cfg.output_dir) / name

    splits = task.load_splits(cfg)
    labels = task.labels(splits, cfg)
    label2id = {label: i for i, label in enumerate(labels)}
    log.info("data: %s (%s)", splits.sizes(), splits.notes)

    tokenizer = load_tokenizer(cfg.model)
    base = load_base_model(cfg.model, task.kind, labels, cfg.model_dropout)
    model = attach_lora(base, task.kind, cfg.rank, cfg.lora_alpha, cfg.lora_dropout, cfg.target_modules, cfg.seed)
    trainable, total = trainable_parameters(model)
    log.info("LoRA: %d trainable of %d parameters (%.2f%%)", trainable, total, 100 * trainable / total)

    train_ds = task.encode(splits.train, tokenizer, label2id, cfg)
    val_ds = task.encode(splits.validation or splits.train[:64], tokenizer, label2id, cfg)
    ckpt = checkpoint_dir(cfg, name)
    args = training_arguments(cfg, task, ckpt, len(train_ds))

    def compute_metrics(pred):
        logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
        return task.validation_metrics(np.asarray(logits), np.asarray(pred.label_ids))

    all_callbacks = list(callbacks or [])
    if cfg.early_stopping_patience > 0:
        all_callbacks.append(EarlyStoppingCallback(cfg.early_stopping_patience))
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds,
                      data_collator=task.collator(tokenizer), compute_metrics=compute_metrics,
                      callbacks=all_callbacks)
    resume = None
    if cfg.resume:
        resume = get_last_checkpoint(str(ckpt)) if ckpt.is_dir() else None
        log.info("resume: %s", resume or "no checkpoint found, starting fresh")
    start = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - start
    samples_per_second = float(output.metrics.get("train_samples_per_second", 0.0))

    if not trainer.is_world_process_zero():
        return RunResult(None, {}, seconds, samples_per_second)

    model = trainer.model.float().cpu() if torch.cuda.is_available() else trainer.model
    with atomic_directory(final_dir) as tmp:
        merged = save_model_artifact(tmp, model, tokenizer, task, labels, cfg, resolve_model(cfg.model))
        predictor = Predictor(merged, tokenizer, read_meta(tmp))
        report = task.evaluate(predictor, splits, cfg, tmp)
        report["training"] = {"seconds": round(seconds, 1), "samples_per_second": round(samples_per_second, 2),
                              "trainable_parameters": trainable, "total_parameters": total,
                              "precision": resolve_precision(cfg.precision), "epochs_run": output.metrics.get("epoch")}

        write_json(tmp / "eval_report.json", report)
        write_model_card(tmp, task, cfg, report, headline_metrics(report))
    if not cfg.keep_checkpoints:
        import shutil

        shutil.rmtree(ckpt, ignore_errors=True)
    return RunResult(final_dir, report, seconds, samples_per_second)


def headline_metrics(report: dict) -> dict[str, float]:
    """The few numbers a summary line shows: scalar metrics of the test section."""
    test = report.get("test", {})
    return {k: v for k, v in test.items() if isinstance(v, float)}
