"""run_batches: token tasks read a long text in overlapping windows and get one stitched token sequence back."""

import numpy as np
import pytest
import torch
from transformers import AutoModelForTokenClassification

from loraroute.inference.windows import (
    TextEncoder,
    _stitch,
    batched_logits,
    length_buckets,
    share_encoders,
    window_stride,
)
from loraroute.models.loading import load_tokenizer

LONG = "Ann Lee wrote: " + " ".join(f"word{i} and more text, item {i}." for i in range(60)) + " Mail ann@x.io"


@pytest.fixture(scope="module")
def token_model(tiny_encoder, tiny_bpe_encoder):
    def make(arch):
        path = tiny_encoder(arch) if arch == "bert" else tiny_bpe_encoder(arch)
        torch.manual_seed(0)
        return AutoModelForTokenClassification.from_pretrained(path, num_labels=5).eval(), load_tokenizer(str(path))

    return make


def test_stitch_takes_each_half_of_an_overlap_from_the_window_where_it_has_context():
    def window(tokens, source):  # specials (word id None) at both ends, as a tokenizer's overflow windows have
        rows = np.array([[source]] * (len(tokens) + 2), dtype=float)
        return (
            rows,
            [None, *tokens, None],
            [(0, 0), *[(t * 2, t * 2 + 1) for t in tokens], (0, 0)],
            [101, *[1000 + t for t in tokens], 102],
        )

    rows, word_ids, offsets = _stitch([window(range(0, 6), 0), window(range(2, 10), 1), window(range(6, 12), 2)])
    assert word_ids == [None, *range(12), None]
    assert [o[0] for o in offsets[1:-1]] == [t * 2 for t in range(12)]
    # overlaps 2-5 and 6-9: their first halves (2, 3 and 6, 7) from the earlier window
    # leading special, tokens 0-3, 4-7, 8-11, trailing special
    assert rows[:, 0].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2]


@pytest.mark.parametrize("arch", ["bert", "roberta", "modernbert"])
def test_a_long_text_comes_back_as_one_sequence_covering_every_token(token_model, arch):
    model, tokenizer = token_model(arch)
    full = tokenizer(LONG, return_offsets_mapping=True)
    words = full.word_ids()
    wide = [tuple(o) for o, w in zip(full["offset_mapping"], words) if w is not None and o[0] < o[1]]
    (logits, _short_logits), (enc, short) = batched_logits(
        model, tokenizer, [LONG, "Ann Lee"], max_length=32, return_offsets=True
    )
    assert enc["windows"] > 2 and short["windows"] == 1
    assert enc["word_ids"] == words  # every token once, in order, one special at each end
    # offsets into the text; byte-level BPE's zero-width tokens may sit one character apart between windows
    assert [tuple(o) for o, w in zip(enc["offsets"], enc["word_ids"]) if w is not None and o[0] < o[1]] == wide
    assert enc["word_ids"][0] is None and enc["word_ids"][-1] is None and logits.shape == (len(enc["word_ids"]), 5)
    # tokens before the first cut come from the first window: the same logits as reading only the first 32 tokens
    (truncated,), _ = batched_logits(model, tokenizer, [LONG], max_length=32)
    keep = 32 - 1 - window_stride(32) // 2
    np.testing.assert_allclose(logits[:keep], truncated[:keep], atol=1e-5)
    assert not np.allclose(logits[32:40], truncated[24:32], atol=1e-3)  # later tokens come from later windows


@pytest.mark.parametrize("arch", ["bert", "roberta", "modernbert"])
def test_the_encoder_pads_exactly_as_the_tokenizer_and_its_first_window_is_the_truncated_text(token_model, arch):
    _model, tokenizer = token_model(arch)
    texts = ["Ann Lee", LONG, "¿Qué hora es? 🙂 naïve café", "x"]
    encoder = TextEncoder(tokenizer, max_length=32)
    rows = [windows[0] for windows in encoder.windows(texts)]
    got = encoder.pad(rows, "np")
    want = tokenizer(texts, truncation=True, max_length=32, padding=True, return_tensors="np")
    assert set(got) == set(want)  # token_type_ids only where the tokenizer emits them
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
    assert len(encoder.windows([LONG])[0]) > 2  # the rest of the long text is in later windows


def test_each_text_is_tokenized_once_however_many_tasks_read_it(token_model):
    _model, tokenizer = token_model("bert")
    calls = []

    class Counting:  # the tokenizer, counting the texts it is asked to tokenize
        def __getattr__(self, name):
            return getattr(tokenizer, name)

        def __call__(self, texts, **kwargs):
            calls.append(list(texts))
            return tokenizer(texts, **kwargs)

    encoder = TextEncoder(Counting(), max_length=32)
    first = encoder.windows(["a b", "c d", "a b"])
    again = encoder.windows(["c d", "e f"])
    assert calls == [["a b", "c d"], ["e f"]]
    assert first[0] is first[2] and again[0] is first[1]


def test_predictors_share_an_encoder_only_when_tokenizer_and_max_length_match(tiny_encoder, tiny_bpe_encoder):
    class Stub:
        def __init__(self, path, max_length):
            self.encoder = TextEncoder(load_tokenizer(str(path)), max_length)

    bert_a, bert_b = Stub(tiny_encoder("bert"), 32), Stub(tiny_encoder("bert"), 32)
    bert_long, roberta = Stub(tiny_encoder("bert"), 64), Stub(tiny_bpe_encoder("roberta"), 32)
    encoders = share_encoders([bert_a, bert_b, bert_long, roberta])
    assert len(encoders) == 3
    assert {id(p.encoder) for p in (bert_a, bert_b, bert_long, roberta)} == set(map(id, encoders))
    assert bert_a.encoder is bert_b.encoder
    assert bert_long.encoder is not bert_a.encoder and roberta.encoder is not bert_a.encoder


def test_texts_are_cut_into_length_buckets_where_padding_costs_more_than_a_call():
    # 16 texts of 10 tokens and 16 of 60: one batch would pad 16 x 50 tokens, far more than a second call costs
    assert length_buckets([10] * 16 + [60] * 16, [1] * 32, 32) == [(0, 16), (16, 32)]
    # close lengths stay together: a call costs more than the padding it would save
    assert length_buckets([10, 11, 11, 12], [1] * 4, 32) == [(0, 4)]
    # never more than batch_size texts, and every text in exactly one bucket, in order
    cuts = length_buckets(list(range(5, 105)), [1] * 100, 32)
    assert all(b - a <= 32 for a, b in cuts) and [a for a, _ in cuts[1:]] == [b for _, b in cuts[:-1]]
    assert cuts[0][0] == 0 and cuts[-1][1] == 100
    # a windowed text counts its rows: four 128-token windows outweigh five short texts
    assert length_buckets([10] * 5 + [128], [1] * 5 + [4], 32) == [(0, 5), (5, 6)]
