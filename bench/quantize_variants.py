"""int8 variants of exported models side by side: verify's probe agreement, file size and 1-thread latency.

For each model directory the fp32 graph (``onnx/model.onnx``; exported into a temporary directory when missing) is
quantised into a temporary directory as:

- ``dynamic, Gather quantised too``: ORT ``quantize_dynamic`` with its default op types (MatMul and the embedding
  ``Gather`` tables), per-channel int8 weights, the classifier excluded;
- ``dynamic``: the shipped scheme (MatMul only; ``export/quantize.py``);
- ``blockwise (32, level 4)``: the shipped scheme (8-bit MatMulNBits, a scale per 32 input channels, int8 compute);
- ``blockwise (128, level 4)``: the same with blocks of 128;
- ``auto``: what ``loraroute export onnx --int8`` writes by default (its row names the scheme it chose).

Each is judged as ``loraroute verify`` judges the int8 pair (c-d) on verify's probe set: argmax agreement, answer
agreement (sequence tasks) or span F1 (token tasks), and whether it passes the int8 tolerances. Latency is the ONNX
Runtime call alone (tokenizer output fed in, no tokenisation or postprocessing) at 1 intra-op thread, for one short
prompt and for a batch of 32 short prompts (bench/serve_load.py's 12 prompts, repeated); the median of many calls,
taken in rounds over all variants so that load from elsewhere on the machine falls on every row alike. The fp32 row
is the baseline. Run under the CPU lock on a shared machine:

    flock /tmp/loraroute-cpu.lock .venv/bin/python bench/quantize_variants.py MODEL_DIR [MODEL_DIR...] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
from serve_load import PROMPTS  # the server benchmark's prompts (a script's own folder is on sys.path)

from loraroute.artifacts import ModelDir
from loraroute.export import quantize
from loraroute.export.onnx import export_onnx
from loraroute.export.quantize import Int8Settings
from loraroute.inference.onnx import ort_session
from loraroute.inference.task_lookup import task_of
from loraroute.metrics.reports import markdown_table
from loraroute.models.loading import load_tokenizer

BATCH = 32
HEADER = [
    "variant",
    "passes verify",
    "argmax agreement",
    "span F1 / answer agreement",
    "MB",
    "ms 1 text",
    f"ms {BATCH} texts",
]


def write_variants(model_dir: Path, fp32: Path, out: Path) -> dict[str, Path]:
    """The int8 files of ``fp32`` under ``out``, by variant name (fp32 first, as the baseline)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    variants = {"fp32": fp32}
    path = out / "dynamic-gather.onnx"
    quantize_dynamic(
        str(fp32),
        str(path),
        weight_type=QuantType.QInt8,
        per_channel=True,
        nodes_to_exclude=quantize.classifier_nodes(fp32),
    )  # op_types_to_quantize left at its default: Gather too
    variants["dynamic, Gather quantised too"] = path
    for name, file, settings in (
        ("dynamic", "dynamic.onnx", Int8Settings(scheme="dynamic")),
        ("blockwise (32, level 4)", "blockwise-32.onnx", Int8Settings(scheme="blockwise")),
        ("blockwise (128, level 4)", "blockwise-128.onnx", Int8Settings(scheme="blockwise", block_size=128)),
    ):
        print(f"  quantising: {name}", file=sys.stderr, flush=True)
        onnx.save(quantize._quantized(settings.scheme, fp32, settings), str(out / file))
        variants[name] = out / file
    print("  quantising: auto", file=sys.stderr, flush=True)
    record = quantize.write_int8(model_dir, fp32, out / "auto.onnx", Int8Settings())
    variants[f"auto (chose {record['scheme']})"] = out / "auto.onnx"
    return variants


def feeds_for(session, tokenizer, texts: list[str], max_length: int) -> dict[str, np.ndarray]:
    enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="np")
    feeds = {}
    for inp in session.get_inputs():
        if inp.name in enc:
            feeds[inp.name] = np.asarray(enc[inp.name], dtype=np.int64)
        elif inp.name == "token_type_ids":
            feeds[inp.name] = np.zeros_like(np.asarray(enc["input_ids"], dtype=np.int64))
        else:
            raise ValueError(f"graph input {inp.name!r} is not produced by the tokenizer")
    return feeds


