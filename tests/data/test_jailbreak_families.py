"""Behaviour tests for the generated persona / encoded / multilingual families."""

import base64
import binascii
import codecs
import contextlib
import json
import re
import urllib.parse

import pytest

from loraroute.data import jailbreak_families as fam
from loraroute.data.jailbreak import drop_eval_leaks
from loraroute.data.text import word_key

FUNCS = {
    fam.persona_requests: ("benign", {"generated_persona"}),
    fam.encoded_benign: ("benign", {"generated_encoded_benign"}),
    fam.encoded_attacks: ("jailbreak", {"generated_encoded_attack"}),
    fam.multilingual_prompts: (None, {"generated_multilingual_benign", "generated_multilingual_attack"}),
}
_REV_HOMOGLYPH = {v: k for k, v in fam._HOMOGLYPH.items()}
_REV_MORSE = {v: k for k, v in fam._MORSE.items()}
DECODERS = {
    "b64": lambda b: base64.b64decode(b).decode(),
    "b32": lambda b: base64.b32decode(b).decode(),
    "a85": lambda b: base64.a85decode(b).decode(),
    "b85": lambda b: base64.b85decode(b).decode(),
    "hex": lambda b: bytes.fromhex(b).decode(),
    "binary": lambda b: bytes(int(x, 2) for x in b.split()).decode(),
    "morse": lambda b: " ".join("".join(_REV_MORSE[c] for c in w.split()) for w in b.split(" / ")),
    "rot13": lambda b: codecs.decode(b, "rot13"),
    "url": urllib.parse.unquote,
    "uescape": lambda b: codecs.decode(b, "unicode_escape"),
    "xescape": lambda b: codecs.decode(b, "unicode_escape").encode("latin-1").decode(),
    "tags": lambda b: "".join(chr(ord(c) - 0xE0000) for c in b),
    "zwsp": lambda b: b.replace("\u200b", ""),
    "homoglyph": lambda b: "".join(_REV_HOMOGLYPH.get(c, c) for c in b),
    "reversed": lambda b: b[::-1],
}


@pytest.fixture(scope="module")
def outputs():
    return {fn: fn(seed=0) for fn in FUNCS}


@pytest.mark.parametrize("fn", list(FUNCS), ids=lambda f: f.__name__)
def test_records_labels_sources_and_size(fn, outputs):
    recs = outputs[fn]
    label, sources = FUNCS[fn]
    default_n = 800 if fn is fam.multilingual_prompts else 400
    assert 0.9 * default_n <= len(recs) <= default_n
    for r in recs:
        assert set(r) == {"text", "label", "source"}
        assert r["source"] in sources and 0 < len(r["text"]) < 1500
        assert r["label"] == (label or ("benign" if r["source"].endswith("benign") else "jailbreak"))
    keys = [word_key(r["text"]) for r in recs]
    assert len(set(keys)) == len(keys)
    assert len(fn(seed=0, n=50)) <= 50


@pytest.mark.parametrize("fn", list(FUNCS), ids=lambda f: f.__name__)
def test_deterministic_per_seed(fn, outputs):
    assert fn(seed=0) == outputs[fn]
    assert fn(seed=1) != outputs[fn]


@pytest.mark.parametrize("fn", list(FUNCS), ids=lambda f: f.__name__)
def test_no_eval_leaks(fn, outputs):
    _, removed = drop_eval_leaks(outputs[fn])
    assert removed == 0


def test_every_encoding_appears_and_decodes_back():
    items = fam.encoded_attack_items(seed=0)
    assert {enc for _, enc, _, _ in items} == set(fam.encoders())
    for rec, enc, plain, blob in items:
        assert blob in rec["text"] and blob == fam.encoders()[enc](plain)
        assert re.search(r"[A-Za-z]{3,} [A-Za-z]{2,}", plain)  # an English instruction
        if enc == "leet":
            continue
        decoded = DECODERS[enc](blob)
        if enc == "morse":
            assert decoded == " ".join("".join(c for c in w if c in fam._MORSE) for w in plain.upper().split())
        else:
            assert decoded == plain


def test_base64_attack_decodes_to_instruction():
    items = [it for it in fam.encoded_attack_items(seed=0) if it[1] == "b64"]
    assert items
    words = ("ignore", "instruction", "prompt", "explain", "how", "reveal", "rules", "tell", "write", "give", "print")
    hits = [base64.b64decode(blob).decode().lower() for _, _, _, blob in items]
    assert sum(any(w in h for w in words) for h in hits) >= len(hits) // 2


def test_benign_jwts_decode_to_json(outputs):
    jwts = [m for r in outputs[fam.encoded_benign] for m in re.findall(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+", r["text"])]
    assert len(jwts) >= 3
    for tok in jwts:
        header, payload, _ = tok.split(".")
        for part in (header, payload):
            assert isinstance(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))), dict)


def test_benign_encoded_strings_decode_to_harmless_text(outputs):
    plains = set(fam._t()["fillers"]["benign_plain"])
    found = 0
    for r in outputs[fam.encoded_benign]:
        for blob in re.findall(r"\b[0-9a-f]{16,}\b", r["text"]):
            with contextlib.suppress(ValueError, UnicodeDecodeError, binascii.Error):
                found += bytes.fromhex(blob).decode() in plains
    assert found >= 1


def test_all_languages_in_both_labels(outputs):
    langs = fam._t()["multilingual"]
    recs = outputs[fam.multilingual_prompts]
    for code, lang in langs.items():
        for label, kind in (("benign", "benign"), ("jailbreak", "attack")):
            # a language is present if some record starts like one of its templates' fixed opening words
            heads = {re.split(r"[{\n]", t)[0].strip()[:15].lower() for t in lang[kind]} - {""}
            texts = [r["text"].lower() for r in recs if r["label"] == label]
            assert any(h in t for t in texts for h in heads), (code, label)
    n_ben = sum(r["label"] == "benign" for r in recs)
    assert abs(n_ben - len(recs) / 2) <= len(recs) * 0.1


def test_persona_texts_use_roleplay_wording(outputs):
    texts = [r["text"].lower() for r in outputs[fam.persona_requests]]
    for cue in ("pretend", "act as", "from now on", "stay in character", "roleplay", "you are now"):
        assert any(cue in t for t in texts), cue
