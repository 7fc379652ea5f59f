"""Train/eval leakage checks for question texts.

Two kinds of leak are reported by :func:`find_leaks`:

* ``"exact"``: the normalised texts are identical (score 1.0);
* ``"ngram"``: a large share of the eval question's word n-grams occur in one
  training question (containment = |eval n-grams found in train| / |eval
  n-grams|), which catches light paraphrases, added/removed prefixes and
  reordered options that keep long passages verbatim.

The n-gram size adapts to short questions: ``n = min(ngram, words - 1)``; a
question shorter than 4 words gets only the exact check (``n`` would be < 3).
Candidates come from an inverted index with prefix filtering (a training
question reaching the threshold must share at least one of the eval question's
rarest ``|G| - need + 1`` n-grams), so 10k x 2k questions take about a second.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

from loraroute.data.text import word_key

MIN_NGRAM = 3

_SPACE = re.compile(r"\s+")


class DataLeakageError(ValueError):
    """Evaluation questions also occur (exactly or nearly) in the training data."""

    def __init__(self, message: str, leaks: list[dict] | None = None):
        super().__init__(message)
        self.leaks = leaks or []


def _ngram_size(n_words: int, ngram: int) -> int | None:
    n = min(ngram, n_words - 1)
    return n if n >= MIN_NGRAM else None


def _ngrams(words: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


class _TrainIndex:
    """Per-n inverted index (n-gram -> train ids) and n-gram sets, built lazily."""

    def __init__(self, train_words: list[list[str]]):
        self.words = train_words
        self.postings: dict[int, dict[tuple, list[int]]] = {}
        self.grams: dict[int, list[set[tuple]]] = {}

    def for_n(self, n: int) -> tuple[dict[tuple, list[int]], list[set[tuple]]]:
        if n not in self.postings:
            postings: dict[tuple, list[int]] = defaultdict(list)
            sets = []
            for t, words in enumerate(self.words):
                grams = _ngrams(words, n) if len(words) >= n else set()
                sets.append(grams)
                for g in grams:
                    postings[g].append(t)
            self.postings[n], self.grams[n] = dict(postings), sets
        return self.postings[n], self.grams[n]


def find_leaks(
    train_questions: Sequence[str], eval_questions: Sequence[str], ngram: int = 8, overlap_threshold: float = 0.5
) -> list[dict]:
    """All (train, eval) pairs that look leaked, sorted by ``(eval_idx, train_idx)``.

    Each item is ``{"train_idx", "eval_idx", "kind": "exact"|"ngram", "score"}``;
    ``score`` is 1.0 for exact matches and the eval question's n-gram
    containment in the training question otherwise (reported when
    ``>= overlap_threshold``).  A pair is reported once, as ``"exact"`` if it is.
    """
    if ngram < MIN_NGRAM:
        raise ValueError(f"ngram must be >= {MIN_NGRAM}")
    if not 0.0 < overlap_threshold <= 1.0:
        raise ValueError("overlap_threshold must be in (0, 1]")
    train_norm = [word_key(q) for q in train_questions]
    exact: dict[str, list[int]] = defaultdict(list)
    for t, text in enumerate(train_norm):
        if text:
            exact[text].append(t)
    index = _TrainIndex([text.split() for text in train_norm])

    leaks: list[dict] = []
    for e, question in enumerate(eval_questions):
        text = word_key(question)
        if not text:
            continue
        exact_hits = exact.get(text, [])
        found = {t: ("exact", 1.0) for t in exact_hits}
        words = text.split()
        n = _ngram_size(len(words), ngram)
        if n is not None:
            postings, train_sets = index.for_n(n)
            grams = _ngrams(words, n)
            need = max(1, math.ceil(overlap_threshold * len(grams) - 1e-9))
            # prefix filtering: any train item with >= need shared grams holds one of these
            rare = sorted(grams, key=lambda g: len(postings.get(g, ())))[: len(grams) - need + 1]
            candidates: set[int] = set()
            for g in rare:
                candidates.update(postings.get(g, ()))
            for t in candidates:
                if t in found:
                    continue
                score = len(grams & train_sets[t]) / len(grams)
                if score >= overlap_threshold:
                    found[t] = ("ngram", score)
        for t in sorted(found):
            kind, score = found[t]
            leaks.append({"train_idx": t, "eval_idx": e, "kind": kind, "score": float(score)})
    return leaks


def _short(text: str, width: int = 90) -> str:
    text = _SPACE.sub(" ", str(text)).strip()
    return text if len(text) <= width else text[: width - 3] + "..."


def format_leaks(
    leaks: Iterable[dict], train_questions: Sequence[str], eval_questions: Sequence[str], limit: int = 5
) -> list[str]:
    """Readable one-line descriptions of the first *limit* leaks."""
    lines = []
    for leak in list(leaks)[:limit]:
        e, t = leak["eval_idx"], leak["train_idx"]
        lines.append(
            f"eval[{e}] ~ train[{t}] {leak['kind']} ({leak['score']:.2f}): "
            f"eval={_short(eval_questions[e])!r} train={_short(train_questions[t])!r}"
        )
    return lines


def assert_no_leakage(
    train_questions: Sequence[str],
    eval_questions: Sequence[str],
    source_names: Sequence[str] | str = ("train", "eval"),
    ngram: int = 8,
    overlap_threshold: float = 0.5,
    max_listed: int = 5,
) -> None:
    """Raise :class:`DataLeakageError` if any eval question leaks into the training questions.

    ``source_names`` is ``(train_name, eval_name)`` (a single string names the
    training source); it only labels the message, which lists the first
    ``max_listed`` leaks.  The full list is on the exception's ``leaks``.
    """
    if isinstance(source_names, str):
        train_name, eval_name = source_names, "eval"
    else:
        names = list(source_names) + ["train", "eval"][len(source_names) :]
        train_name, eval_name = names[0], names[1]
    leaks = find_leaks(train_questions, eval_questions, ngram=ngram, overlap_threshold=overlap_threshold)
    if not leaks:
        return
    n_eval = len({leak["eval_idx"] for leak in leaks})
    n_exact = sum(leak["kind"] == "exact" for leak in leaks)
    head = (
        f"data leakage: {n_eval} of {len(eval_questions)} question(s) in {eval_name!r} overlap "
        f"{train_name!r} ({len(leaks)} pair(s): {n_exact} exact, {len(leaks) - n_exact} n-gram; "
        f"ngram={ngram}, threshold={overlap_threshold})"
    )
    body = format_leaks(leaks, train_questions, eval_questions, limit=max_listed)
    more = [f"... and {len(leaks) - max_listed} more"] if len(leaks) > max_listed else []
    raise DataLeakageError("\n  ".join([head, *body, *more]), leaks)
