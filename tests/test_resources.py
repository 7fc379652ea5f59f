"""Resources: memory reading, the batch plan for given memory figures, and the one retry after out-of-memory."""

import logging
import sys

import pytest
import torch

from loraroute import resources
from loraroute.config import TrainConfig
from loraroute.resources import (
    GiB,
    MiB,
    ModelShape,
    Resources,
    choose_batch,
    fit_batch,
    is_out_of_memory,
    memory_estimate,
    with_oom_retry,
)
from tests.conftest import tiny_config


def test_requested_batch_is_kept_when_memory_is_plentiful():
    plan = choose_batch(32, 1, fixed_bytes=1 * GiB, per_example_bytes=100 * MiB, available_bytes=64 * GiB)
    assert (plan.batch_size, plan.grad_accum) == (32, 1)
    assert "requested batch fits" in plan.reason


def test_batch_shrinks_to_fit_and_accumulation_keeps_the_effective_batch():
    # budget 0.66 x 4 GiB = 2.64 GiB; minus 1 GiB fixed leaves room for 16 examples of 100 MiB, not 32
    plan = choose_batch(32, 1, fixed_bytes=1 * GiB, per_example_bytes=100 * MiB, available_bytes=4 * GiB)
    assert (plan.batch_size, plan.grad_accum) == (16, 2)
    assert "batch 32 would need" in plan.reason


def test_batch_candidates_divide_the_effective_batch():
    # effective 24 (12 x 2); room for 7 examples -> 6 is the largest divisor of 24 that fits
    plan = choose_batch(12, 2, fixed_bytes=0, per_example_bytes=GiB, available_bytes=int(7.5 * GiB / 0.66))
    assert (plan.batch_size, plan.grad_accum) == (6, 4)
    assert plan.batch_size * plan.grad_accum == 24


def test_batch_is_never_raised_above_the_request():
    plan = choose_batch(4, 8, fixed_bytes=0, per_example_bytes=MiB, available_bytes=64 * GiB)
    assert (plan.batch_size, plan.grad_accum) == (4, 8)


def test_when_nothing_fits_the_plan_is_batch_one_and_says_so():
    plan = choose_batch(32, 1, fixed_bytes=10 * GiB, per_example_bytes=GiB, available_bytes=8 * GiB)
    assert (plan.batch_size, plan.grad_accum) == (1, 32)
    assert "even batch 1" in plan.reason


def test_memory_estimate_grows_with_length_and_layers_and_halves_in_bf16():
    shape = ModelShape(parameters=22_000_000, hidden_size=384, layers=6, heads=12)
    fixed, short = memory_estimate(shape, 64)
    _, long = memory_estimate(shape, 128)
    _, deep = memory_estimate(ModelShape(22_000_000, 384, 12, 12), 64)
    _, half = memory_estimate(shape, 64, "bf16")
    assert long > 2 * short  # attention scores grow with the square of the length
    assert deep == 2 * short
    assert half * 2 == short
    assert fixed > 4 * shape.parameters  # fp32 weights plus optimiser state and framework


@pytest.mark.parametrize("arch", ["bert", "distilbert", "modernbert"])
def test_model_shape_reads_each_architecture_config(arch):
    shape = ModelShape.from_config(tiny_config(arch))
    assert (shape.hidden_size, shape.layers, shape.heads) == (32, 2, 2)
    assert shape.parameters > 30522 * 32  # the embedding table alone


def test_fit_batch_shrinks_for_little_memory_and_logs_one_line(tiny_encoder, caplog):
    cfg = TrainConfig(model=str(tiny_encoder("bert")), batch_size=32, max_length=128, precision="fp32")
    fixed, per_example = memory_estimate(ModelShape.from_config(tiny_config("bert")), 128)
    room_for_10 = int((fixed + 10.5 * per_example) / resources.MEMORY_BUDGET)
    small = Resources("cpu", "test cpu", 2, room_for_10, 4 * room_for_10, "test figures")
    with caplog.at_level(logging.INFO, logger="loraroute"):
        fitted = fit_batch(cfg, small)
    assert (fitted.batch_size, fitted.grad_accum) == (8, 4)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("resources:")]
    assert len(lines) == 1 and "batch 8 x accumulation 4" in lines[0] and "test figures" in lines[0]
    assert cfg.batch_size == 32, "the caller's config is not modified"


def test_fit_batch_keeps_the_batch_when_the_model_config_cannot_be_read(tmp_path, caplog):
    cfg = TrainConfig(model=str(tmp_path / "nowhere-model"), batch_size=16)
    with caplog.at_level(logging.INFO, logger="loraroute"):
        fitted = fit_batch(cfg, Resources("cpu", "x", 1, GiB, GiB, "test"))
    assert fitted.batch_size == 16
    assert "kept" in caplog.text


def test_memory_is_read_from_proc_meminfo_without_psutil(monkeypatch):
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil -> ImportError
    monkeypatch.setattr(resources, "cgroup_memory_room", lambda: None)
    available, total, source = resources.system_memory()
    assert source == "/proc/meminfo"
    assert 0 < available <= total


def test_a_cgroup_limit_caps_available_memory(monkeypatch):
    monkeypatch.setattr(resources, "cgroup_memory_room", lambda: 256 * MiB)
    available, _, source = resources.system_memory()
    assert available == 256 * MiB and "cgroup" in source


def test_cgroup_v1_unlimited_sentinel_means_no_limit(monkeypatch):
    values = {
        "/sys/fs/cgroup/memory/memory.limit_in_bytes": 9223372036854771712,
        "/sys/fs/cgroup/memory/memory.usage_in_bytes": GiB,
    }
    monkeypatch.setattr(resources, "_read_int", values.get)
    assert resources.cgroup_memory_room() is None
    values["/sys/fs/cgroup/memory/memory.limit_in_bytes"] = 3 * GiB
    assert resources.cgroup_memory_room() == 2 * GiB


def test_detected_resources_describe_device_threads_and_memory():
    found = resources.detect_resources()
    assert found.device in ("cuda", "mps", "cpu") and found.threads >= 1 and found.available_bytes > 0
    assert found.device in found.describe() and "GiB" in found.describe()


def test_out_of_memory_errors_are_recognised():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 9 GB)"))
    assert is_out_of_memory(
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: "
            "can't allocate memory: you tried to allocate 123 bytes. out of memory"
        )
    )
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_out_of_memory_retries_once_with_half_batch_and_double_accumulation():
    seen = []

    def run(cfg):
        seen.append((cfg.batch_size, cfg.grad_accum))
        if len(seen) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return "trained"

    assert with_oom_retry(run, TrainConfig(batch_size=32, grad_accum=2)) == "trained"
    assert seen == [(32, 2), (16, 4)]


def test_a_second_out_of_memory_error_is_raised_not_retried_again():
    calls = []

    def run(cfg):
        calls.append(cfg.batch_size)
        raise RuntimeError("CUDA error: out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        with_oom_retry(run, TrainConfig(batch_size=8))
    assert calls == [8, 4]


def test_other_errors_and_batch_one_are_not_retried():
    calls = []

    def fails(cfg):
        calls.append(cfg.batch_size)
        raise ValueError("bad data")

    with pytest.raises(ValueError):
        with_oom_retry(fails, TrainConfig(batch_size=8))

    def oom(cfg):
        calls.append(cfg.batch_size)
        raise torch.OutOfMemoryError("out of memory")

    with pytest.raises(torch.OutOfMemoryError):
        with_oom_retry(oom, TrainConfig(batch_size=1))
    assert calls == [8, 1]
