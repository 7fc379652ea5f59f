"""Inference latency and throughput of one model directory: HF pipeline vs loraroute PyTorch vs ONNX fp32 vs int8.

Every runtime answers the same texts end to end (tokenize, forward, postprocess) with the same thread count, at
batch 1 and 32, on short (~20-token) and 128-token texts. Run under the CPU lock on a shared machine:

    flock /tmp/loraroute-cpu.lock .venv/bin/python bench/inference.py MODEL_DIR [--threads 2] [--seconds 8]

The ONNX files are exported first when missing (``loraroute export onnx MODEL_DIR --int8``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch

from loraroute.artifacts import ModelDir
from loraroute.export.onnx import export_onnx
from loraroute.export.probes import TASK_PROBES
from loraroute.inference import OnnxPredictor, Predictor
from loraroute.metrics.reports import markdown_table

LONG_TOKENS = 128


def workloads(task_name: str, tokenizer) -> dict[str, list[str]]:
    """'short': the task's probes (~10-25 tokens); '128 tok': paragraphs cut to exactly 128 tokens."""
    short = [t for texts in TASK_PROBES[task_name].values() for t in texts]
    paragraph = " ".join(short)
    ids = tokenizer(paragraph, add_special_tokens=False)["input_ids"]
    long = []
    for i in range(len(short)):  # different windows, so the texts are not identical
        window = (ids[i * 7 :] + ids)[: LONG_TOKENS - 2]  # minus [CLS] and [SEP]
        long.append(tokenizer.decode(window))
    return {"short": short, f"{LONG_TOKENS} tok": long}


def batches(texts: list[str], size: int) -> list[list[str]]:
    """Up to 8 different batches of ``size`` texts (rotating start), cycled through while timing."""
    cycle = texts * (size // len(texts) + 2)
    return [cycle[i : i + size] for i in range(min(8, len(texts)))]


def measure(run, batch_list: list[list[str]], seconds: float, min_calls: int = 5) -> list[float]:
    for b in batch_list[:2]:  # warm-up: allocator, ORT arena, lazy imports
        run(b)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_calls or (time.perf_counter() - start < seconds and len(times) < 2000):
        b = batch_list[len(times) % len(batch_list)]
        t0 = time.perf_counter()
        run(b)
        times.append(time.perf_counter() - t0)
    return times


def runtimes(model_dir: Path, threads: int) -> dict:
    from transformers import pipeline

    torch.set_num_threads(threads)
    predictor = Predictor.load(model_dir)
    task = predictor.task
    kind = "token-classification" if task.kind == "token" else "text-classification"
    hf = pipeline(kind, model=str(model_dir), tokenizer=str(model_dir), device=-1)
    hf_kwargs = (
        {"aggregation_strategy": "simple"}
        if task.kind == "token"
        else {"truncation": True, "max_length": predictor.meta["max_length"]}
    )
    out = {
        "HF pipeline (PyTorch)": lambda b: hf(b, batch_size=len(b), **hf_kwargs),
        "loraroute PyTorch": lambda b: predictor.predict(b),
    }
    for int8, name in ((False, "ONNX fp32"), (True, "ONNX int8")):
        ort_predictor = OnnxPredictor.load(model_dir, int8=int8, threads=threads, providers=["CPUExecutionProvider"])
        out[name] = ort_predictor.predict
    return out, predictor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--threads", type=int, default=2, help="Threads for torch and ONNX Runtime alike.")
    parser.add_argument("--seconds", type=float, default=6.0, help="Time per runtime x batch x length cell.")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    args = parser.parse_args(argv)
    if not ModelDir(args.model_dir).onnx_int8.exists():
        export_onnx(args.model_dir, int8=True)
    paths, predictor = runtimes(args.model_dir, args.threads)
    texts = workloads(predictor.task.name, predictor.tokenizer)
    rows = []
    for length, pool in texts.items():
        for size in args.batch_sizes:
            batch_list = batches(pool, size)
            baseline = None
            for name, run in paths.items():
                times = measure(run, batch_list, args.seconds)
                p50 = statistics.median(times)
                p99 = float(np.percentile(times, 99))
                rate = size * len(times) / sum(times)
                baseline = baseline or rate
                rows.append(
                    [
                        length,
                        size,
                        name,
                        f"{1000 * p50:.1f}",
                        f"{1000 * p99:.1f}",
                        f"{rate:.1f}",
                        f"{rate / baseline:.2f}x",
                        len(times),
                    ]
                )
                print(" | ".join(map(str, rows[-1])), file=sys.stderr, flush=True)
    print(f"\n{args.model_dir.name}: {predictor.task.name}, {args.threads} threads, torch {torch.__version__}\n")
    print(markdown_table(["texts", "batch", "runtime", "p50 ms", "p99 ms", "texts/s", "vs HF", "calls"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
