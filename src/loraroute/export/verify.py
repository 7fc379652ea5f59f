"""``loraroute verify``: the model directory's contract, and agreement of every runtime on a probe set.

Runtimes: (a) base + adapter in PyTorch, (b) merged PyTorch, (c) ONNX Runtime fp32, (d) ONNX int8 when exported,
(e) candle, the runtime upstream serves with (BERT-path models, when the candle extra is installed).
Pairs (a)-(b), (b)-(c) and (b)-(e) must agree to 1e-4 in every logit (the same arithmetic, reordered); (c)-(d) is a
lossy quantisation, so it must keep >= 99% of argmax decisions (and answers) and, for PII, span F1 >= 0.98 against
fp32. The contract check also says whether upstream's candle loaders can read the directory (``report["upstream"]``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from loraroute.artifacts import LORA_CONFIG, make_world_readable, read_json, write_json
from loraroute.export.candle import candle_skip_reason, upstream_loadability, upstream_report  # noqa: F401 (API)
from loraroute.models.loading import refuse_pickle_only
from loraroute.tasks import get_task, task_for_artifact, task_of

LOGIT_TOLERANCE = 1e-4
INT8_MIN_AGREEMENT = 0.99
INT8_MIN_SPAN_F1 = 0.98
REPORT_FILE = "verify_report.json"
RUNTIMES = {
    "a": "base+adapter (PyTorch)",
    "b": "merged (PyTorch)",
    "c": "ONNX fp32",
    "d": "ONNX int8",
    "e": "candle (upstream's runtime)",
}
PAIRS = ("a-b", "b-c", "c-d", "b-e")
EXACT_PAIRS = ("a-b", "b-c", "b-e")  # the same arithmetic reordered: held to LOGIT_TOLERANCE
LORA_KEYS = ("task", "base_model", "rank", "alpha", "target_modules", "num_labels")


# --- contract ------------------------------------------------------------------------------------------------
def _read(path: Path, problems: list[str]) -> Any:
    if not path.exists():
        problems.append(f"{path.name}: missing")
        return None
    try:
        return read_json(path)
    except ValueError as exc:
        problems.append(str(exc))
        return None


def head_size(weights: Path) -> tuple[str, int] | None:
    """(tensor name, number of outputs) of the final classifier layer in a safetensors file, read from its header."""
    from safetensors import safe_open

    with safe_open(str(weights), framework="np") as f:
        shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}  # noqa: SIM118 -- safe_open has keys() but no __iter__
    for name in ("classifier.out_proj.weight", "classifier.weight", "score.weight"):
        if name in shapes and len(shapes[name]) == 2:
            return name, int(shapes[name][0])
    return None


def _check_labels(model_dir: Path, task, labels: list[str], problems: list[str]) -> None:
    for name, expected in task.label_files(labels).items():
        mapping = _read(model_dir / name, problems)
        if mapping is None:
            continue
        keys = list(expected)  # the task's key names, and any second pair it writes beside them (label_map_also)
        if not isinstance(mapping, dict) or set(mapping) != set(keys):
            found = sorted(mapping) if isinstance(mapping, dict) else type(mapping).__name__
            named = ", ".join(repr(k) for k in keys[:-1]) + f" and {keys[-1]!r}"
            problems.append(f"{name}: expected keys {named} (what upstream's {task.name} loader reads), found {found}")
            continue
        for key in keys:
            got = mapping[key]
            if not isinstance(got, dict) or len(got) != len(labels):
                size = len(got) if isinstance(got, dict) else type(got).__name__
                problems.append(f"{name}: {key} has {size} entries, config.json id2label has {len(labels)}")
            elif {str(k): v for k, v in got.items()} != {str(k): v for k, v in expected[key].items()}:
                problems.append(f"{name}: {key} does not match config.json id2label")


def check_contract(model_dir: str | Path) -> list[str]:
    """Problems with what upstream's loaders read from ``model_dir`` (empty if it holds a complete model)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return [f"{model_dir}: no such model directory"]
    problems: list[str] = []
    try:
        refuse_pickle_only(model_dir)
    except ValueError as exc:
        return [str(exc)]
    config = _read(model_dir / "config.json", problems)
    lora = _read(model_dir / LORA_CONFIG, problems)
    tokenizer = _read(model_dir / "tokenizer.json", problems)
    if tokenizer is not None and not isinstance(tokenizer, dict):
        problems.append("tokenizer.json: not a tokenizers JSON object")

    labels: list[str] | None = None
    if config is not None:
        if not isinstance(config.get("architectures"), list) or not config["architectures"]:
            problems.append("config.json: 'architectures' missing or empty (transformers cannot pick a model class)")
        id2label = config.get("id2label")
        if not isinstance(id2label, dict) or not id2label:
            problems.append("config.json: 'id2label' missing or empty")
        elif sorted(int(k) for k in id2label) != list(range(len(id2label))):
            problems.append(f"config.json: id2label keys are not 0..{len(id2label) - 1}")
        else:
            labels = [id2label[k] for k in sorted(id2label, key=int)]

    weights = model_dir / "model.safetensors"
    if not weights.exists():
        problems.append("model.safetensors: missing (the merged model)")
    elif labels is not None:
        try:
            head = head_size(weights)
        except Exception as exc:  # a truncated or foreign file: safetensors raises its own error types
            problems.append(f"model.safetensors: unreadable ({exc})")
            head = None
        if head is None and not any(p.startswith("model.safetensors") for p in problems):
            problems.append("model.safetensors: no classifier head (classifier.weight / classifier.out_proj.weight)")
        elif head is not None and head[1] != len(labels):
            problems.append(
                f"config.json: id2label has {len(labels)} labels but model.safetensors' {head[0]} has {head[1]} outputs"
            )

    task = None
    if lora is not None:
        missing = [k for k in LORA_KEYS if k not in lora]
        if missing:
            problems.append(f"{LORA_CONFIG}: missing key(s) {', '.join(missing)}")
        if labels is not None and "num_labels" in lora and lora["num_labels"] != len(labels):
            problems.append(
                f"{LORA_CONFIG}: num_labels is {lora['num_labels']}, config.json id2label has {len(labels)}"
            )
    try:
        task = get_task(lora["task"]) if lora and "task" in lora else task_for_artifact(model_dir.name)
    except ValueError as exc:
        problems.append(f"{LORA_CONFIG}: {exc}")
    if task is not None and labels is not None:
        _check_labels(model_dir, task, labels, problems)
    return problems


