"""``loraroute verify``: the model directory's contract (``ModelDir.problems``), and agreement of every runtime on a
probe set.

Runtimes: (a) base + adapter in PyTorch, (b) merged PyTorch, (c) ONNX Runtime fp32, (d) ONNX int8 when exported,
(e) candle, the runtime upstream serves with (BERT-path models, when the candle extra is installed).
Pairs (a)-(b), (b)-(c) and (b)-(e) must agree to 1e-4 in every logit (the same arithmetic, reordered); (c)-(d) is a
lossy quantisation, so it must keep >= 99% of argmax decisions (and answers) and, for PII, span F1 >= 0.98 against
fp32. The contract check also says whether upstream's candle loaders can read the directory (``report["upstream"]``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from loraroute.artifacts import ModelDir, write_json
from loraroute.export.candle import candle_skip_reason, upstream_loadability, upstream_report  # noqa: F401 (API)
from loraroute.files import atomic_file
from loraroute.tasks import task_of

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


def judge_pair(pair: str, m: dict[str, float]) -> list[str]:
    """Why a pair of runtimes fails its tolerance (empty: it passes)."""
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

    results: dict[str, tuple] = {}
    errors: dict[str, str] = {}
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="loraroute-verify-") as tmp:
        files = ModelDir(model_dir)
        fp32 = files.onnx_fp32
        loaders = {
            "a": lambda: Predictor.load(model_dir, use_adapter=True),
            "b": lambda: Predictor.load(model_dir),
            "c": lambda: OnnxPredictor.load(model_dir, onnx_file=fp32),
        }
        if files.onnx_int8.exists():
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
    from loraroute.export.probes import probe_texts

    model_dir = Path(model_dir)
    problems = ModelDir(model_dir).problems(task_of)
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
    meta = ModelDir(model_dir).meta()
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
            bad = judge_pair(pair, metrics)
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
        with atomic_file(model_dir / REPORT_FILE) as tmp:
            write_json(tmp, report)
    return report


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
