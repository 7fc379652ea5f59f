"""int8 schemes (export/quantize.py): dynamic, blockwise (8-bit MatMulNBits) and auto (dynamic where it passes
verify's int8 tolerances on the probe set, else blockwise); every scheme keeps the classifier and embeddings fp32
and records how the graph was made in its metadata."""

import logging
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import loraroute.export.quantize as quantize
from loraroute.cli import main
from loraroute.export.onnx import export_onnx
from loraroute.export.quantize import Int8Settings, int8_record, write_int8
from loraroute.inference import OnnxPredictor
from tests.export.test_onnx import TEXTS

DYNAMIC_OPS = {"MatMulInteger", "DynamicQuantizeMatMul"}


@pytest.fixture(scope="module")
def exported(intent_artifact, tmp_path_factory):
    """Factory: scheme -> (model_dir, out_dir) with the tiny intent model's model.onnx and model.int8.onnx written
    by export_onnx under that scheme (once per scheme for the module; the model directory is left untouched)."""
    cache: dict[str, Path] = {}
    model_dir = intent_artifact("bert")

    def make(scheme: str) -> tuple[Path, Path]:
        if scheme not in cache:
            out = tmp_path_factory.mktemp(f"int8-{scheme}")
            export_onnx(model_dir, int8=True, out_dir=out, int8_settings=Int8Settings(scheme=scheme))
            cache[scheme] = out
        return model_dir, cache[scheme]

    return make


