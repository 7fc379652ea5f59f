"""The machine a run lands on: device, threads, free memory; a batch size that fits; one retry after running out.

The memory estimate is deliberately simple and conservative, so it can be checked by hand:

* fixed: the frozen fp32 weights (4 bytes per parameter) plus gradients and AdamW moments for the trainable LoRA
  and head parameters (16 bytes each; taken as 5% of the model, above the 1-3% a rank-16 LoRA really trains), plus
  512 MiB for the framework itself (torch, tokenizer, datasets);
* per example: the activations autograd keeps for the backward pass. Korthikanti et al. 2022 ("Reducing Activation
  Recomputation in Large Transformer Models", section 4.1) count ``s*h*(34 + 5*a*s/h)`` bytes per layer and example
  for 16-bit activations (sequence length s, hidden size h, a heads); doubled for fp32. For MiniLM (h=384, 6 layers)
  at 128 tokens that is ~32 MiB per example; for a BERT-base-sized model ~105 MiB.

The batch plan only ever shrinks the per-device batch, and keeps the effective batch (batch x accumulation) the
same, so a run sized for a small machine trains like the same run on a large one.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch

log = logging.getLogger("loraroute")

GiB = 1024**3
MiB = 1024**2
FRAMEWORK_BYTES = 512 * MiB
TRAINABLE_FRACTION = 0.05
# Share of the free memory a run may plan to use. The estimate has no term for the allocator's fragmentation,
# the evaluation batch (twice the training batch, but without stored activations) or other processes on a shared
# machine, so a third of the room is left over.
MEMORY_BUDGET = 0.66


@dataclass(frozen=True)
class Resources:
    device: str  # "cuda" | "mps" | "cpu": where training runs
    name: str  # GPU name or CPU model
    threads: int  # torch intra-op threads (CPU work, tokenisation)
    available_bytes: int  # memory free for this run (GPU memory on CUDA, RAM otherwise)
    total_bytes: int
    memory_source: str  # where available_bytes came from, for the log line

    def describe(self) -> str:
        return (
            f"{self.device} ({self.name}, {self.threads} threads), {self.available_bytes / GiB:.1f} of "
            f"{self.total_bytes / GiB:.1f} GiB free ({self.memory_source})"
        )


def training_device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "cpu"


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def cgroup_memory_room() -> int | None:
    """Bytes left under this container's cgroup memory limit (v2, then v1); None when there is no limit."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        limit = _read_int(limit_file)  # "max" (v2, no limit) is not a digit string and reads as None
        # cgroup v1 writes "no limit" as a page-rounded 2**63 - 1
        if limit is None or limit >= 2**62:
            continue
        usage = _read_int(usage_file) or 0
        return max(0, limit - usage)
    return None


def system_memory() -> tuple[int, int, str]:
    """(available, total, source) for RAM: psutil when installed, else /proc/meminfo; capped by the cgroup."""
    try:
        import psutil

        vm = psutil.virtual_memory()
        available, total, source = int(vm.available), int(vm.total), "psutil"
    except ImportError:
        info = {}
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                key, _, value = line.partition(":")
                info[key] = int(value.split()[0]) * 1024
        except OSError:
            pass
        total = info.get("MemTotal", 0)
        available = info.get("MemAvailable", info.get("MemFree", 0))
        source = "/proc/meminfo" if total else "unknown"
    room = cgroup_memory_room()
    if room is not None and room < available:
        available, source = room, source + ", capped by cgroup limit"
    return available, total, source


def detect_resources() -> Resources:
    device = training_device()
    threads = torch.get_num_threads()
    if device == "cuda":
        free, total = torch.cuda.mem_get_info()
        return Resources(
            "cuda", torch.cuda.get_device_name(), threads, int(free), int(total), "torch.cuda.mem_get_info"
        )
    available, total, source = system_memory()
    if device == "mps":
        # Apple GPUs share system memory; Metal caps what one process may allocate below that.
        cap = getattr(torch.mps, "recommended_max_memory", lambda: 0)()
        if cap:
            available, source = min(available, int(cap)), source + ", Metal recommended maximum"
        return Resources("mps", "Apple GPU", threads, available, total, source)
    return Resources("cpu", _cpu_name(), threads, available, total, source)