# --- runtime agreement ---------------------------------------------------------------------------------------
def _span_f1(ref: list[dict], other: list[dict]) -> float:
    from loraroute.metrics.spans import entity_metrics

    micro = entity_metrics([r["entities"] for r in ref], [o["entities"] for o in other])["micro"]
    return 1.0 if micro["tp"] + micro["fp"] + micro["fn"] == 0 else float(micro["f1"])


def compare(task, meta: dict, texts: list[str], ref: tuple, other: tuple) -> dict[str, float]:
    """Max |logit difference|, argmax agreement (per text, or per token for token tasks) and answer agreement."""
    (ref_logits, encodings), (other_logits, _) = ref, other
    a = np.concatenate([np.atleast_2d(x) for x in ref_logits])
    b = np.concatenate([np.atleast_2d(x) for x in other_logits])
    out = {"max_abs_diff": float(np.abs(a - b).max()), "argmax_agreement": float((a.argmax(-1) == b.argmax(-1)).mean())}
    # The model's own answers: PII pattern recognizers read the text, so they would agree on both sides and hide a
    # runtime difference (tasks without the option ignore it).
    ref_answers = task.postprocess(texts, ref_logits, encodings, meta, patterns=False)
    other_answers = task.postprocess(texts, other_logits, encodings, meta, patterns=False)
    if task.kind == "token":
        out["span_f1"] = _span_f1(ref_answers, other_answers)
    else:  # the served decision (jailbreak applies its calibrated threshold, not argmax)
        out["answer_agreement"] = float(np.mean([r["label"] == o["label"] for r, o in zip(ref_answers, other_answers)]))
    return out


