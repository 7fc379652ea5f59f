"""Upstream's candle loaders: which directories they can read, and candle's logits (runtime e) against PyTorch."""

import json
import os
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from loraroute.export.candle import CandlePredictor, candle_skip_reason, upstream_loadability, upstream_report
from loraroute.export.probes import probe_texts
from loraroute.export.verify import LOGIT_TOLERANCE, RUNTIMES, format_report, verify_model
from loraroute.inference import Predictor

CANDLE = RUNTIMES["e"]


def max_abs_diff(ours: list[np.ndarray], ref: list[np.ndarray]) -> float:
    assert [x.shape for x in ours] == [y.shape for y in ref]
    return max(float(np.abs(x - y).max()) for x, y in zip(ours, ref))


def edit_config(model_dir, **changes):
    path = model_dir / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_candle_logits_match_merged_pytorch_on_a_bert_intent_model(intent_artifact):
    model_dir = intent_artifact("bert")
    texts = probe_texts("intent", "sequence", ["biology", "law", "math"])[0]
    texts += ["question 7: " + "integral matrix " * 40]  # past max_length (32): truncated alike by both
    candle, torch_ = CandlePredictor.load(model_dir), Predictor.load(model_dir)
    ours, ref = candle.logits(texts)[0], torch_.logits(texts)[0]
    diff = max_abs_diff(ours, ref)
    print(f"intent: max |candle - PyTorch| logit = {diff:.2e} over {len(texts)} texts")
    assert 0 < diff <= LOGIT_TOLERANCE  # > 0: candle really ran its own arithmetic
    assert [a["label"] for a in candle.predict(texts)] == [a["label"] for a in torch_.predict(texts)]


@pytest.mark.slow
def test_candle_token_logits_match_merged_pytorch_on_a_pii_model_and_it_is_loadable_upstream(pii_artifact):
    assert upstream_loadability(pii_artifact) == (True, [])  # a token head needs no pooler
    texts = probe_texts("pii", "token", Predictor.load(pii_artifact).labels)[0]
    # Longer than max_length (64 tokens): read in windows, the last one padded, so padding must not leak in.
    texts += ["Note: " + "the meeting moved to the next week again. " * 12 + "Mail jane.doe@example.com today."]
    candle, torch_ = CandlePredictor.load(pii_artifact), Predictor.load(pii_artifact)
    (ours, enc), (ref, ref_enc) = candle.logits(texts), torch_.logits(texts)
    assert enc[-1]["windows"] > 1 and [e["offsets"] for e in enc] == [e["offsets"] for e in ref_enc]
    diff = max_abs_diff(ours, ref)
    print(f"pii: max |candle - PyTorch| logit = {diff:.2e} over {sum(len(x) for x in ours)} tokens")
    assert 0 < diff <= LOGIT_TOLERANCE
    assert np.array_equal(np.concatenate(ours).argmax(-1), np.concatenate(ref).argmax(-1))


def test_verify_compares_candle_with_merged_pytorch_as_pair_b_e(intent_artifact, copy_of):
    report = verify_model(copy_of(intent_artifact("bert")), write=False)
    assert report["passed"], report["failures"]
    pair = report["pairs"]["b-e"]
    assert pair["runtimes"] == [RUNTIMES["b"], CANDLE] and 0 < pair["max_abs_diff"] <= LOGIT_TOLERANCE
    assert pair["argmax_agreement"] == 1.0 and pair["answer_agreement"] == 1.0
    assert report["runtimes"][CANDLE] == "ok" and report["runtimes_skipped"] == {}
    assert report["upstream"] == {"loadable": True, "path": "bert", "model_type": "bert", "reasons": []}
    text = format_report(report)
    assert f"(b) {RUNTIMES['b']} vs (e) {CANDLE}" in text
    assert "upstream (vLLM semantic-router candle-binding, bert path): loadable" in text


def test_verify_fails_when_candle_disagrees_beyond_the_logit_tolerance(intent_artifact, copy_of, monkeypatch):
    real = CandlePredictor.logits

    def off_by_a_little(self, texts):
        logits, encodings = real(self, texts)
        return [x + 1e-3 for x in logits], encodings  # what a mis-read weight or a wrong activation looks like

    monkeypatch.setattr(CandlePredictor, "logits", off_by_a_little)
    report = verify_model(copy_of(intent_artifact("bert")), write=False)
    assert not report["passed"] and not report["pairs"]["b-e"]["passed"]
    assert any(f.startswith(f"{RUNTIMES['b']} vs {CANDLE}: max |logit diff| 1.0") for f in report["failures"])


