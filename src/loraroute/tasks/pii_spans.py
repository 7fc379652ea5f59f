"""PII as BIO token classification: tokenizer-agnostic span alignment and decoding (scores: metrics.spans).

Everything works from a fast tokenizer's ``offset_mapping`` and ``word_ids()`` -- never string
matching -- so the same code serves WordPiece (BERT), byte-level BPE with ``add_prefix_space``
(RoBERTa) and byte-level BPE without trimmed offsets (ModernBERT), whose offsets may include a
word's leading space.  A *word* is a maximal run of consecutive tokens sharing one word id
(special tokens have ``None``); its character range is the union of its tokens' ranges.

Spans are dicts ``{"entity_type", "start", "end"}`` with character offsets, ``end`` exclusive.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from loraroute.metrics.spans import IGNORE_INDEX


def bio_labels(entity_types: Sequence[str]) -> list[str]:
    """``["O"] + ["B-T", "I-T"]`` for each type ``T`` in sorted order."""
    labels = ["O"]
    for t in sorted(set(entity_types)):
        labels += [f"B-{t}", f"I-{t}"]
    return labels


def _overlaps(s: int, e: int, a: int, b: int) -> bool:
    """Does token range [s, e) touch span [a, b)?  A zero-length token counts at position s."""
    if s == e:
        return a <= s < b
    return max(s, a) < min(e, b)


def _word_runs(word_ids: Sequence[int | None]) -> list[list[int]]:
    """Token indices grouped into words: maximal runs of equal, non-None word ids."""
    runs: list[list[int]] = []
    prev = None
    for i, w in enumerate(word_ids):
        if w is None:
            prev = None
            continue
        if w == prev and runs:
            runs[-1].append(i)
        else:
            runs.append([i])
        prev = w
    return runs


def _pair(off) -> tuple[int, int]:
    return int(off[0]), int(off[1])


def align_spans_to_tokens(
    offsets: Sequence,
    word_ids: Sequence[int | None],
    spans: Sequence[dict],
    label2id: dict[str, int],
    label_all_subwords: bool = False,
) -> list[int]:
    """Token label ids for character ``spans``.

    Special tokens (word id ``None``) get -100.  Each word's first token gets ``B-T`` if the word
    is the first one touching a span of type ``T`` (the span starts at or after the word's first
    character -- so a span starting mid-word marks the word that contains its start), ``I-T`` if
    it touches a span that started in an earlier word, else ``O``.  Later tokens of a word get
    -100, or with ``label_all_subwords`` ``I-T`` when they touch the word's span and ``O`` otherwise.
    Offsets that include a word's leading space (untrimmed byte-level BPE) are fine: spans never
    start or end on whitespace, so the extra space cannot make a word touch a span.
    """
    ordered = sorted(spans, key=lambda sp: sp["start"])
    labels = [IGNORE_INDEX] * len(word_ids)
    o = label2id["O"]
    for run in _word_runs(word_ids):
        toks = [_pair(offsets[i]) for i in run]
        ws, we = min(s for s, _ in toks), max(e for _, e in toks)
        span = next((sp for sp in ordered if _overlaps(ws, we, sp["start"], sp["end"])), None)
        if span is None:
            labels[run[0]] = o
            if label_all_subwords:
                for i in run[1:]:
                    labels[i] = o
            continue
        t = span["entity_type"]
        labels[run[0]] = label2id[("B-" if span["start"] >= ws else "I-") + t]
        if label_all_subwords:
            inside = label2id["I-" + t]
            for i, (s, e) in zip(run[1:], toks[1:]):
                labels[i] = inside if _overlaps(s, e, span["start"], span["end"]) else o
    return labels


def _decision_runs(word_ids: Sequence[int | None], label_all_subwords: bool) -> list[list[int]]:
    """Token groups that each take one label decision: words, or single tokens with ``label_all_subwords``."""
    runs = _word_runs(word_ids)
    return [[i] for run in runs for i in run] if label_all_subwords else runs


# Only an address runs over lines ("221 Baker Street\nSpringfield"); a name, a number or an e-mail ends at a line
# break. In the offline generator's 12,000 sentences every one of the 1,162 spans holding a newline is an address.
MULTILINE_TYPES = frozenset({"STREET_ADDRESS"})


def bio_transitions(labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Allowed label moves for :func:`constrained_label_ids`: ``(start, between, within, new_line)``.

    ``start[c]``: label ``c`` may open a sequence (not ``I-``).  ``between[p, c]``: BIO allows ``c`` after ``p``
    (``I-T`` only after ``B-T``/``I-T``).  ``within[p, c]``: also holds inside one whitespace-free chunk, where a
    tagged piece may only be followed by ``I-`` of its own type or ``O`` -- ``john.smith@example.com`` is one
    entity, never ``EMAIL`` + ``PERSON`` + ``EMAIL``.  ``new_line[p, c]``: across a line break, where only a
    type in ``MULTILINE_TYPES`` may continue.
    """
    types = [None if lab == "O" else lab.split("-", 1)[1] for lab in labels]
    inside = np.array([lab.startswith("I-") for lab in labels])
    same_type = np.array([[a is not None and a == b for b in types] for a in types])
    between = ~inside[None, :] | same_type
    outside = np.array([t is None for t in types])
    within = between & (outside[:, None] | outside[None, :] | (same_type & inside[None, :]))
    single_line = np.array([t is not None and t not in MULTILINE_TYPES for t in types])
    new_line = between & ~(inside & single_line)[None, :]
    return ~inside, between, within, new_line


