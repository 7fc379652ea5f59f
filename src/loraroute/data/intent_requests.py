"""Request-form training prompts for the 14-way intent router, plus the natural eval set.

The intent classifier is trained on MMLU exam questions, but a router sees everyday
requests ("help me budget for a ski trip", "is it safe to fast for 24 hours?").
This module adds *request-shaped* training prompts built from templates x slot fillers
(``intent_request_topics.json``) and loads the hand-written, test-only natural-prompt
eval set (``eval_sets/intent_natural.jsonl``).

The eval set is never trained on.  ``near_duplicates`` / ``dedup_against`` exist so
that any training mix can be checked (and filtered) against it.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Iterable, Sequence
from functools import lru_cache
from importlib import resources

from loraroute.data.mmlu import MMLU_PRO_CATEGORIES
from loraroute.data.sources import read_labelled_set
from loraroute.data.text import word_key

INTENT_LABELS = MMLU_PRO_CATEGORIES  # the router's 14 domains are MMLU-Pro's categories

SOURCE = "request_templates"
_TOPICS_FILE = "intent_request_topics.json"
_EVAL_FILE = "eval_sets/intent_natural.jsonl"

# Surface-noise rates applied (seeded) after template filling.
_P_LOWER = 0.25  # whole prompt lowercased
_P_UPPER1 = 0.5  # first character capitalised (before the lowercase draw)
_P_NO_PUNCT = 0.15  # trailing ?/./! dropped
_P_TYPO = 0.07  # two adjacent letters swapped inside one longer word


# --------------------------------------------------------------------------- data files


def _data_path(rel: str):
    node = resources.files("loraroute.data")
    for part in rel.split("/"):
        node = node / part
    return node


@lru_cache(maxsize=1)
def _load_spec() -> dict:
    spec = json.loads(_data_path(_TOPICS_FILE).read_text(encoding="utf-8"))
    missing = set(INTENT_LABELS) - set(spec["categories"])
    if missing:
        raise ValueError(f"{_TOPICS_FILE}: no templates for labels {sorted(missing)}")
    return spec


def _fields(template: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


def category_templates(label: str) -> dict[str, str]:
    """All templates (``template_id -> template``) used for one label."""
    spec = _load_spec()
    cat = spec["categories"][label]
    common = spec["common_templates"]
    keep = common if cat.get("use_topic_common", True) else {k: common[k] for k in spec["task_only_common"]}
    out = {f"common:{k}": v for k, v in keep.items()}
    out.update({f"{label}:{k}": v for k, v in cat["templates"].items()})
    slots = _slots(label)
    for tid, tpl in out.items():
        for f in _fields(tpl):
            if f not in slots:
                raise ValueError(
                    f"{_TOPICS_FILE}: template {tid} uses slot {{{f}}} that label {label!r} does not define"
                )
    return out


def _slots(label: str) -> dict[str, list[str]]:
    spec = _load_spec()
    return {"prefix": spec["prefixes"], **spec["categories"][label]["slots"]}


# --------------------------------------------------------------------------- generation


def _perturb(text: str, rng: random.Random) -> str:
    if rng.random() < _P_UPPER1:
        text = text[:1].upper() + text[1:]
    if rng.random() < _P_LOWER:
        text = text.lower()
    if rng.random() < _P_NO_PUNCT:
        text = text.rstrip("?.!")
    if rng.random() < _P_TYPO:
        words = text.split(" ")
        long_idx = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
        if long_idx:
            i = rng.choice(long_idx)
            w = words[i]
            j = rng.randrange(1, len(w) - 2)
            words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
            text = " ".join(words)
    return text


def _fill(template: str, slots: dict[str, list[str]], rng: random.Random) -> str:
    values = {f: rng.choice(slots[f]) for f in _fields(template)}
    return template.format(**values)


def generate_request_prompts(n_per_class: int, seed: int) -> list[dict]:
    """``n_per_class`` request-style prompts for each of the 14 labels.

    Returns dicts ``{"text", "label", "source": "request_templates", "template_id"}``,
    grouped by label in ``INTENT_LABELS`` order.  Deterministic for a given seed.
    Texts are unique within a label (after normalisation) while the template x filler
    space allows it; duplicates are only emitted if it is exhausted.
    """
    if n_per_class < 0:
        raise ValueError("n_per_class must be >= 0")
    records: list[dict] = []
    for li, label in enumerate(INTENT_LABELS):
        rng = random.Random(seed * 1_000_003 + li)
        templates = sorted(category_templates(label).items())
        slots = _slots(label)
        seen: set[str] = set()
        attempts, max_attempts = 0, 50 * max(n_per_class, 1)
        made = 0
        while made < n_per_class:
            tid, tpl = rng.choice(templates)
            text = _fill(tpl, slots, rng)
            attempts += 1
            key = word_key(text)
            if key in seen and attempts < max_attempts:
                continue
            seen.add(key)
            records.append({"text": _perturb(text, rng), "label": label, "source": SOURCE, "template_id": tid})
            made += 1
    return records


# --------------------------------------------------------------------------- overlap checks


def near_duplicates(
    train_texts: Sequence[str], eval_texts: Sequence[str], n: int = 5, threshold: float = 0.6
) -> list[tuple[int, int, float]]:
    """Train/eval pairs that are the same text or near-paraphrases: ``(train_idx, eval_idx, score)``.

    A thin view of the project's one near-duplicate checker, :func:`loraroute.data.leakage.find_leaks`: score 1.0
    for a normalised exact match, else the share of the eval text's word ``n``-grams (``n`` shrinks for short
    texts) found in the training text, reported when >= ``threshold``. Sorted by train index, then eval index.
    """
    from loraroute.data.leakage import MIN_NGRAM, find_leaks

    leaks = find_leaks(train_texts, eval_texts, ngram=max(n, MIN_NGRAM), overlap_threshold=threshold)
    return sorted((leak["train_idx"], leak["eval_idx"], round(leak["score"], 4)) for leak in leaks)


def dedup_against(
    train_records: Sequence[dict], eval_texts: Iterable[str], n: int = 5, threshold: float = 0.6
) -> tuple[list[dict], int]:
    """Drop training records whose ``text`` near-duplicates any eval text."""
    texts = [r["text"] for r in train_records]
    bad = {i for i, _, _ in near_duplicates(texts, list(eval_texts), n=n, threshold=threshold)}
    kept = [r for i, r in enumerate(train_records) if i not in bad]
    return kept, len(bad)


# --------------------------------------------------------------------------- eval set


def load_natural_eval_set() -> list[dict]:
    """The hand-written natural-prompt eval set (TEST ONLY, never train on it).

    Every line must be a JSON object with a non-empty string ``text`` and a ``label`` from ``INTENT_LABELS``;
    otherwise ``DataError`` (a ValueError) names the file, line number and field.
    """
    return [{"text": r["text"], "label": r["label"]} for r in read_labelled_set(_EVAL_FILE, tuple(INTENT_LABELS))]