def _judge(pair: str, m: dict[str, float]) -> list[str]:
    failures = []
    if pair in EXACT_PAIRS and not m["max_abs_diff"] <= LOGIT_TOLERANCE:
        failures.append(f"max |logit diff| {m['max_abs_diff']:.2e} > {LOGIT_TOLERANCE:g}")
    if pair == "c-d":
        for key in ("argmax_agreement", "answer_agreement"):
            if key in m and m[key] < INT8_MIN_AGREEMENT:
                failures.append(f"{key} {m[key]:.4f} < {INT8_MIN_AGREEMENT}")
        if "span_f1" in m and m["span_f1"] < INT8_MIN_SPAN_F1:
            failures.append(f"span F1 {m['span_f1']:.4f} < {INT8_MIN_SPAN_F1}")
    return failures


def _run_paths(
    model_dir: Path, texts: list[str], notes: list[str]
) -> tuple[dict[str, tuple], dict[str, str], dict[str, str]]:
    """Logits of every runtime that loads; errors by runtime for those that do not; why a runtime was skipped."""
    from loraroute.export.candle import CandlePredictor
    from loraroute.export.onnx import export_onnx
    from loraroute.inference import OnnxPredictor, Predictor
    from loraroute.inference.onnx import onnx_path

    results: dict[str, tuple] = {}
    errors: dict[str, str] = {}
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="loraroute-verify-") as tmp:
        fp32 = onnx_path(model_dir)
        loaders = {
            "a": lambda: Predictor.load(model_dir, use_adapter=True),
            "b": lambda: Predictor.load(model_dir),
            "c": lambda: OnnxPredictor.load(model_dir, onnx_file=fp32),
        }
        if onnx_path(model_dir, int8=True).exists():
            loaders["d"] = lambda: OnnxPredictor.load(model_dir, int8=True)
        skip = candle_skip_reason(model_dir)
        if skip is None:
            loaders["e"] = lambda: CandlePredictor.load(model_dir)
        else:  # not an error: the model may be valid, only not comparable with upstream's runtime
            skipped["e"] = skip
            notes.append(f"(e) {RUNTIMES['e']} not run: {skip}")
        if not fp32.exists():
            notes.append(
                f"no {fp32.relative_to(model_dir)}: exported a temporary one for this check "
                f"(`loraroute export onnx {model_dir}` keeps one)"
            )
            try:
                fp32 = export_onnx(model_dir, out_dir=tmp)
            except (ValueError, RuntimeError, FileNotFoundError) as exc:
                loaders.pop("c")
                errors["c"] = f"export failed: {exc}"
        for key, load in loaders.items():
            try:
                predictor = load()
                results[key] = predictor.logits(texts)
            except (ValueError, RuntimeError, FileNotFoundError, OSError) as exc:
                errors[key] = str(exc)
            predictor = None  # free each model before loading the next
    return results, errors, skipped