def best_bio_path(
    probs: Any,
    labels: Sequence[str],
    within_chunk: Sequence[bool] | None = None,
    restart: Sequence[bool] | None = None,
    new_line: Sequence[bool] | None = None,
) -> list[int]:
    """Viterbi over per-unit label probabilities: the most probable sequence that :func:`bio_transitions` allows.

    ``within_chunk[k]`` / ``restart[k]`` / ``new_line[k]`` say that unit ``k`` continues unit ``k-1``'s
    whitespace-free chunk, follows special tokens (so it may open a sequence), or starts a new line; all default
    to False.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if len(probs) == 0:
        return []
    start, between, within, across = bio_transitions(labels)
    with np.errstate(divide="ignore"):
        emit = np.log(probs)
        moves_between, moves_within = np.where(between, 0.0, -np.inf), np.where(within, 0.0, -np.inf)
        moves_across = np.where(across, 0.0, -np.inf)
        opening = np.where(start, 0.0, -np.inf)
    score = emit[0] + opening
    back = np.zeros(probs.shape, dtype=int)
    for k in range(1, len(probs)):
        if restart is not None and restart[k]:
            back[k] = int(score.argmax())
            score = score.max() + opening + emit[k]
            continue
        if within_chunk is not None and within_chunk[k]:
            moves = score[:, None] + moves_within
        elif new_line is not None and new_line[k]:
            moves = score[:, None] + moves_across
        else:
            moves = score[:, None] + moves_between
        back[k] = moves.argmax(0)
        score = moves.max(0) + emit[k]
    path = [int(score.argmax())]
    for k in range(len(probs) - 1, 0, -1):
        path.append(int(back[k][path[-1]]))
    return path[::-1]


def constrained_label_ids(
    text: str,
    offsets: Sequence,
    word_ids: Sequence[int | None],
    probs: Any,
    labels: Sequence[str],
    label_all_subwords: bool = False,
) -> np.ndarray:
    """Per-token label ids: the most probable label sequence that is valid BIO and keeps chunks whole.

    Independent argmax per word breaks entities apart (a stray ``B-`` mid-name, or ``I-ORG`` after ``B-PERSON``)
    and, because BERT-style pre-tokenizers split on punctuation, lets each piece of an e-mail address or URL
    take its own type.  :func:`best_bio_path` fixes both with no extra parameters.  Tokens that take no
    decision (later subwords, specials) keep their argmax.
    """
    probs = np.asarray(probs, dtype=np.float64)
    out = probs.argmax(-1)
    runs = _decision_runs(word_ids, label_all_subwords)
    within, restart, new_line = [False], [False], [False]
    for prev, run in itertools.pairwise(runs):
        # up to the unit's first character: untrimmed BPE offsets (ModernBERT) start at the space before a word
        gap = text[max(_pair(offsets[i])[1] for i in prev) : min(_pair(offsets[i])[0] for i in run) + 1]
        within.append(not any(ch.isspace() for ch in gap))
        restart.append(run[0] != prev[-1] + 1)
        new_line.append("\n" in gap or "\r" in gap)
    path = best_bio_path(probs[[run[0] for run in runs]], labels, within, restart, new_line)
    for run, label_id in zip(runs, path):
        out[run[0]] = label_id
    return out


def merge_chunk_pieces(text: str, entities: list[dict], aggregation: str = "mean") -> list[dict]:
    """Join entities separated by no whitespace into one (the longer piece's type), e.g. ``john.`` + ``smith``
    + ``@example.com`` where the model left a piece of the address ``O``: a whitespace-free chunk is one value.
    Confidence is the mean (or ``aggregation="min"``, the minimum) of the pieces'."""
    out: list[dict] = []
    for ent in entities:
        prev = out[-1] if out else None
        if prev is None or prev["end"] > ent["start"] or any(ch.isspace() for ch in text[prev["end"] : ent["start"]]):
            out.append({**ent, "_pieces": [ent["confidence"]]})
            continue
        if ent["end"] - ent["start"] > prev["end"] - prev["start"]:
            prev["entity_type"] = ent["entity_type"]
        prev["end"], prev["text"] = ent["end"], text[prev["start"] : ent["end"]]
        prev["_pieces"].append(ent["confidence"])
        prev["confidence"] = (
            min(prev["_pieces"]) if aggregation == "min" else sum(prev["_pieces"]) / len(prev["_pieces"])
        )
    for ent in out:
        del ent["_pieces"]
    return out


def _one_value(text: str, prev: dict, ent: dict) -> bool:
    """Whether two neighbouring entities are pieces of one value under the annotation conventions: a street and
    its unit (``4418 Pinecrest Dr`` + ``, `` + ``Apt 12``, or ``Unit 5, 32 Beaconsfield Parade``), or a date and
    its time (``Saturday 14 June`` + `` at `` + ``7:30pm``)."""
    from loraroute.data.pii import ADDRESS_UNIT

    gap = text[prev["end"] : ent["start"]]
    if prev["entity_type"] != ent["entity_type"] or "\n" in gap:
        return False
    if prev["entity_type"] == "STREET_ADDRESS":
        return bool(
            re.fullmatch(r"[ ,]*", gap) and (ADDRESS_UNIT.match(ent["text"]) or ADDRESS_UNIT.match(prev["text"]))
        )
    return (
        prev["entity_type"] == "DATE_TIME"
        and bool(re.fullmatch(r"(?i)[ ,]*(?:at|@)?[ ,]*", gap))
        and bool(_TIME.fullmatch(ent["text"]))
    )


# A time of day: 7:30pm, 07:55, 9 AM, 14:20:05.
_TIME = re.compile(r"(?i)\d{1,2}(?::\d{2}){1,2}\s*(?:am|pm)?|\d{1,2}\s*(?:am|pm)")


def merge_value_pieces(text: str, entities: list[dict]) -> list[dict]:
    """Neighbouring pieces of one street line or one date-and-time joined (:func:`_one_value`); confidence is the
    pieces' mean."""
    out: list[dict] = []
    for ent in entities:
        prev = out[-1] if out else None
        if prev is not None and _one_value(text, prev, ent):
            out[-1] = {
                **prev,
                "end": ent["end"],
                "text": text[prev["start"] : ent["end"]],
                "confidence": (prev["confidence"] + ent["confidence"]) / 2,
            }
        else:
            out.append(ent)
    return out


def split_address_parts(text: str, entities: list[dict]) -> list[dict]:
    """STREET_ADDRESS entities that run over a comma or line break into the city, state or postcode cut into the
    annotation conventions' parts, as the training labels are (:func:`loraroute.data.pii.split_address_spans`);
    each part keeps the entity's confidence."""
    from loraroute.data.pii import split_address_spans

    out: list[dict] = []
    for ent in entities:
        if ent["entity_type"] != "STREET_ADDRESS" or not re.search(r"[,\n]", ent["text"]):
            out.append(ent)
            continue
        whole = {"entity_type": "STREET_ADDRESS", "start": ent["start"], "end": ent["end"]}
        out += [
            {**ent, **part, "text": text[part["start"] : part["end"]]}
            for part in split_address_spans({"text": text, "spans": [whole]})["spans"]
        ]
    return out


# Presidio values (names, addresses, numbers, "Inc.", URLs ending in "/") never end in these; a model that carries
# an entity over the comma after it ("Egyek," GPE) is trimmed back.
TRAILING_PUNCTUATION = ",;:!?"


def trim_trailing_punctuation(text: str, entities: list[dict]) -> list[dict]:
    """Entities with ``TRAILING_PUNCTUATION`` (and the whitespace before it) removed from their end."""
    out = []
    for ent in entities:
        end = ent["end"]
        while end > ent["start"] and (text[end - 1] in TRAILING_PUNCTUATION or text[end - 1].isspace()):
            end -= 1
        if end > ent["start"]:
            out.append({**ent, "end": end, "text": text[ent["start"] : end]})
    return out


def _token_prob(probs: Any, i: int, label_id: int) -> float:
    row = probs[i]
    if getattr(row, "ndim", 1) and hasattr(row, "__len__"):  # full distribution over labels
        return float(row[label_id])
    return float(row)  # already the max softmax probability


def decode_spans(
    text: str,
    offsets: Sequence,
    word_ids: Sequence[int | None],
    pred_label_ids: Sequence[int],
    probs: Any,
    id2label: dict[int, str],
    aggregation: str = "mean",
    label_all_subwords: bool = False,
) -> list[dict]:
    """Merge token predictions into entities with exact character offsets into ``text``.

    ``probs`` holds, per token, the max softmax probability (or the full distribution, then the
    predicted label's probability is used).  With ``label_all_subwords=False`` only a word's first
    token decides its label and an entity ends where its last word ends (trailing subwords
    included); otherwise every token decides and ranges are per token.  ``B-T`` opens a new entity
    (so adjacent entities stay apart); ``I-T`` continues an open ``T`` entity and opens a new one
    after ``O`` or another type; ``O`` and special tokens close.  Leading/trailing whitespace in
    offsets (RoBERTa/ModernBERT ``Ġ`` tokens) is stripped.  ``confidence`` is the mean (or
    ``aggregation="min"``) of the entity's deciding tokens' probabilities; ``O`` never counts.
    """
    if aggregation not in ("mean", "min"):
        raise ValueError(f"aggregation must be 'mean' or 'min', not {aggregation!r}")
    units: list[tuple[int, int, int, int] | None] = []  # (start, end, label_id, token) or None
    runs = _decision_runs(word_ids, label_all_subwords)
    prev_end = None
    for run in runs:
        if prev_end is not None and run[0] != prev_end + 1:
            units.append(None)  # special tokens in between close entities
        toks = [_pair(offsets[i]) for i in run]
        units.append((min(s for s, _ in toks), max(e for _, e in toks), int(pred_label_ids[run[0]]), run[0]))
        prev_end = run[-1]

    entities: list[dict] = []
    cur: dict | None = None

    def close():
        nonlocal cur
        if cur is not None:
            s, e = cur["start"], cur["end"]
            while s < e and text[s].isspace():
                s += 1
            while e > s and text[e - 1].isspace():
                e -= 1
            if s < e:
                ps = cur.pop("_probs")
                conf = min(ps) if aggregation == "min" else sum(ps) / len(ps)
                entities.append(
                    {"entity_type": cur["entity_type"], "start": s, "end": e, "text": text[s:e], "confidence": conf}
                )
        cur = None

    for unit in units:
        if unit is None:
            close()
            continue
        s, e, lid, tok = unit
        if isinstance(id2label, dict):  # int keys, or str keys from a JSON config
            label = id2label.get(lid, id2label.get(str(lid), "O"))
        else:
            label = id2label[lid] if 0 <= lid < len(id2label) else "O"
        if label == "O" or "-" not in label:
            close()
            continue
        tag, t = label.split("-", 1)
        p = _token_prob(probs, tok, lid)
        if tag == "I" and cur is not None and cur["entity_type"] == t:
            cur["end"] = max(cur["end"], e)
            cur["_probs"].append(p)
            continue
        close()
        cur = {"entity_type": t, "start": s, "end": e, "_probs": [p]}
    close()
    return entities


# ----------------------------------------------------------------------------- word level


def _ws_words(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def char_spans_to_word_bio(text: str, spans: Sequence[dict]) -> list[str]:
    """BIO tag per whitespace-separated word (same B/I rule as :func:`align_spans_to_tokens`)."""
    ordered = sorted(spans, key=lambda sp: sp["start"])
    tags = []
    for ws, we in _ws_words(text):
        span = next((sp for sp in ordered if _overlaps(ws, we, sp["start"], sp["end"])), None)
        if span is None:
            tags.append("O")
        else:
            tags.append(("B-" if span["start"] >= ws else "I-") + span["entity_type"])
    return tags


def word_bio_to_char_spans(text: str, tags: Sequence[str]) -> list[dict]:
    """Inverse of :func:`char_spans_to_word_bio` for spans on whitespace-word boundaries."""
    words = _ws_words(text)
    if len(words) != len(tags):
        raise ValueError(f"{len(tags)} tags for {len(words)} words")
    out: list[dict] = []
    open_ = False
    for (ws, we), tag in zip(words, tags):
        if tag == "O":
            open_ = False
            continue
        bi, t = tag.split("-", 1)
        if bi == "I" and open_ and out[-1]["entity_type"] == t:
            out[-1]["end"] = we
        else:
            out.append({"entity_type": t, "start": ws, "end": we})
            open_ = True
    return out
