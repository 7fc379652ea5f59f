"""ONNX export of a model directory's merged model (fp32, optionally int8: ``export/quantize.py``);
``loraroute.inference.onnx`` runs it.

The graph takes ``input_ids``, ``attention_mask`` (and ``token_type_ids`` where the tokenizer emits them and the
model reads them) with dynamic batch and sequence axes, and returns ``logits``. Tokenizer and label maps stay at the
top of the model directory, so any runtime reads the same files as upstream's loaders.
"""

from __future__ import annotations

import inspect
import logging
import warnings
from pathlib import Path

from loraroute.artifacts import FP32_FILE, INT8_FILE, ModelDir
from loraroute.export.quantize import Int8Settings, write_int8
from loraroute.extras import require_extra
from loraroute.files import atomic_file
from loraroute.models.loading import AUTO_CLASSES, load_tokenizer, refuse_pickle_only
from loraroute.models.registry import ENCODER_TYPES
from loraroute.tasks import task_of

log = logging.getLogger("loraroute")

# 17 has LayerNormalization as one op (ORT fuses it); every ORT since 1.14 runs it.
OPSET = 17
# Export-tested with torch's TorchScript exporter (dynamo=False) on transformers 5.x, sequence and token heads.
SUPPORTED_TYPES = ENCODER_TYPES
EXPORT_TEXTS = ["short probe", "a longer probe sentence so that the two rows differ in length and need padding"]


def _load_merged(model_dir: Path):
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: no such model directory")
    refuse_pickle_only(model_dir)
    files = ModelDir(model_dir)
    if not files.weights.exists():
        raise FileNotFoundError(f"{files.weights}: missing (ONNX export needs the merged model)")
    meta = files.meta()
    task = task_of(model_dir, meta)
    if task.kind not in ("sequence", "token"):
        raise ValueError(
            f"{model_dir}: ONNX export covers encoder classifiers (sequence, token); task "
            f"{task.name!r} is a {task.kind} model"
        )
    model = AUTO_CLASSES[task.kind].from_pretrained(model_dir, use_safetensors=True).eval()
    model_type = model.config.model_type
    if model_type not in SUPPORTED_TYPES:
        raise ValueError(
            f"{model_dir}: ONNX export is not supported for model_type {model_type!r}; "
            f"supported: {', '.join(SUPPORTED_TYPES)}"
        )
    return model, load_tokenizer(str(model_dir)), meta, task


def graph_inputs(model, tokenizer) -> list[str]:
    """The inputs the graph takes: token_type_ids only where the tokenizer emits them and the model reads them."""
    accepted = inspect.signature(model.forward).parameters
    names = ["input_ids", "attention_mask"]
    if (
        "token_type_ids" in tokenizer.model_input_names
        and "token_type_ids" in accepted
        and getattr(model.config, "type_vocab_size", 0)
    ):
        names.append("token_type_ids")
    return names


def _export_graph(model, tokenizer, kind: str, target: Path) -> None:
    import torch

    names = graph_inputs(model, tokenizer)
    enc = tokenizer(EXPORT_TEXTS, padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes["logits"] = {0: "batch", 1: "sequence"} if kind == "token" else {0: "batch"}
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated in favour of dynamo, but the dynamo exporter still fails on
        # several encoders' attention-mask code; this one exports all of ENCODER_TYPES (tests/export).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            tuple(enc[n] for n in names),
            str(target),
            input_names=names,
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def export_onnx(
    model_dir: str | Path,
    int8: bool = False,
    out_dir: str | Path | None = None,
    int8_settings: Int8Settings | None = None,
) -> Path:
    """Export ``model_dir``'s merged model to ``model_dir/onnx/model.onnx`` (+ ``model.int8.onnx``, made with
    ``int8_settings``, default :class:`Int8Settings`); returns the fp32 path. ``out_dir`` writes the files elsewhere
    (verify uses a temporary one)."""
    require_extra("onnx", "ONNX export", "onnx", "onnxruntime")
    model_dir = Path(model_dir)
    model, tokenizer, _meta, task = _load_merged(model_dir)
    fp32, quantised = ModelDir(model_dir).onnx_fp32, ModelDir(model_dir).onnx_int8
    if out_dir is not None:
        fp32, quantised = Path(out_dir) / FP32_FILE, Path(out_dir) / INT8_FILE
    with atomic_file(fp32) as tmp:  # a crash never leaves a half-written graph that a server would load
        _export_graph(model, tokenizer, task.kind, tmp)
    log.info("exported %s", fp32)
    if int8:
        with atomic_file(quantised) as tmp:
            record = write_int8(model_dir, fp32, tmp, int8_settings or Int8Settings())
        log.info("quantised %s (%s)", quantised, record["scheme"])
    return fp32