def verify_model(model_dir: str | Path, extra_texts: list[str] | None = None, write: bool = True) -> dict[str, Any]:
    """Check the contract and compare runtimes on the probe set (+ ``extra_texts``); ``report["passed"]`` says
    whether everything is within tolerance. Writes ``verify_report.json`` into ``model_dir`` unless ``write=False``."""
    from loraroute.artifacts import read_meta
    from loraroute.export.probes import probe_texts

    model_dir = Path(model_dir)
    problems = check_contract(model_dir)
    upstream = upstream_report(model_dir)
    if upstream["path"] is not None:
        # A BERT or ModernBERT model is meant to be served upstream, so what stops candle reading it is a contract
        # problem; a RoBERTa (etc.) model is a valid loraroute model that upstream has no loader for: reported only.
        problems += [r for r in upstream["reasons"] if r not in problems]
    report: dict[str, Any] = {
        "model_dir": str(model_dir),
        "contract_problems": problems,
        "upstream": upstream,
        "pairs": {},
        "runtime_errors": {},
        "notes": [],
        "tolerances": {
            "logits": LOGIT_TOLERANCE,
            "int8_agreement": INT8_MIN_AGREEMENT,
            "int8_span_f1": INT8_MIN_SPAN_F1,
        },
    }
    if any("no such model directory" in p or "pickle" in p for p in problems):
        report["passed"] = False
        return report
    meta = read_meta(model_dir)
    task = task_of(model_dir, meta)
    texts, unprobed = probe_texts(task.name, task.kind, meta["labels"])
    texts += list(extra_texts or [])
    report.update(task=task.name, kind=task.kind, num_texts=len(texts), labels_without_written_probe=unprobed)

    results, errors, skipped = _run_paths(model_dir, texts, report["notes"])
    report["runtime_errors"] = errors
    report["runtimes_skipped"] = {RUNTIMES[k]: why for k, why in skipped.items()}
    report["runtimes"] = {
        RUNTIMES[k]: ("ok" if k in results else "error" if k in errors else "skipped")
        for k in RUNTIMES
        if k in results or k in errors or k in skipped
    }
    failures = [f"{RUNTIMES[k]}: {e}" for k, e in errors.items()]
    for pair in PAIRS:
        x, y = pair.split("-")
        if x in results and y in results:
            metrics = compare(task, meta, texts, results[x], results[y])
            bad = _judge(pair, metrics)
            report["pairs"][pair] = {
                **metrics,
                "runtimes": [RUNTIMES[x], RUNTIMES[y]],
                "passed": not bad,
                "failures": bad,
            }
            failures += [f"{RUNTIMES[x]} vs {RUNTIMES[y]}: {f}" for f in bad]
    if "b" in results:
        answers = task.postprocess(texts, *results["b"], meta)
        if task.kind != "token":
            report["labels_predicted"] = sorted({a["label"] for a in answers})
    report["failures"] = problems + failures
    report["passed"] = not report["failures"]
    if write:
        _write_atomic(model_dir / REPORT_FILE, report)
    return report


def _write_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    write_json(tmp, data)
    make_world_readable(tmp)
    os.replace(tmp, path)


def format_report(report: dict[str, Any]) -> str:
    """A table of the pairs, then contract problems and errors, then the verdict."""
    from loraroute.metrics.reports import markdown_table

    rows = []
    for pair, m in report.get("pairs", {}).items():
        agreement = m.get("span_f1", m.get("answer_agreement"))
        rows.append(
            [
                f"({pair[0]}) {m['runtimes'][0]} vs ({pair[2]}) {m['runtimes'][1]}",
                f"{m['max_abs_diff']:.2e}",
                m["argmax_agreement"],
                agreement,
                "ok" if m["passed"] else "FAIL",
            ]
        )
    kind = "span F1" if report.get("kind") == "token" else "answer agreement"
    lines = [f"verify {report['model_dir']} ({report.get('task', '?')}, {report.get('num_texts', 0)} probe texts)", ""]
    if rows:
        lines += [markdown_table(["pair", "max abs logit diff", "argmax agreement", kind, "status"], rows), ""]
    upstream = report.get("upstream")
    if upstream:
        where = f"{upstream['path']} path" if upstream["path"] else f"model_type {upstream['model_type']!r}"
        lines.append(
            f"- upstream (vLLM semantic-router candle-binding, {where}): "
            + ("loadable" if upstream["loadable"] else "NOT loadable: " + "; ".join(upstream["reasons"]))
        )
    lines += [f"- {note}" for note in report.get("notes", [])]
    lines += [f"- FAIL: {f}" for f in report.get("failures", report.get("contract_problems", []))]
    lines.append("PASSED" if report["passed"] else "FAILED")
    return "\n".join(lines)
