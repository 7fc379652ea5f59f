"""What a run shows and leaves behind while it trains: a progress bar, a per-run log file, training curves."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm
from transformers import TrainerCallback

log = logging.getLogger("loraroute")
# Loss at every logging step goes to the run's log file only; the terminal has the bar's postfix for that.
step_log = logging.getLogger("loraroute.steps")
step_log.propagate = False
step_log.setLevel(logging.INFO)

LOG_FILE = "train.log"
CURVES_FILE = "training_curves.png"
_open_logs: set[Path] = set()


def is_main_process() -> bool:
    # Set by torchrun/accelerate before the Trainer exists; the Trainer's own check comes too late for the log file.
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def run_log(path: Path) -> Iterator[Path]:
    """Copy loraroute's (and transformers' warnings) log records to ``path`` for the duration of the block."""
    path = Path(path)
    # Re-entrant: train-all opens the run's log before train_task does, so its lines land in the same file once.
    if not is_main_process() or path.resolve() in _open_logs:
        yield path
        return
    _open_logs.add(path.resolve())
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")  # "a": a resumed run continues its log
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"))
    loggers = [logging.getLogger("loraroute"), step_log, logging.getLogger("transformers")]
    lib = logging.getLogger("loraroute")
    old_level = lib.level
    if lib.getEffectiveLevel() > logging.INFO:  # a library caller without logging set up still gets a full file
        lib.setLevel(logging.INFO)
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield path
    finally:
        _open_logs.discard(path.resolve())
        for logger in loggers:
            logger.removeHandler(handler)
        lib.setLevel(old_level)
        handler.close()


class RunProgress(TrainerCallback):
    """One bar per run: steps done, with epoch, last logged loss and samples/s in the postfix.

    Replaces the Trainer's own bar, which prints every log dict as a line and has no throughput.
    """

    def __init__(self, desc: str = "train", position: int | None = None, leave: bool = True):
        self.desc, self.position, self.leave = desc, position, leave
        self.bar = None
        self.loss: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.bar = tqdm(
            total=state.max_steps,
            initial=state.global_step,
            desc=self.desc,
            unit="step",
            dynamic_ncols=True,
            position=self.position,
            leave=self.leave,
        )
        self.start_time, self.start_step = time.perf_counter(), state.global_step
        self.samples_per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is None:
            return
        self.bar.update(state.global_step - self.bar.n)
        elapsed = time.perf_counter() - self.start_time
        rate = (state.global_step - self.start_step) * self.samples_per_step / elapsed if elapsed > 0 else 0.0
        postfix = {"epoch": f"{state.epoch or 0:.2f}", "samples/s": f"{rate:.1f}"}
        if self.loss is not None:
            postfix["loss"] = f"{self.loss:.4f}"
        self.bar.set_postfix(postfix, refresh=False)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        if "loss" in logs:
            self.loss = float(logs["loss"])
        scalars = {k: v for k, v in logs.items() if isinstance(v, (int, float)) and k != "epoch"}
        step_log.info(
            "step %d epoch %.2f %s",
            state.global_step,
            state.epoch or 0,
            " ".join(f"{k}={v:.4g}" for k, v in scalars.items()),
        )

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not state.is_world_process_zero or not metrics:
            return
        shown = {
            k.removeprefix("eval_"): v
            for k, v in metrics.items()
            if isinstance(v, float) and k != "epoch" and not k.endswith(("_runtime", "_per_second"))
        }
        log.info(
            "validation at step %d (epoch %.2f): %s",
            state.global_step,
            state.epoch or 0,
            ", ".join(f"{k} {v:.4f}" for k, v in shown.items()),
        )

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def curve_points(log_history: list[dict[str, Any]], metric: str) -> dict[str, list[tuple[float, float]]]:
    """(epoch, value) series from ``trainer.state.log_history``: training loss, validation loss and ``metric``."""
    series: dict[str, list[tuple[float, float]]] = {"train loss": [], "validation loss": [], metric: []}
    for entry in log_history:
        epoch = entry.get("epoch")
        if epoch is None:
            continue
        if "loss" in entry:
            series["train loss"].append((epoch, float(entry["loss"])))
        if "eval_loss" in entry:
            series["validation loss"].append((epoch, float(entry["eval_loss"])))
        if f"eval_{metric}" in entry:
            series[metric].append((epoch, float(entry[f"eval_{metric}"])))
    return series


def plot_training_curves(log_history: list[dict[str, Any]], metric: str, path: Path, title: str) -> Path | None:
    """Loss (left) and the validation ``metric`` (right) against epochs; None when nothing was logged."""
    series = curve_points(log_history, metric)
    if not any(series.values()):
        return None
    from loraroute.extras import pyplot

    if (plt := pyplot(path)) is None:
        return None
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name in ("train loss", "validation loss"):
        if series[name]:
            xs, ys = zip(*series[name])
            ax_loss.plot(xs, ys, marker="o" if name.startswith("val") else None, markersize=4, label=name)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    if series[metric]:
        xs, ys = zip(*series[metric])
        ax_metric.plot(xs, ys, marker="o", markersize=4, color="tab:green")
    ax_metric.set_xlabel("epoch")
    ax_metric.set_ylabel(f"validation {metric}")
    ax_metric.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
