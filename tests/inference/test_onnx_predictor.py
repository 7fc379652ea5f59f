"""ONNX Runtime: one session factory (threads, spinning, providers) and OnnxPredictor on an exported directory.

(Not test_onnx.py: tests/export/ has that basename, and without __init__.py files pytest refuses two of one name.)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from loraroute.export.onnx import export_onnx
from loraroute.inference import OnnxPredictor, Predictor, ort_session
from loraroute.serve.unified import load_predictor
from tests.serve.conftest import INTENT_PROBES

SPINNING = "session.intra_op.allow_spinning"


@pytest.fixture
def identity_graph(tmp_path) -> Path:
    """The smallest graph a session loads: logits = input."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["logits"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what every supported onnxruntime reads
    onnx.save(model, tmp_path / "identity.onnx")
    return tmp_path / "identity.onnx"


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory) -> Path:
    model_dir = Path(shutil.copytree(trained["intent"], tmp_path_factory.mktemp("onnx") / trained["intent"].name))
    export_onnx(model_dir)
    return model_dir


def spinning_entry(session) -> str | None:
    try:
        return session.get_session_options().get_session_config_entry(SPINNING)
    except RuntimeError:  # never set: ONNX Runtime's default, spinning on
        return None


def test_the_session_factory_turns_spinning_off_only_when_asked(identity_graph):
    assert spinning_entry(ort_session(identity_graph, spinning=False)) == "0"
    assert spinning_entry(ort_session(identity_graph)) is None


def test_the_session_factory_sets_threads_and_providers(identity_graph):
    session = ort_session(identity_graph, threads=1, providers=["CPUExecutionProvider"])
    assert session.get_session_options().intra_op_num_threads == 1
    assert session.get_providers() == ["CPUExecutionProvider"]


def test_the_server_runs_onnx_without_spinning_and_a_plain_load_keeps_the_default(exported):
    served, backend = load_predictor(exported, "onnx")
    assert backend == "onnx" and spinning_entry(served.session) == "0"
    assert spinning_entry(OnnxPredictor.load(exported).session) is None


def test_onnx_predictor_answers_as_the_pytorch_predictor(exported):
    ort_answers = OnnxPredictor.load(exported).predict(INTENT_PROBES)
    torch_answers = Predictor.load(exported).predict(INTENT_PROBES)
    assert [a["label"] for a in ort_answers] == [a["label"] for a in torch_answers]
    assert [a["confidence"] for a in ort_answers] == pytest.approx([a["confidence"] for a in torch_answers], abs=1e-5)


def test_onnx_predictor_without_an_export_says_which_command_makes_one(trained):
    with pytest.raises(FileNotFoundError, match="loraroute export onnx .* --int8"):
        OnnxPredictor.load(trained["intent"], int8=True)
