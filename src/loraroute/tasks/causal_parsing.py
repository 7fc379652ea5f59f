"""Reading causal-LM outputs: category names and multiple-choice letters, returning ``None`` rather than guessing.

Malformed output is never counted as right: callers count ``None`` as *unparsed*.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from loraroute.data.mc_sources import MC_LETTERS

# --------------------------------------------------------------------------- output parsing

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.S | re.I)
_THINK_OPEN = re.compile(r"<think>.*\Z", re.S | re.I)
_THINK_CLOSE = re.compile(r"</think>", re.I)


def strip_think(text: str) -> str:
    """Remove ``<think>...</think>`` blocks, an unclosed ``<think>`` tail, and
    anything before an orphan ``</think>`` (prompt-opened thinking)."""
    text = _THINK_BLOCK.sub(" ", text or "")
    text = _THINK_OPEN.sub(" ", text)
    parts = _THINK_CLOSE.split(text)
    return parts[-1].strip()


def _norm_label(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower().replace("_", " ").replace("-", " ")
    text = re.sub(r"[^\w\s]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def parse_category(text: str, categories: Sequence[str]) -> str | None:
    """Map a generated label to one of *categories* (returned in its given spelling).

    Handles think blocks, case, punctuation, ``"Category: Biology."``,
    ``"computer_science"``/``"computer-science"`` and extra words ("The category
    is computer science").  The earliest category mentioned on the first
    non-empty line wins (ties: the longest name); if that line names none, the
    earliest anywhere; ``None`` if no category occurs.
    """
    patterns = []
    for cat in categories:
        norm = _norm_label(cat)
        if norm:
            patterns.append((cat, re.compile(r"(?<![a-z0-9])" + re.escape(norm) + r"(?![a-z0-9])"), len(norm)))
    body = strip_think(text)
    lines = [ln for ln in body.splitlines() if _norm_label(ln)]
    for scope in (lines[:1], lines):
        hay = _norm_label(" \n ".join(scope))
        best = None
        for cat, pat, length in patterns:
            m = pat.search(hay)
            if m and (best is None or (m.start(), -length) < (best[0], -best[1])):
                best = (m.start(), length, cat)
        if best:
            return best[2]
    return None


def _norm_option(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[*_`$]", "", text)
    text = re.sub(r"\s+", " ", text).strip()
    return text.strip(" .;:!,\"'")


_ANSWER_PHRASE = (
    r"(?i:\b(?:final\s+answer|correct\s+answer|best\s+answer|answer|correct\s+(?:option|choice))\b)"
    r"(?i:\s*(?:is|would\s+be|should\s+be|must\s+be|will\s+be)(?:\s+(?:therefore|thus|clearly))?"
    r"\s*[:=\-–]?|\s*[:=])"
)
_ANSWER_STMT = re.compile(_ANSWER_PHRASE)
_LETTER_AFTER = re.compile(
    r"\s*(?i:(?:option|choice|letter)\s*)?"
    r"(?:\(([A-Ja-j])\)|\[([A-Ja-j])\]|([A-J])(?![A-Za-z0-9'’])"
    r"|([a-j])(?=\s*[.)]?[ \t]*(?:\n|$)))"
)  # lower-case only when it ends the line
_MORE_LETTERS = re.compile(r"^[)\].]?\s*(?i:or|and|/|,|&)\s*(?i:option\s*)?\(?([A-Ja-j])\)?(?![A-Za-z0-9])")
_ENGLISH_AFTER_AI = re.compile(r"\s+[a-z]")
_CONNECTIVES = re.compile(r"\s+(?:because|since|as|which|for|with|given|due|—)\b")
_BOLD = re.compile(r"\*\*\s*\(?([A-Ja-j])\)?[.):]?\s*\*\*|\\boxed\{\s*\(?([A-Ja-j])\)?\s*\}")
_OPTION_LINE = re.compile(r"^\s*(?:\(([A-Ja-j])\)|([A-J])([.):]))\s+(\S.*)$")
_LETTER_LINE = re.compile(r"^\s*\(?([A-Ja-j])\)?[.):]?\s*$")


def _clean_line(line: str) -> str:
    return re.sub(r"^[#>\s*\-•]+|[*\s]+$", "", line.replace("**", "")).strip()


def _option_index(text: str, options: Sequence[str]) -> int | None:
    """Index of the option whose normalised text equals *text* (unique), else None."""
    t = _norm_option(text)
    if not t:
        return None
    hits = [i for i, o in enumerate(options) if _norm_option(o) == t]
    return hits[0] if len(hits) == 1 else None


def extract_choice(text: str, options: Sequence[str]) -> str | None:
    """Extract the chosen option letter (``"A"``..``"J"``) from an MC generation.

    Tried in order, after removing think blocks:

    1. the LAST answer statement ("The answer is (C)", "answer: C",
       "Final answer: **B**", "the correct option is (d)"); its letter, or its
       text if that equals an option.  If that statement is malformed,
       out of range or names several letters, the result is ``None``;
    2. bold / boxed letters (``**C**``, ``\\boxed{C}``), if they all agree;
    3. the final non-empty line: ``"C"``, ``"(c)"``, ``"C) text"`` (rejected when
       the output lists several options or the text names another option);
    4. the whole output or its final line equal to one option's text.

    Returns ``None`` when nothing matches or the output is ambiguous.
    """
    n = len(options)
    if n > len(MC_LETTERS):
        raise ValueError(f"at most {len(MC_LETTERS)} options supported, got {n}")
    allowed = MC_LETTERS[: n or len(MC_LETTERS)]

    def ok(letter: str | None) -> str | None:
        if letter is None:
            return None
        letter = letter.upper()
        return letter if letter in allowed else None

    body = strip_think(text)
    if not body:
        return None
    plain = re.sub(r"\\boxed\{([^{}]*)\}|\\text\{([^{}]*)\}", lambda m: m.group(1) or m.group(2) or "", body)
    plain = plain.replace("**", "").replace("$", "")

    # 1. last answer statement
    stmts = list(_ANSWER_STMT.finditer(plain))
    if stmts:
        rest = plain[stmts[-1].end() :]
        m = _LETTER_AFTER.match(rest)
        if m:
            letter = m.group(1) or m.group(2) or m.group(3) or m.group(4)
            after = rest[m.end() :]
            if m.group(3) and letter in "AI" and _ENGLISH_AFTER_AI.match(after) and not _CONNECTIVES.match(after):
                return None  # "the answer is A lot more ..." is English, not a letter
            more = _MORE_LETTERS.match(after)
            if more and more.group(1).upper() != letter.upper():
                return None  # "(A) or (B)"
            return ok(letter)
        first_line = rest.strip().splitlines()[0] if rest.strip() else ""
        idx = _option_index(first_line, options) if options else None
        return allowed[idx] if idx is not None else None

    # 2. bold / boxed letters
    bold = {(a or b).upper() for a, b in _BOLD.findall(body)}
    if len(bold) > 1:
        return None
    if bold:
        return ok(bold.pop())

    # 3. final line
    lines = [_clean_line(ln) for ln in plain.splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        return None
    last = lines[-1]
    m = _LETTER_LINE.match(last)
    if m:
        return ok(m.group(1))
    m = _OPTION_LINE.match(last)
    if m:
        listed = {(mm.group(1) or mm.group(2)).upper() for mm in map(_OPTION_LINE.match, lines) if mm}
        if len(listed) > 1:
            return None  # the output echoes the option list
        letter = (m.group(1) or m.group(2)).upper()
        idx = _option_index(m.group(4), options) if options else None
        if idx is not None and allowed[idx] != letter:
            return None  # "C) <text of option B>"
        if m.group(3) == "." and idx is None:
            return None  # "A. Einstein ..." may be prose; "X." needs the option's own text
        return ok(letter)

    # 4. option text
    for candidate in (plain, last):
        idx = _option_index(candidate, options) if options else None
        if idx is not None:
            return allowed[idx]
    return None
