"""Text keys for comparing texts: one function per meaning of "the same text".

- :func:`duplicate_key`: the same example. Case and whitespace do not make a new one; punctuation does ("Is it?" and
  "Is it!" ask differently). Used to drop exact duplicates before splitting.
- :func:`word_key`: the same words. Unicode compatibility forms, case, punctuation and whitespace are all folded, so
  "What's THE answer?" and "what s the answer" meet. Used wherever two texts are compared for leakage or
  near-duplication: train vs eval sets, and the generators' retries.
"""

from __future__ import annotations

import re
import unicodedata

_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[^\W_]+")  # letters and digits of any script; "_" is a word character to re, not to a reader


def duplicate_key(text: str) -> str:
    return _SPACE.sub(" ", text).strip().lower()


def word_key(text: str) -> str:
    return " ".join(_WORD.findall(unicodedata.normalize("NFKC", str(text or "")).casefold()))
