"""run_batches: token tasks read a long text in overlapping windows and get one stitched token sequence back."""

import numpy as np
import pytest
import torch
from transformers import AutoModelForTokenClassification

from loraroute.inference.windows import _stitch, batched_logits, window_stride
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