def test_without_candle_installed_runtime_e_is_skipped_with_the_install_hint(intent_artifact, copy_of, monkeypatch):
    monkeypatch.setitem(sys.modules, "candle", None)  # `import candle` now raises ImportError
    model_dir = copy_of(intent_artifact("bert"))
    assert "pip install 'loraroute[candle]'" in candle_skip_reason(model_dir)
    report = verify_model(model_dir, write=False)
    assert report["passed"], report["failures"]
    assert "b-e" not in report["pairs"] and report["runtimes"][CANDLE] == "skipped"
    assert "pip install 'loraroute[candle]'" in report["runtimes_skipped"][CANDLE]
    assert any(note.startswith(f"(e) {CANDLE} not run: candle is not installed") for note in report["notes"])


def test_a_trained_bert_directory_is_loadable_upstream(intent_artifact):
    model_dir = intent_artifact("bert")
    assert upstream_loadability(model_dir) == (True, [])
    names = load_file(model_dir / "model.safetensors")
    assert all(k.startswith(("bert.", "classifier.")) for k in names) and "bert.pooler.dense.weight" in names
    assert {str(v.dtype) for v in names.values()} == {"torch.float32"}


def test_a_roberta_directory_is_not_loadable_upstream_but_is_a_valid_model(intent_artifact, copy_of):
    model_dir = copy_of(intent_artifact("roberta"))
    loadable, reasons = upstream_loadability(model_dir)
    assert not loadable
    assert reasons[0] == (
        "candle-binding has no RoBERTa path; model_type 'roberta' would be read as BERT and fail "
        "on tensor names roberta.*"
    )
    assert any(k.startswith("roberta.") for k in load_file(model_dir / "model.safetensors"))
    report = verify_model(model_dir, write=False)
    assert report["passed"], report["failures"]  # not loadable upstream is not a broken model
    assert report["upstream"]["loadable"] is False and report["upstream"]["path"] is None
    assert "b-e" not in report["pairs"] and "no candle-binding path" in report["runtimes_skipped"][CANDLE]
    assert "NOT loadable: candle-binding has no RoBERTa path" in format_report(report)