def latencies(variants: dict[str, Path], tokenizer, max_length: int, seconds: float, min_calls: int) -> dict:
    """Median ms per variant for 1 and BATCH texts, over rounds that visit every variant in turn."""
    cpu = ["CPUExecutionProvider"]
    sessions = {name: ort_session(path, threads=1, providers=cpu) for name, path in variants.items()}
    texts = {1: PROMPTS[:1], BATCH: (PROMPTS * (BATCH // len(PROMPTS) + 1))[:BATCH]}
    out: dict[str, dict[int, float]] = {name: {} for name in variants}
    for size, batch in texts.items():
        feeds = {name: feeds_for(s, tokenizer, batch, max_length) for name, s in sessions.items()}
        for name, s in sessions.items():  # warm-up: allocator, ORT arena, kernel selection
            for _ in range(3):
                s.run(["logits"], feeds[name])
        times: dict[str, list[float]] = {name: [] for name in sessions}
        rounds = 10
        per_round = seconds / rounds / len(sessions)
        for _ in range(rounds):
            for name, s in sessions.items():
                start = time.perf_counter()
                calls = 0
                while calls < max(1, min_calls // rounds) or time.perf_counter() - start < per_round:
                    t0 = time.perf_counter()
                    s.run(["logits"], feeds[name])
                    times[name].append(time.perf_counter() - t0)
                    calls += 1
        for name in sessions:
            out[name][size] = 1000 * statistics.median(times[name])
            print(
                f"  {name}: {size} text(s) {out[name][size]:.2f} ms ({len(times[name])} calls)",
                file=sys.stderr,
                flush=True,
            )
    return out


def bench_model(model_dir: Path, seconds: float, min_calls: int) -> dict:
    files = ModelDir(model_dir)
    meta = files.meta()
    with tempfile.TemporaryDirectory(prefix="loraroute-int8-variants-") as tmp:
        tmp = Path(tmp)
        fp32 = files.onnx_fp32
        if not fp32.exists():
            print(f"{model_dir}: no {fp32.name}; exporting fp32 into {tmp}", file=sys.stderr, flush=True)
            fp32 = export_onnx(model_dir, out_dir=tmp / "fp32")
        print(f"{model_dir}: writing int8 variants", file=sys.stderr, flush=True)
        variants = write_variants(model_dir, fp32, tmp)
        rows = {}
        for name, path in variants.items():
            metrics, failures = quantize.probe_agreement(model_dir, fp32, path)
            rows[name] = {
                **metrics,
                "failures": failures,
                "passed": not failures,
                "mb": path.stat().st_size / 1e6,
            }
            print(f"  {name}: {metrics} {failures or 'passes'}", file=sys.stderr, flush=True)
        tokenizer = load_tokenizer(str(model_dir))
        for name, ms in latencies(variants, tokenizer, meta["max_length"], seconds, min_calls).items():
            rows[name]["ms_1"], rows[name][f"ms_{BATCH}"] = ms[1], ms[BATCH]
    return {"model_dir": str(model_dir), "task": task_of(model_dir, meta).name, "variants": rows}


def table(result: dict) -> str:
    rows = []
    for name, r in result["variants"].items():
        second = r.get("span_f1", r.get("answer_agreement"))
        passes = "baseline" if name == "fp32" else "yes" if r["passed"] else "no: " + "; ".join(r["failures"])
        rows.append(
            [
                name,
                passes,
                f"{r['argmax_agreement']:.4f}",
                f"{second:.4f}",
                f"{r['mb']:.1f}",
                f"{r['ms_1']:.2f}",
                f"{r[f'ms_{BATCH}']:.1f}",
            ]
        )
    return markdown_table(HEADER, rows)


def main(argv: list[str] | None = None) -> int:
    import onnxruntime

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dirs", type=Path, nargs="+", metavar="MODEL_DIR")
    parser.add_argument("--seconds", type=float, default=20.0, help="Timing per batch size, over all variants.")
    parser.add_argument("--min-calls", type=int, default=30, help="At least this many timed calls per cell.")
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args(argv)
    results = [bench_model(d, args.seconds, args.min_calls) for d in args.model_dirs]
    for result in results:
        name, task = Path(result["model_dir"]).name, result["task"]
        print(f"\n{name} ({task}), 1 thread, onnxruntime {onnxruntime.__version__}\n")
        print(table(result))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
