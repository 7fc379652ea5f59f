"""Seeded typo noise, for measuring how a classifier copes with what people actually type."""

from __future__ import annotations

import random
import string

_KEYS = string.ascii_lowercase


def add_typos(text: str, rate: float, rng: random.Random) -> str:
    """Corrupt about ``rate`` of the words longer than three letters with one edit each.

    The edit is one of the four a keyboard makes (swap adjacent letters, drop, double, or replace a letter), so
    a 10% rate gives roughly one typo per sentence of ten words.
    """
    words = text.split(" ")
    for i, word in enumerate(words):
        if len(word) <= 3 or not word.isalpha() or rng.random() >= rate:
            continue
        j = rng.randrange(1, len(word) - 1)
        edit = rng.randrange(4)
        if edit == 0:
            word = word[:j] + word[j + 1] + word[j] + word[j + 2 :]
        elif edit == 1:
            word = word[:j] + word[j + 1 :]
        elif edit == 2:
            word = word[:j] + word[j] + word[j:]
        else:
            word = word[:j] + rng.choice(_KEYS) + word[j + 1 :]
        words[i] = word
    return " ".join(words)