@pytest.mark.parametrize(
    "arch, family, prefix",
    [
        ("deberta-v2", "DeBERTa-v2", "deberta"),
        ("distilbert", "DistilBERT", "distilbert"),
        ("electra", "ELECTRA", "electra"),
    ],
)
def test_other_encoders_without_a_candle_path_are_named_with_their_saved_tensor_prefix(arch, family, prefix, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from tests.conftest import tiny_config

    config = tiny_config(arch)
    config.id2label, config.label2id = {0: "a", 1: "b"}, {"a": 0, "b": 1}
    AutoModelForSequenceClassification.from_config(config).save_pretrained(tmp_path)
    assert upstream_report(tmp_path)["reasons"][0] == (
        f"candle-binding has no {family} path; model_type '{arch}' would be read as BERT and fail on tensor names "
        f"{prefix}.*"
    )
    assert "no candle-binding path" in candle_skip_reason(tmp_path)


def test_files_candle_reads_must_be_readable_by_other_users(intent_artifact, copy_of):
    model_dir = copy_of(intent_artifact("bert"))
    os.chmod(model_dir / "config.json", 0o600)
    os.chmod(model_dir / "adapter" / "adapter_config.json", 0o600)  # not read by candle: not reported
    os.chmod(model_dir, 0o700)
    try:
        loadable, reasons = upstream_loadability(model_dir)
        report = verify_model(model_dir, write=False)
    finally:
        os.chmod(model_dir, 0o755)
    config_reason = (
        "config.json: mode 0600, not readable by other users (upstream's router usually runs as "
        "another user; chmod o+r)"
    )
    dir_reason = f"{model_dir.name}/: directory mode 0700, other users cannot list and enter it (chmod o+rx)"
    assert not loadable and reasons == [dir_reason, config_reason]
    assert not report["passed"] and {dir_reason, config_reason} <= set(report["contract_problems"])


def test_tensors_that_are_not_f32_or_not_under_bert_are_contract_problems(intent_artifact, copy_of):
    model_dir = copy_of(intent_artifact("bert"))
    weights = load_file(model_dir / "model.safetensors")
    half = {k: v.half() if k == "classifier.weight" else v for k, v in weights.items()}
    save_file(half, model_dir / "model.safetensors", metadata={"format": "pt"})
    os.chmod(model_dir / "model.safetensors", 0o644)  # save_file writes 0600 (safetensors 0.8); not this test's point
    dtype_reason = (
        "model.safetensors: 1 tensor(s) are not F32 (classifier.weight is F16); the merged model upstream loads is F32"
    )
    assert upstream_loadability(model_dir) == (False, [dtype_reason])
    report = verify_model(model_dir, write=False)
    assert not report["passed"] and dtype_reason in report["contract_problems"]

    # A bare encoder's names (what a base-model save_pretrained writes): upstream's vb.pp("bert") finds nothing.
    bare = {k.removeprefix("bert."): v for k, v in weights.items()}
    save_file(bare, model_dir / "model.safetensors", metadata={"format": "pt"})
    os.chmod(model_dir / "model.safetensors", 0o644)
    reasons = upstream_loadability(model_dir)[1]
    assert reasons[0].startswith("model.safetensors: 39 tensor name(s) outside bert.*, classifier.* (e.g. embeddings.")
    assert reasons[1] == "model.safetensors: missing bert.embeddings.word_embeddings.weight, bert.pooler.dense.weight"


def test_a_classifier_unlike_id2label_and_a_single_label_are_reported(intent_artifact, copy_of):
    model_dir = copy_of(intent_artifact("bert"))
    edit_config(model_dir, id2label={"0": "biology", "1": "law", "2": "math", "3": "history"})
    assert upstream_loadability(model_dir) == (
        False,
        [
            "model.safetensors: classifier.weight is [3, 32], upstream "
            "builds it as [len(id2label), hidden_size] = [4, 32]"
        ],
    )
    edit_config(model_dir, id2label={"0": "biology"}, hidden_act="gelu_new")
    reasons = upstream_loadability(model_dir)[1]
    assert "config.json: id2label has 1 label(s); upstream's classifiers need >= 2" in reasons
    assert "config.json: hidden_act 'gelu_new' is not one candle's BERT runs (gelu, gelu_approximate, relu)" in reasons
    with pytest.raises(ValueError, match="hidden_act 'gelu_new'"):
        CandlePredictor.load(model_dir)


def test_a_trained_modernbert_directory_fits_upstreams_path_with_candles_config_names(intent_artifact, copy_of):
    model_dir = copy_of(intent_artifact("modernbert"))
    names = load_file(model_dir / "model.safetensors")
    assert {k.split(".")[0] for k in names} == {"model", "head", "classifier"}
    config = json.loads((model_dir / "config.json").read_text())
    rope = config["rope_parameters"]  # transformers 5's spelling; the writer adds the names candle's Config parses
    assert config["layer_norm_eps"] == config["norm_eps"]
    assert config["global_rope_theta"] == rope["full_attention"]["rope_theta"]
    assert config["local_rope_theta"] == rope["sliding_attention"]["rope_theta"]
    assert [i % config["global_attn_every_n_layers"] == 0 for i in range(config["num_hidden_layers"])] == [
        kind == "full_attention" for kind in config["layer_types"]
    ]
    assert upstream_loadability(model_dir) == (True, [])
    edit_config(model_dir, layer_norm_eps=None, global_rope_theta=None)  # as transformers 5 alone writes it
    missing = "config.json: missing layer_norm_eps, global_rope_theta, which candle's modernbert Config requires"
    assert upstream_report(model_dir) == {
        "loadable": False,
        "path": "modernbert",
        "model_type": "modernbert",
        "reasons": [missing],
    }
    assert "no ModernBERT" in candle_skip_reason(model_dir)


def test_candle_refuses_a_directory_whose_tensors_it_cannot_place(intent_artifact, copy_of):
    model_dir = copy_of(intent_artifact("bert"))
    weights = load_file(model_dir / "model.safetensors")
    weights["bert.encoder.layer.2.output.dense.weight"] = torch.zeros(32, 64)  # a layer config.json does not have
    save_file(weights, model_dir / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(RuntimeError, match="Unexpected key.*encoder.layer.2.output.dense.weight"):
        CandlePredictor.load(model_dir)