# --- memory estimate and batch plan ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelShape:
    parameters: int
    hidden_size: int
    layers: int
    heads: int

    @classmethod
    def from_config(cls, config) -> ModelShape:
        def get(*names, default=None):
            for name in names:
                if getattr(config, name, None) is not None:
                    return getattr(config, name)
            return default

        hidden = int(get("hidden_size", "dim", "d_model"))
        layers = int(get("num_hidden_layers", "n_layers", "num_layers"))
        heads = int(get("num_attention_heads", "n_heads", default=max(1, hidden // 64)))
        inter = int(get("intermediate_size", "hidden_dim", default=4 * hidden))
        vocab = int(get("vocab_size", default=30522))
        positions = int(get("max_position_embeddings", default=512))
        # embeddings + per layer: Q, K, V, O (4 h^2) and the two FFN matrices (2 h * intermediate)
        params = (vocab + positions) * hidden + layers * (4 * hidden * hidden + 2 * hidden * inter)
        return cls(params, hidden, layers, heads)


def memory_estimate(shape: ModelShape, max_length: int, precision: str = "fp32") -> tuple[int, int]:
    """(fixed bytes, bytes per training example) -- see the module docstring for where each term comes from."""
    fixed = 4 * shape.parameters + int(16 * TRAINABLE_FRACTION * shape.parameters) + FRAMEWORK_BYTES
    s, h, a = max_length, shape.hidden_size, shape.heads
    per_layer_16bit = s * h * 34 + 5 * a * s * s
    scale = 1 if precision in ("bf16", "fp16") else 2
    return fixed, shape.layers * per_layer_16bit * scale


@dataclass(frozen=True)
class BatchPlan:
    batch_size: int
    grad_accum: int
    reason: str


def choose_batch(
    batch_size: int,
    grad_accum: int,
    fixed_bytes: int,
    per_example_bytes: int,
    available_bytes: int,
    budget: float = MEMORY_BUDGET,
) -> BatchPlan:
    """The largest per-device batch not above ``batch_size`` that fits, keeping batch x accumulation constant.

    Candidates are the divisors of the effective batch, so accumulation stays a whole number; when not even one
    example fits, the plan is batch 1 and says so (the OOM retry cannot go lower either).
    """
    effective = batch_size * grad_accum
    room = int(available_bytes * budget) - fixed_bytes
    need = lambda b: fixed_bytes + b * per_example_bytes  # noqa: E731
    candidates = [d for d in range(min(batch_size, effective), 0, -1) if effective % d == 0]
    for b in candidates:
        if b * per_example_bytes <= room:
            if b == batch_size:
                why = "the requested batch fits"
            else:
                why = f"batch {batch_size} would need ~{need(batch_size) / GiB:.1f} GiB"
            return BatchPlan(
                b,
                effective // b,
                f"{why}; batch {b} needs ~{need(b) / GiB:.1f} GiB of the "
                f"{budget:.0%} budget {available_bytes * budget / GiB:.1f} GiB",
            )
    return BatchPlan(
        1,
        effective,
        f"even batch 1 needs ~{need(1) / GiB:.1f} GiB, over the {budget:.0%} budget "
        f"{available_bytes * budget / GiB:.1f} GiB; trying batch 1 anyway",
    )


def fit_batch(cfg, resources: Resources | None = None):
    """``cfg`` with batch size and accumulation chosen for this machine; logs one line saying what and why."""
    from loraroute.models.loading import _load_config, resolve_precision
    from loraroute.models.registry import resolve_model

    resources = resources or detect_resources()
    try:
        shape = ModelShape.from_config(_load_config(resolve_model(cfg.model), cfg.model))
    except (RuntimeError, OSError, TypeError, ValueError) as exc:
        log.info(
            "resources: %s; batch %d x accumulation %d kept (model config unreadable: %s)",
            resources.describe(),
            cfg.batch_size,
            cfg.grad_accum,
            str(exc).splitlines()[0],
        )
        return cfg
    precision = resolve_precision(cfg.precision)
    fixed, per_example = memory_estimate(shape, cfg.max_length, precision)
    plan = choose_batch(cfg.batch_size, cfg.grad_accum, fixed, per_example, resources.available_bytes)
    log.info(
        "resources: %s; %s (%.0fM params, %d tokens, %s) ~%.0f MiB + %.1f MiB/example -> batch %d x "
        "accumulation %d: %s",
        resources.describe(),
        cfg.model,
        shape.parameters / 1e6,
        cfg.max_length,
        precision,
        fixed / MiB,
        per_example / MiB,
        plan.batch_size,
        plan.grad_accum,
        plan.reason,
    )
    return dataclasses.replace(cfg, batch_size=plan.batch_size, grad_accum=plan.grad_accum)


# --- out-of-memory retry ----------------------------------------------------------------------------------------
def is_out_of_memory(exc: BaseException) -> bool:
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    # CPU allocators, MPS and older CUDA builds raise a plain RuntimeError with this phrase
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()
    )


def release_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch, "mps", None)
    if mps is not None and training_device() == "mps":
        mps.empty_cache()


T = TypeVar("T")


def with_oom_retry(run: Callable[..., T], cfg) -> T:
    """``run(cfg)``; after an out-of-memory error, once more with half the batch and twice the accumulation."""
    try:
        return run(cfg)
    except BaseException as exc:
        if not is_out_of_memory(exc) or cfg.batch_size <= 1:
            raise
        what = (str(exc).splitlines() or [type(exc).__name__])[0]
    # Retried outside the except block: the traceback pins the failed attempt's tensors until the block ends.
    smaller = dataclasses.replace(cfg, batch_size=cfg.batch_size // 2, grad_accum=cfg.grad_accum * 2)
    log.warning(
        "out of memory at batch %d x accumulation %d (%s); retrying once with batch %d x accumulation %d",
        cfg.batch_size,
        cfg.grad_accum,
        what,
        smaller.batch_size,
        smaller.grad_accum,
    )
    release_memory()
    return run(smaller)
