"""ONNX export: files written atomically, ONNX Runtime logits equal PyTorch's for any batch and length, int8."""

import json

import numpy as np
import onnx
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

import loraroute.export.onnx as onnx_export
from loraroute.artifacts import ModelDir
from loraroute.cli import main
from loraroute.export.onnx import _export_graph, export_onnx, graph_inputs
from loraroute.inference import OnnxPredictor, Predictor
from tests.conftest import ENCODER_ARCHS, tiny_config

# Batch sizes and lengths the export example (2 texts, ~16 tokens) never had, plus truncation at max_length.
TEXTS = [
    "law",
    "question 9: integral matrix prime theorem",
    "tenant court appeal " * 30,
    "gene enzyme cell",
    "a b c d e f g",
    "verdict",
    "polynomial fraction prime derivative equation",
]


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["bert", "roberta", "modernbert"])
def test_export_writes_model_onnx_whose_logits_match_pytorch_for_any_batch_and_length(intent_artifact, copy_of, arch):
    model_dir = copy_of(intent_artifact(arch))
    path = export_onnx(model_dir)
    assert path == model_dir / "onnx" / "model.onnx" and path.exists()
    assert not list(path.parent.glob(".tmp-*")), "temporary export file left behind"
    torch_predictor, ort_predictor = Predictor.load(model_dir), OnnxPredictor.load(model_dir)
    for texts in (TEXTS[:1], TEXTS):
        expected = np.stack(torch_predictor.logits(texts)[0])
        got = np.stack(ort_predictor.logits(texts)[0])
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    ort_answers, torch_answers = ort_predictor.predict(TEXTS), torch_predictor.predict(TEXTS)
    assert [a["label"] for a in ort_answers] == [a["label"] for a in torch_answers]
    assert [a["confidence"] for a in ort_answers] == pytest.approx([a["confidence"] for a in torch_answers], abs=1e-5)
    assert ort_predictor.labels == torch_predictor.labels == ["biology", "law", "math"]
    assert not (model_dir / "onnx" / "model.int8.onnx").exists()


@pytest.mark.parametrize("kind", ["sequence", "token"])
@pytest.mark.parametrize("arch", ENCODER_ARCHS)
def test_every_supported_architecture_exports_with_dynamic_batch_and_sequence_axes(tiny_encoder, tmp_path, arch, kind):
    import onnxruntime as ort

    cls = AutoModelForSequenceClassification if kind == "sequence" else AutoModelForTokenClassification
    torch.manual_seed(0)
    config = tiny_config(arch)
    config.num_labels = 5
    model = cls.from_config(config).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder(arch))
    _export_graph(model, tokenizer, kind, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    for texts in (["x"], TEXTS):
        enc = tokenizer(texts, padding=True, truncation=True, max_length=100, return_tensors="pt")
        with torch.no_grad():
            expected = model(**{n: enc[n] for n in names}).logits.numpy()
        got = session.run(["logits"], {n: enc[n].numpy() for n in names})[0]
        assert got.shape == expected.shape
        mask = enc["attention_mask"].numpy().astype(bool)
        diff = np.abs(got - expected)[mask] if kind == "token" else np.abs(got - expected)
        assert diff.max() <= 1e-4


def test_token_type_ids_are_a_graph_input_only_where_the_model_reads_them(tiny_encoder):
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder("bert"))  # WordPiece: emits token_type_ids
    inputs = {
        arch: graph_inputs(AutoModelForSequenceClassification.from_config(tiny_config(arch)), tokenizer)
        for arch in ("bert", "distilbert", "deberta-v2", "modernbert")
    }
    assert inputs["bert"] == ["input_ids", "attention_mask", "token_type_ids"]
    # DistilBERT and ModernBERT take no segment ids; this DeBERTa-v2 has type_vocab_size 0 (ignores them)
    assert inputs["distilbert"] == inputs["deberta-v2"] == inputs["modernbert"] == ["input_ids", "attention_mask"]


def test_int8_export_quantises_the_encoder_keeps_the_classifier_fp32_and_agrees(intent_artifact, copy_of):
    model_dir = copy_of(intent_artifact("bert"))
    export_onnx(model_dir, int8=True)
    graph = onnx.load(str(ModelDir(model_dir).onnx_int8)).graph
    ops = {n.op_type for n in graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops
    classifier = [n.op_type for n in graph.node if n.name.startswith("/classifier/")]
    assert "MatMul" in classifier and "MatMulInteger" not in classifier
    fp32 = np.stack(OnnxPredictor.load(model_dir).logits(TEXTS)[0])
    int8 = np.stack(OnnxPredictor.load(model_dir, int8=True).logits(TEXTS)[0])
    assert 0 < np.abs(fp32 - int8).max() < 0.1  # quantised (not identical), yet close
    assert (fp32.argmax(1) == int8.argmax(1)).all()


def test_cli_export_onnx_int8_writes_both_files_next_to_the_tokenizer(intent_artifact, copy_of, capsys):
    model_dir = copy_of(intent_artifact("bert"))
    assert main(["export", "onnx", str(model_dir), "--int8"]) == 0
    assert {p.name for p in (model_dir / "onnx").iterdir()} == {"model.onnx", "model.int8.onnx"}
    assert "model.int8.onnx" in capsys.readouterr().out
    assert (model_dir / "tokenizer.json").exists() and (model_dir / "label_mapping.json").exists()


def test_export_refuses_a_pickle_only_directory(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertForSequenceClassification"]}))
    (tmp_path / "pytorch_model.bin").write_bytes(b"not unpickled")
    with pytest.raises(ValueError, match="pickle weights .*pytorch_model.bin.*safetensors only"):
        export_onnx(tmp_path)
    assert not (tmp_path / "onnx").exists()


def test_export_of_an_unsupported_model_type_names_it_and_the_supported_ones(intent_artifact, copy_of, monkeypatch):
    monkeypatch.setattr(onnx_export, "SUPPORTED_TYPES", ("roberta",))
    with pytest.raises(ValueError, match="not supported for model_type 'bert'; supported: roberta"):
        export_onnx(copy_of(intent_artifact("bert")))
