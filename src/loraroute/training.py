"""One training path for every task: data -> LoRA model -> HF Trainer -> test report -> model directory.

Built on transformers' Trainer so ``accelerate launch`` (multi-process, multi-GPU, multi-node) works unchanged:
only the main process writes the model directory.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_callback import ProgressCallback
from transformers.trainer_utils import get_last_checkpoint

from loraroute.artifacts import ModelDir, artifact_name, save_model_artifact
from loraroute.checkpoints import RUN_PID, checkpoint_dir, clean, remove_tree
from loraroute.config import TrainConfig
from loraroute.files import atomic_directory
from loraroute.inference import Predictor
from loraroute.model_card import write_model_card
from loraroute.models.loading import (
    attach_lora,
    load_base_model,
    load_tokenizer,
    resolve_precision,
    trainable_parameters,
)
from loraroute.models.registry import resolve_model
from loraroute.progress import CURVES_FILE, LOG_FILE, RunProgress, is_main_process, plot_training_curves, run_log
from loraroute.resources import training_device
from loraroute.tasks.base import Task

log = logging.getLogger("loraroute")


@dataclass
class RunResult:
    artifact_dir: Path | None  # None on non-main processes
    report: dict[str, Any]
    train_seconds: float
    train_samples_per_second: float


def training_arguments(cfg: TrainConfig, task: Task, out: Path, n_train: int) -> TrainingArguments:
    precision = resolve_precision(cfg.precision)
    world = int(os.environ.get("WORLD_SIZE", "1"))  # set by accelerate/torchrun before the process group exists
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
        use_cpu=training_device() == "cpu",
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        length_column_name="length",
        label_names=["labels"],  # every collator emits "labels"; PEFT wrappers hide them from Trainer's lookup
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to=cfg.report_to,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )


def train_task(task: Task, cfg: TrainConfig, callbacks: list[TrainerCallback] | None = None) -> RunResult:
    """Train, evaluate and write the model directory. A :class:`RunProgress` in ``callbacks`` replaces the default
    bar; the run's log is written next to its checkpoints (:func:`checkpoint_dir`) and copied into the model
    directory as train.log."""
    if not isinstance(cfg, task.config_class):  # the task reads its own settings (cfg.mapping, cfg.target_fpr)
        raise TypeError(
            f"{task.name} needs its own config class, {task.config_class.__name__} "
            f"(get_task({task.name!r}).config_class), not {type(cfg).__name__}"
        )
    cfg.task = task.name
    cfg.validate()
    name = artifact_name(task.artifact_prefix, cfg)
    with run_log(checkpoint_dir(cfg, name) / LOG_FILE) as log_file, _owned(checkpoint_dir(cfg, name)):
        log.info(
            "run %s: %s on %s, batch %d x accumulation %d, %s epochs, rank %d",
            name,
            task.name,
            cfg.model,
            cfg.batch_size,
            cfg.grad_accum,
            cfg.epochs,
            cfg.rank,
        )
        if is_main_process():
            for path, why, size in clean(cfg.output_dir, name=name):
                log.info("removed %s (%s): %.1f MB", path, why, size / 1e6)
        return _train_task(task, cfg, name, callbacks, log_file)


@contextlib.contextmanager
def _owned(ckpt: Path):
    """Mark ``ckpt`` as this live run's (``loraroute clean`` leaves it alone) for the duration of the block."""
    if not is_main_process():
        yield
        return
    ckpt.mkdir(parents=True, exist_ok=True)
    (ckpt / RUN_PID).write_text(f"{os.getpid()}\n")
    try:
        yield
    finally:
        (ckpt / RUN_PID).unlink(missing_ok=True)


def _train_task(
    task: Task, cfg: TrainConfig, name: str, callbacks: list[TrainerCallback] | None, log_file: Path
) -> RunResult:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    set_seed(cfg.seed)
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
    # Selecting on the Trainer's own eval loss needs no logits; causal LMs' full-vocabulary logits would not fit.
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        data_collator=task.collator(tokenizer),
        compute_metrics=None if task.selection_metric == "loss" else compute_metrics,
        compute_loss_func=task.loss_function(cfg, splits.train),
        callbacks=all_callbacks,
    )
    trainer.remove_callback(ProgressCallback)
    if not any(isinstance(c, RunProgress) for c in all_callbacks):
        trainer.add_callback(RunProgress(desc=name))
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

    model = trainer.model.float().cpu() if training_device() != "cpu" else trainer.model
    with atomic_directory(final_dir) as tmp:
        merged = save_model_artifact(tmp, model, tokenizer, task, labels, cfg, resolve_model(cfg.model))
        predictor = Predictor(merged, tokenizer, ModelDir(tmp).meta(), task)
        report = task.evaluate(predictor, splits, cfg)
        report.data["training"] = {
            "seconds": round(seconds, 1),
            "samples_per_second": round(samples_per_second, 2),
            "world_size": trainer.args.world_size,
            "trainable_parameters": trainable,
            "total_parameters": total,
            "precision": resolve_precision(cfg.precision),
            "epochs_run": output.metrics.get("epoch"),
            "batch_size": cfg.batch_size,
            "grad_accum": cfg.grad_accum,
        }

        report.write(tmp)
        write_model_card(tmp, task, cfg, report.data, name=name)  # tmp's name is temporary
        plot_training_curves(trainer.state.log_history, task.selection_metric, tmp / CURVES_FILE, name)
        if log_file.exists():
            shutil.copyfile(log_file, tmp / LOG_FILE)
        if (ckpt / "runs").is_dir():  # --report-to tensorboard: the event files outlive the checkpoints (and the
            shutil.copytree(ckpt / "runs", tmp / "runs")  # Hub shows a repo's runs/ as TensorBoard)
    if not cfg.keep_checkpoints:
        remove_tree(ckpt)
    return RunResult(final_dir, report.data, seconds, samples_per_second)