def op_types(path: Path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


QUANTISED_OPS = DYNAMIC_OPS | {"MatMulNBits", "DequantizeLinear", "DynamicQuantizeLinear"}


def assert_classifier_stays_fp32(graph) -> None:
    """The head is a plain MatMul or Gemm (a sequence head exports as Gemm; dynamic rewrites it as MatMul + Add)."""
    ops = [n.op_type for n in graph.node if n.name.startswith("/classifier/")]
    assert {"MatMul", "Gemm"} & set(ops) and not QUANTISED_OPS & set(ops), ops


def assert_embeddings_stay_fp32(graph) -> None:
    """No Gather is quantised: no GatherBlockQuantized, no DequantizeLinear on either side of a Gather, and every
    table a Gather reads from an initializer is fp32."""
    ops = [n.op_type for n in graph.node]
    assert "GatherBlockQuantized" not in ops
    produced_by = {out: n.op_type for n in graph.node for out in n.output}
    gathers = [n for n in graph.node if n.op_type == "Gather"]
    gather_outputs = {out for n in gathers for out in n.output}
    for n in graph.node:
        if n.op_type == "DequantizeLinear":
            assert not gather_outputs & set(n.input), f"{n.name} dequantises a Gather's output"
    initializers = {t.name: t for t in graph.initializer}
    tables = [initializers[n.input[0]] for n in gathers if n.input[0] in initializers]
    assert tables, "no embedding Gather found"
    for n in gathers:
        assert produced_by.get(n.input[0]) != "DequantizeLinear", f"{n.name} reads a dequantised table"
    assert all(t.data_type == onnx.TensorProto.FLOAT for t in tables)


def assert_logits_close(model_dir: Path, out: Path, atol: float = 0.1) -> None:
    fp32 = np.stack(OnnxPredictor.load(model_dir, onnx_file=out / "model.onnx").logits(TEXTS)[0])
    int8 = np.stack(OnnxPredictor.load(model_dir, onnx_file=out / "model.int8.onnx").logits(TEXTS)[0])
    assert 0 < np.abs(fp32 - int8).max() < atol  # quantised (not identical), yet close
    assert (fp32.argmax(1) == int8.argmax(1)).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(scheme="int4"), "int8 scheme must be one of auto, dynamic, blockwise, not 'int4'"),
        (dict(block_size=48), "block_size must be a power of two >= 16 .*not 48"),
        (dict(block_size=8), "block_size must be a power of two >= 16 .*not 8"),
        (dict(block_size=0), "block_size must be a power of two >= 16 .*not 0"),
        (dict(accuracy_level=5), "accuracy_level must be 0-4 .*not 5"),
        (dict(accuracy_level=-1), "accuracy_level must be 0-4 .*not -1"),
    ],
)
def test_int8_settings_reject_an_unknown_scheme_a_bad_block_size_and_accuracy_level(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Int8Settings(**kwargs)


def test_int8_settings_default_to_auto_with_blocks_of_32_at_accuracy_level_4():
    assert Int8Settings() == Int8Settings(scheme="auto", block_size=32, accuracy_level=4)
    assert Int8Settings(block_size=16).block_size == 16 and Int8Settings(accuracy_level=0).accuracy_level == 0


def test_blockwise_writes_8bit_matmulnbits_keeps_classifier_and_embeddings_fp32_and_agrees(exported):
    model_dir, out = exported("blockwise")
    graph = onnx.load(str(out / "model.int8.onnx")).graph
    nbits = [n for n in graph.node if n.op_type == "MatMulNBits"]
    assert nbits
    for node in nbits:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert (attrs["bits"], attrs["block_size"], attrs["accuracy_level"]) == (8, 32, 4)
    assert not {n.op_type for n in graph.node} & DYNAMIC_OPS
    assert_classifier_stays_fp32(graph)
    assert_embeddings_stay_fp32(graph)
    record = int8_record(out / "model.int8.onnx")
    assert record["scheme"] == record["requested"] == "blockwise"
    assert (record["block_size"], record["accuracy_level"]) == (32, 4)
    assert record["probe_agreement"] == {}  # only auto measures agreement
    assert_logits_close(model_dir, out)


def test_dynamic_writes_matmulinteger_keeps_classifier_and_embeddings_fp32_and_agrees(exported):
    model_dir, out = exported("dynamic")
    graph = onnx.load(str(out / "model.int8.onnx")).graph
    ops = {n.op_type for n in graph.node}
    assert ops & DYNAMIC_OPS and "MatMulNBits" not in ops
    assert_classifier_stays_fp32(graph)
    assert_embeddings_stay_fp32(graph)
    record = int8_record(out / "model.int8.onnx")
    assert record["scheme"] == record["requested"] == "dynamic"
    assert "block_size" not in record and "accuracy_level" not in record  # blockwise settings only
    assert record["probe_agreement"] == {}
    assert_logits_close(model_dir, out)


def test_auto_keeps_dynamic_where_it_passes_verify_and_records_the_agreement(exported):
    _, out = exported("auto")
    assert op_types(out / "model.int8.onnx") & DYNAMIC_OPS
    record = int8_record(out / "model.int8.onnx")
    assert record["requested"] == "auto" and record["scheme"] == "dynamic"
    assert list(record["probe_agreement"]) == ["dynamic"]  # blockwise never tried
    agreement = record["probe_agreement"]["dynamic"]
    assert agreement["passed"] is True
    assert agreement["argmax_agreement"] >= 0.99 and agreement["answer_agreement"] >= 0.99
    assert 0 < agreement["max_abs_diff"] < 0.1


def graph_label(path: Path) -> str:
    """dynamic, or blockwise/<block size>, read from the graph's ops."""
    graph = onnx.load(str(path)).graph
    if {n.op_type for n in graph.node} & DYNAMIC_OPS:
        return "dynamic"
    (block,) = {a.i for n in graph.node if n.op_type == "MatMulNBits" for a in n.attribute if a.name == "block_size"}
    return f"blockwise/{block}"


@pytest.mark.parametrize(
    "failing, chosen",
    [({"dynamic"}, "blockwise/128"), ({"dynamic", "blockwise/128"}, "blockwise/32")],
)
def test_auto_falls_back_to_the_fastest_blockwise_that_passes(exported, tmp_path, monkeypatch, failing, chosen):
    model_dir, out = exported("dynamic")  # only its fp32 graph is used
    judged = []

    def fake_judge(int8):
        judged.append(graph_label(int8))
        if judged[-1] in failing:
            return {"max_abs_diff": 0.3, "argmax_agreement": 0.9, "answer_agreement": 0.9}, [
                "argmax_agreement 0.9000 < 0.99"
            ]
        return {"max_abs_diff": 0.01, "argmax_agreement": 1.0, "answer_agreement": 1.0}, []

    monkeypatch.setattr(quantize, "probe_judge", lambda model_dir, fp32: fake_judge)
    target = tmp_path / "model.int8.onnx"
    record = write_int8(model_dir, out / "model.onnx", target, Int8Settings(scheme="auto"))
    assert judged == ["dynamic", "blockwise/128", "blockwise/32"][: len(failing) + 1]  # fastest first
    assert record == int8_record(target)
    assert record["requested"] == "auto" and record["scheme"] == "blockwise"
    assert record["block_size"] == int(chosen.split("/")[1])
    assert {k for k, v in record["probe_agreement"].items() if not v["passed"]} == failing
    assert record["probe_agreement"][chosen]["passed"] is True
    assert record["probe_agreement"]["dynamic"]["argmax_agreement"] == 0.9
    assert graph_label(target) == chosen  # the file written is the one chosen


def test_cli_export_onnx_int8_scheme_prints_the_scheme_used(intent_artifact, copy_of, capsys):
    model_dir = copy_of(intent_artifact("bert"))
    assert main(["export", "onnx", str(model_dir), "--int8", "--int8-scheme", "blockwise"]) == 0
    int8 = model_dir / "onnx" / "model.int8.onnx"
    assert f"int8 model: {int8} (scheme blockwise)" in capsys.readouterr().out
    assert int8_record(int8)["scheme"] == "blockwise" and "MatMulNBits" in op_types(int8)


@pytest.mark.parametrize("scheme", ["blockwise", "dynamic"])
def test_quantizing_leaves_the_root_logger_as_it_was(exported, tmp_path, monkeypatch, scheme):
    """ORT's matmul_nbits_quantizer calls logging.basicConfig(level=INFO) on import, and quantize_dynamic calls
    logging.warning, which adds a handler to a bare root. Both are no-ops where the root logger has handlers (as
    under pytest), so the root starts bare here and the module is imported afresh."""
    model_dir, out = exported("dynamic")
    monkeypatch.delitem(sys.modules, "onnxruntime.quantization.matmul_nbits_quantizer", raising=False)
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    root.handlers[:] = []
    root.setLevel(logging.WARNING)
    try:
        write_int8(model_dir, out / "model.onnx", tmp_path / "model.int8.onnx", Int8Settings(scheme=scheme))
        handlers, level = list(root.handlers), root.level
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    assert handlers == [] and level == logging.WARNING
    assert int8_record(tmp_path / "model.int8.onnx")["scheme"] == scheme


def test_a_token_classifier_matmul_stays_fp32_under_both_schemes(pii_artifact, tmp_path):
    """The PII head is a MatMul on every token (not a Gemm): classifier_nodes is what keeps it out of int8."""
    fp32 = export_onnx(pii_artifact, out_dir=tmp_path)
    assert quantize.classifier_nodes(fp32)
    for scheme, quantised_op in (("dynamic", DYNAMIC_OPS), ("blockwise", {"MatMulNBits"})):
        target = tmp_path / f"{scheme}.onnx"
        write_int8(pii_artifact, fp32, target, Int8Settings(scheme=scheme))
        graph = onnx.load(str(target)).graph
        assert quantised_op & {n.op_type for n in graph.node}
        head = [n.op_type for n in graph.node if n.name in quantize.classifier_nodes(fp32)]
        assert head == ["MatMul"], (scheme, head)
        assert_embeddings_stay_fp32(graph)


def test_the_probe_judge_runs_the_fp32_graph_once_for_every_candidate(exported, monkeypatch):
    model_dir, out = exported("dynamic")
    loaded = []
    real_load = OnnxPredictor.load

    def counting_load(*args, onnx_file=None, **kwargs):
        loaded.append(Path(onnx_file).name)
        return real_load(*args, onnx_file=onnx_file, **kwargs)

    monkeypatch.setattr(OnnxPredictor, "load", counting_load)
    judge = quantize.probe_judge(model_dir, out / "model.onnx")
    first, second = judge(out / "model.int8.onnx"), judge(out / "model.int8.onnx")
    assert first == second and first[1] == []
    assert loaded == ["model.onnx", "model.int8.onnx", "model.int8.onnx"]
