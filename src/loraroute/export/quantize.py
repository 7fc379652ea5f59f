"""int8 quantisation of an exported fp32 graph: the schemes ``loraroute export onnx --int8`` can write.

- ``dynamic``: ORT's ``quantize_dynamic`` on the encoder's MatMuls (per-channel int8 weights, per-tensor uint8
  activations quantised at run time by MatMulInteger). The fastest: 2x fp32 at batch 32 on this CPU. The embedding
  tables (``Gather``) stay fp32: quantised, they moved every token's input and cost the PII model its span F1.
- ``blockwise``: ORT's ``MatMulNBits`` at 8 bits, symmetric, a scale per block of 32 input channels, run at
  ``accuracy_level`` 4 (int8 arithmetic, activations quantised per block of 32 at run time). A block keeps an
  activation outlier local: one large value after GELU costs the precision of 31 neighbours, not of the tensor. It
  agrees best, but its kernel is barely faster than fp32 past a few rows.
- ``auto`` (the default): ``dynamic`` where it passes ``loraroute verify``'s int8 tolerances on verify's probe set,
  else ``blockwise`` with blocks of 128, else with blocks of 32. The intent and jailbreak models keep the fast one;
  the PII model, whose per-token near-ties flip under per-tensor activation scales, gets the fastest one that
  passes.

Measured on the ``make demo`` models (verify's probes, 1,008 PII tokens; ORT at 1 thread; ms for one short prompt /
a batch of 32 short prompts; ``bench/quantize_variants.py``, docs/benchmarks.md):

==============================  ======================  ========  ==================
scheme                          PII argmax agreement    span F1   PII ms (1 / 32 texts)
==============================  ======================  ========  ==================
fp32                            1                       1         5.2 / 80
dynamic, Gather quantised too   0.978 (fails 0.99)      0.970     2.1 / 40
dynamic                         0.981 (fails 0.99)      1.0       2.3 / 40
blockwise (128, level 4)        0.994                   1.0       2.6 / 81
blockwise (32, level 4)         0.997                   1.0       3.4 / 93
==============================  ======================  ========  ==================

On the intent and jailbreak models every variant agrees 1.0; dynamic runs them at 2.0-2.3 / 36-38 ms against fp32's
5.0-5.2 / 78-81. Blockwise helps one prompt, not a batch: its kernel is no faster than fp32 at 32 texts.

No single group of the PII model's MatMuls (a layer, or Q/K/V/attention-out/FFN-in/FFN-out across layers) kept fp32
brings dynamic past 0.99: its flips are near-ties (top probabilities 0.17-0.47) spread over the whole graph.

Every scheme keeps the final classifier fp32: it is tiny and carries the decision margin. The settings, the scheme
used and, for ``auto``, the agreement that chose it are written into the graph's metadata (``loraroute.int8``), so a
served file says how it was made.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

SCHEMES = ("auto", "dynamic", "blockwise")
METADATA_KEY = "loraroute.int8"
log = logging.getLogger("loraroute")


@dataclass(frozen=True)
class Int8Settings:
    """How the int8 graph is made (see the module docstring for the measurements behind the defaults)."""

    scheme: str = "auto"
    # blockwise (explicit): 32 input channels per scale, the most faithful (PII probes 0.997; 128: 0.994, 12% faster
    # at batch 32). auto tries 128 first, then 32.
    block_size: int = 32
    # blockwise: MatMulNBits accuracy_level 4 = int8 compute. Level 0 (fp32 compute on dequantised weights) agrees
    # better (0.999) but runs 5x slower than fp32 on this CPU: weight compression, not a fast path.
    accuracy_level: int = 4

    def __post_init__(self):
        if self.scheme not in SCHEMES:
            raise ValueError(f"int8 scheme must be one of {', '.join(SCHEMES)}, not {self.scheme!r}")
        if self.block_size < 16 or self.block_size & (self.block_size - 1):
            raise ValueError(f"block_size must be a power of two >= 16 (MatMulNBits), not {self.block_size}")
        if self.accuracy_level not in (0, 1, 2, 3, 4):
            raise ValueError(f"accuracy_level must be 0-4 (MatMulNBits), not {self.accuracy_level}")


def classifier_nodes(path: Path) -> list[str]:
    """Names of the classification head's MatMul/Gemm nodes: kept fp32 by every scheme."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    out = []
    for node in graph.node:
        if node.op_type in ("MatMul", "Gemm") and any(
            "classifier" in n or "score" in n for n in [node.name, *node.input]
        ):
            # quantize_dynamic first rewrites each Gemm as MatMul + Add named "<gemm>_MatMul"
            out += [node.name, f"{node.name}_MatMul"] if node.op_type == "Gemm" else [node.name]
    return out


# auto's candidates, fastest first: blocks of 128 run a batch 12% faster than blocks of 32 and agree a little less
AUTO_CANDIDATES = (("dynamic", None), ("blockwise", 128), ("blockwise", 32))


def write_int8(model_dir: Path, fp32: Path, target: Path, settings: Int8Settings = Int8Settings()) -> dict:
    """Write the int8 version of ``fp32`` (``model_dir``'s exported graph) to ``target``; returns the record
    stored in its metadata. ``auto`` keeps the first of ``AUTO_CANDIDATES`` that passes verify's int8 tolerances on
    the probe set (the last one if none does, with a warning)."""
    import onnx

    tried: dict[str, dict] = {}
    judge = probe_judge(model_dir, fp32)
    if settings.scheme == "auto":
        candidates = AUTO_CANDIDATES
    else:
        candidates = ((settings.scheme, settings.block_size if settings.scheme == "blockwise" else None),)
    for scheme, block_size in candidates:
        chosen = replace(settings, scheme=scheme, block_size=block_size or settings.block_size)
        model = _quantized(scheme, fp32, chosen)
        if settings.scheme != "auto":
            break
        onnx.save(model, str(target))
        metrics, failures = judge(target)
        label = scheme if block_size is None else f"{scheme}/{block_size}"
        tried[label] = {**metrics, "passed": not failures}
        if not failures:
            break
        if (scheme, block_size) == candidates[-1]:
            log.warning("int8 %s misses verify's tolerances too (%s): written anyway", label, "; ".join(failures))
        else:
            log.info("int8 %s misses verify's tolerances (%s): trying the next scheme", label, "; ".join(failures))
    record = {**asdict(chosen), "requested": settings.scheme, "probe_agreement": tried}
    if chosen.scheme == "dynamic":  # block size and accuracy level are MatMulNBits settings: dynamic has neither
        del record["block_size"], record["accuracy_level"]
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(record)
    onnx.save(model, str(target))
    return record


def probe_judge(model_dir: Path, fp32: Path):
    """``judge(int8_path) -> (agreement with fp32 on verify's probes, verify's failures for pair c-d)``; the fp32
    graph runs once, on the first call, however many candidates are judged."""
    from loraroute.export.probes import probe_texts
    from loraroute.export.verify import compare, judge_pair
    from loraroute.inference import OnnxPredictor

    cpu = ["CPUExecutionProvider"]  # the choice is for CPU serving: the same on a machine with a GPU
    reference: dict = {}

    def judge(int8: Path) -> tuple[dict, list[str]]:
        if not reference:
            fp32_model = OnnxPredictor.load(model_dir, onnx_file=fp32, providers=cpu)
            texts, _ = probe_texts(fp32_model.task.name, fp32_model.task.kind, fp32_model.labels)
            reference.update(model=fp32_model, texts=texts, logits=fp32_model.logits(texts))
        model, texts = reference["model"], reference["texts"]
        quantised = OnnxPredictor.load(model_dir, onnx_file=int8, providers=cpu)
        metrics = compare(model.task, model.meta, texts, reference["logits"], quantised.logits(texts))
        return metrics, judge_pair("c-d", metrics)

    return judge


def _quantized(scheme: str, fp32: Path, settings: Int8Settings):
    """The int8 ModelProto of ``fp32`` under ``scheme``."""
    import onnx

    keep = classifier_nodes(fp32)
    if scheme == "dynamic":
        import tempfile

        from onnxruntime.quantization import QuantType, quantize_dynamic

        with tempfile.TemporaryDirectory(prefix="loraroute-int8-") as tmp, _root_logger_kept():
            out = Path(tmp) / "dynamic.onnx"
            quantize_dynamic(
                str(fp32),
                str(out),
                weight_type=QuantType.QInt8,
                per_channel=True,
                nodes_to_exclude=keep,
                op_types_to_quantize=["MatMul"],  # not Gather: the embedding tables stay fp32
            )
            return onnx.load(str(out))
    from onnxruntime.quantization import QuantFormat

    config_class, quantizer_class = _nbits_quantizer()
    config = config_class(
        block_size=settings.block_size,
        is_symmetric=True,
        accuracy_level=settings.accuracy_level,
        bits=8,
        op_types_to_quantize=("MatMul",),
        quant_format=QuantFormat.QOperator,
    )
    quantizer = quantizer_class(
        onnx.load(str(fp32)),
        bits=8,
        block_size=settings.block_size,
        is_symmetric=True,
        accuracy_level=settings.accuracy_level,
        nodes_to_exclude=keep,
        algo_config=config,
    )
    quantizer.process()
    return quantizer.model.model


@contextlib.contextmanager
def _root_logger_kept():
    """ORT's quantizers configure the root logger as a side effect: the weight-only one calls
    ``logging.basicConfig`` at INFO on import (a line per node quantised, for the whole process), and
    ``quantize_dynamic`` logs through ``logging.warning``, which adds a stderr handler to a bare root."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _nbits_quantizer():
    with _root_logger_kept():
        from onnxruntime.quantization.matmul_nbits_quantizer import (
            DefaultWeightOnlyQuantConfig,
            MatMulNBitsQuantizer,
        )
    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    return DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer


def int8_record(path: Path) -> dict | None:
    """How an int8 graph was made (its metadata record; None for a graph from before it was recorded)."""
    import onnx

    for entry in onnx.load(str(path), load_external_data=False).metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    return None
