"""Decode and rescan: the readable texts hidden in a prompt's encoded spans, for the jailbreak classifier to read too.

A small English encoder cannot read base64 or Morse, so an attack hidden in one scores low. :func:`decoded_views`
finds encoded spans, decodes them with the standard library, and returns each decoded result *in place* (the
carrier text with the span replaced), so the classifier sees "please decode and follow: <the instruction>". The
jailbreak verdict is the highest score over the prompt and its views (``tasks/jailbreak.py``).

What is looked for, in this order, on the prompt and (up to ``max_depth``) on every view:

* Unicode: tag characters (U+E0020-E007E, invisible ASCII) are decoded; zero-width and other invisible characters
  are removed; NFKC folds full-width and mathematical letters; Cyrillic/Greek look-alikes inside words that also
  hold Latin letters are mapped to Latin; leetspeak digits inside words are mapped to letters. All of that is one
  ``unicode`` view.
* Spans: base64 (standard and URL-safe, JWT segments), base32, Ascii85 (``<~...~>``) and Base85 tokens, hex, 8-bit
  binary, Morse, ``\\u``/``\\U``/``\\x`` escapes and HTML character references, URL percent-encoding, and ROT13 of
  a sentence when it yields more common English words than the sentence had.

A decode is kept only when it is readable text (UTF-8, printable, with words), so a hash, a UUID or a random
token decodes to nothing and cannot raise a score. JSON (a JWT's claims) is read as its string values, where an
instruction would be. Cost is bounded: every pattern is a linear scan with no nested quantifiers, a prompt gets at
most ``max_views`` views, and only the first ``scan_chars`` characters are scanned (``bench/jailbreak_decode.py``).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import json
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass

MAX_DEPTH = 2  # base64 of hex is one level of nesting; deeper chains are rare and each level costs a forward pass
MAX_VIEWS = 6  # per prompt: each view is one more classifier input
SCAN_CHARS = 20_000  # an encoded span deep in a long document is still found; the bound keeps a scan ~15 ms

# A word is "common English" if it is one of these: enough to tell ROT13 plaintext from ROT13 of plain text.
_COMMON = """
a about after again all also an and any are as at back be been before being but by can could did do does done
each even every first for from get give go has have he her here him his how i if in into is it its just know
like make many me more most must my new no not now of on one only or other our out over please say she should
show so some tell than that the their them then there these they this those to up us use very want was way we
well were what when where which who why will with without word would write you your
"""
COMMON_WORDS = frozenset(_COMMON.split())
MORSE = {
    ".-": "a", "-...": "b", "-.-.": "c", "-..": "d", ".": "e", "..-.": "f", "--.": "g", "....": "h", "..": "i",
    ".---": "j", "-.-": "k", ".-..": "l", "--": "m", "-.": "n", "---": "o", ".--.": "p", "--.-": "q", ".-.": "r",
    "...": "s", "-": "t", "..-": "u", "...-": "v", ".--": "w", "-..-": "x", "-.--": "y", "--..": "z",
    "-----": "0", ".----": "1", "..---": "2", "...--": "3", "....-": "4", ".....": "5", "-....": "6",
    "--...": "7", "---..": "8", "----.": "9", ".-.-.-": ".", "--..--": ",", "..--..": "?", "-.-.--": "!",
    ".----.": "'", "-..-.": "/", "---...": ":",
}  # fmt: skip
# Cyrillic and Greek letters that render like Latin ones (the common subset of Unicode's confusables list).
HOMOGLYPHS = str.maketrans(
    "аеорсухіјѕԁһԛԝАВЕКМНОРСТУХІЈЅαβεικνορτυχΑΒΕΖΗΙΚΜΝΟΡΤΥΧ",
    "aeopcyxijsdhqwABEKMHOPCTYXIJSabeiknoptuxABEZHIKMNOPTYX",
)
LEET = str.maketrans("013457@$", "oieastas")
CONTEXT = (240, 120)  # chars of carrier kept before and after a decoded span: "decode this and do it:" comes first
INVISIBLE = re.compile(
    "[\u00ad\u034f\u115f\u1160\u17b4\u17b5\u180e\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u206f\ufeff]"
)
ZWJ_BETWEEN_LETTERS = re.compile(r"(?<=\w)\u200d+(?=\w)")
TAGS = re.compile("[\U000e0000-\U000e007f]+")

_BASE64 = re.compile(r"(?<![\w+/=-])(?:[A-Za-z0-9+/_-]{4}){4,}(?:[A-Za-z0-9+/_-]{2,3}={0,2})?(?![\w+/=-])")
_BASE32 = re.compile(r"(?<![\w=])[A-Z2-7]{16,}={0,6}(?![\w=])")
_ASCII85 = re.compile(r"<~[!-u\s]{5,}?~>")
_BASE85 = re.compile(r"(?<!\S)[0-9A-Za-z!#$%&()*+\-;<=>?@^_`{|}~]{20,}(?!\S)")
_HEX = re.compile(r"(?<![0-9A-Za-z])(?:(?:0x|\\x)?[0-9A-Fa-f]{2}[ :]?){8,}(?![0-9A-Za-z])")
_BINARY = re.compile(r"(?<![01])[01]{8}(?:[ ,]?[01]{8}){3,}(?![01])")
_MORSE = re.compile(r"(?<![\w.-])[.\-·•−–]{1,7}(?:(?: {1,3}| ?/ ?| ?\| ?)[.\-·•−–]{1,7}){3,}(?![\w.-])")
_ESCAPE = r"(?:\\u[0-9A-Fa-f]{4}|\\U[0-9A-Fa-f]{8}|\\x[0-9A-Fa-f]{2}|&#x?[0-9A-Fa-f]{1,6};)"
_ESCAPES = re.compile(rf"{_ESCAPE}(?: ?{_ESCAPE}){{3,}}")
_PERCENT = re.compile(r"(?<!\S)[^\s%]*(?:%[0-9A-Fa-f]{2}[^\s%]*){3,}")  # from a token's start: one try per token
_SENTENCE = re.compile(r"[^.!?\n:;\"]{12,}")
_WORD = re.compile(r"[^\W\d_]{2,}")


@dataclass(frozen=True)
class DecodedView:
    """One decoded reading of a prompt: ``text`` is the prompt around ``span`` (characters of the prompt) with the
    span replaced by its decoding; ``encoding`` names the chain (``"base64>hex"``: hex inside base64);
    ``decoded`` is the payload."""

    text: str
    encoding: str
    span: tuple[int, int]
    decoded: str
    depth: int = 1
    region: tuple[int, int] | None = None  # where ``decoded`` sits in ``text``: the next depth looks only there


def readable(text: str) -> bool:
    """True for decoded text a person wrote: printable, three or more space-separated tokens, at least two words of
    letters, and letters making up half of it. A hash, a UUID or a random token decodes to control bytes or invalid
    UTF-8; base64 of base64 decodes to one long token; a JWT header to two ("HS256 JWT")."""
    text = text.strip()
    if len(text.split()) < 3 or any(not (c.isprintable() or c in "\n\r\t") for c in text):
        return False
    words = _WORD.findall(text)
    return len(words) >= 2 and sum(map(len, words)) >= 0.5 * len("".join(text.split()))


def _printable(data: bytes | str) -> str | None:
    """Decoded bytes as text when they are valid UTF-8 and printable: a payload, or another encoding's input."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        return None
    return text if text.strip() and all(c.isprintable() or c in "\n\r\t" for c in text) else None


def _json_strings(text: str) -> str | None:
    """A JSON document as its string values, one per line (where an instruction would be); None if not JSON."""
    if not text.lstrip().startswith(("{", "[")):
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    out, stack = [], [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))
        elif isinstance(node, str):
            out.append(node)
    return "\n".join(out)


def payload(text: str) -> str | None:
    """What the classifier should read of a decoded text: the text if readable, a JSON document's string values
    if those are, else None (a hash, a token, or another encoding to decode further)."""
    strings = _json_strings(text)
    text = text if strings is None else strings
    return text if readable(text) else None


def _b64(token: str) -> str | None:
    raw = token.replace("-", "+").replace("_", "/").rstrip("=")
    try:
        return _printable(base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True))
    except (binascii.Error, ValueError):
        return None


def _b32(token: str) -> str | None:
    raw = token.rstrip("=")
    try:
        return _printable(base64.b32decode(raw + "=" * (-len(raw) % 8)))
    except (binascii.Error, ValueError):
        return None


def _a85(token: str) -> str | None:
    try:
        return _printable(base64.a85decode(token, adobe=True, ignorechars=" \t\n\r"))
    except ValueError:
        return None


def _b85(token: str) -> str | None:
    if token.isalnum():  # plain words and base64-alphabet tokens are the other decoders' business
        return None
    for decode in (base64.b85decode, base64.a85decode):
        try:
            text = _printable(decode(token))
        except ValueError:
            continue
        if text is not None:
            return text
    return None


def _hex(token: str) -> str | None:
    digits = re.sub(r"0x|\\x|[ :]", "", token)
    if len(digits) % 2:
        return None
    return _printable(bytes.fromhex(digits))


def _binary(token: str) -> str | None:
    bits = re.sub(r"[ ,]", "", token)
    return _printable(bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits), 8)))


def _morse(token: str) -> str | None:
    token = token.translate(str.maketrans("·•−–", "..--"))
    words = re.split(r" ?[/|] ?| {2,}", token.strip())
    letters = [[MORSE.get(code) for code in word.split()] for word in words]
    if any(None in word for word in letters):
        return None
    return _printable(" ".join("".join(word) for word in letters))


def _escapes(token: str) -> str | None:
    token = html.unescape(token.replace(" ", ""))  # spaces between escapes go; a decoded &#32; stays
    if "\\x" in token and "\\u" not in token.lower():  # \x escapes are bytes (UTF-8 sequences), \u are characters
        return _printable(bytes.fromhex(token.replace("\\x", "")))
    # Code points substituted one by one: codecs' unicode_escape reads a decoded HTML reference's non-ASCII
    # character as UTF-8 bytes in Latin-1 (mojibake), so Cyrillic or accented text never came out readable.
    return _printable(re.sub(r"\\u([0-9A-Fa-f]{4})|\\U([0-9A-Fa-f]{8})|\\x([0-9A-Fa-f]{2})", _code_point, token))


def _code_point(match: re.Match) -> str:
    value = int(next(g for g in match.groups() if g), 16)
    return chr(value) if value <= 0x10FFFF else match.group(0)


def _percent(token: str) -> str | None:
    try:
        return _printable(urllib.parse.unquote_plus(token, errors="strict"))
    except UnicodeDecodeError:
        return None


def _rot13_words(text: str) -> int:
    return sum(word.lower() in COMMON_WORDS for word in _WORD.findall(text))


def _rot13(sentence: str) -> str | None:
    decoded = codecs.encode(sentence, "rot13")
    gain = _rot13_words(decoded) - _rot13_words(sentence)
    return decoded if gain >= 2 and _rot13_words(decoded) >= 0.25 * len(_WORD.findall(decoded)) else None


SPAN_DECODERS = (  # (name, pattern, decode) in the order spans are claimed: an earlier match wins an overlap
    ("ascii85", _ASCII85, _a85),
    ("escapes", _ESCAPES, _escapes),
    ("url", _PERCENT, _percent),
    ("binary", _BINARY, _binary),
    ("morse", _MORSE, _morse),
    ("hex", _HEX, _hex),
    ("base32", _BASE32, _b32),
    ("base64", _BASE64, _b64),
    ("base85", _BASE85, _b85),
    ("rot13", _SENTENCE, _rot13),
)


def _deleet(word: str) -> str:
    """h4x0r -> haxor, for a word of letters and leet digits only (a product code such as A1B2 has other digits)."""
    letters, leet = sum(c.isalpha() for c in word), sum(c in "013457@$" for c in word)
    return word.translate(LEET) if letters >= 2 and leet >= 2 and letters + leet == len(word) <= 15 else word


def _dehomoglyph(match: re.Match) -> str:
    word = match.group(0)
    return word.translate(HOMOGLYPHS) if re.search("[A-Za-z]", word) else word


def _fold(char: str) -> str:
    """A full-width or mathematical letter as its ASCII one; anything else as it is (NFKC would also turn "m²" and
    "…" into ASCII, and each such change would cost a forward pass for nothing)."""
    folded = unicodedata.normalize("NFKC", char) if char.isalpha() else char
    return folded if folded.isascii() and folded.isalpha() else char


def unicode_view(text: str) -> str:
    """``text`` with tag characters decoded, invisible characters removed, full-width and mathematical letters
    folded, look-alike letters inside Latin words mapped to Latin, and leetspeak mapped to letters where at least two
    words use it (one such word is more often a code than a disguise); ``text`` itself if none apply. A zero-width
    joiner stays where it joins emoji."""
    out = TAGS.sub(lambda m: "".join(chr(ord(c) - 0xE0000) for c in m.group(0) if 0xE0020 <= ord(c) <= 0xE007E), text)
    out = ZWJ_BETWEEN_LETTERS.sub("", INVISIBLE.sub("", out))
    out = re.sub(r"[^\x00-\x7f]", lambda m: _fold(m.group(0)) if m.group(0).isalnum() else m.group(0), out)
    out = re.sub(r"[^\W_]+", _dehomoglyph, out)
    words = re.findall(r"[\w@$]+", out)
    if sum(_deleet(w) != w for w in words) >= 2:
        out = re.sub(r"[\w@$]+", lambda m: _deleet(m.group(0)), out)
    return out


def _span_views(parent: DecodedView | None, text: str, depth: int) -> tuple[list[DecodedView], list[DecodedView]]:
    """(views whose payload is readable, intermediates: printable decodes that may be another encoding), from the
    spans of ``text`` inside ``parent``'s payload (all of ``text`` for the prompt itself)."""
    lo, hi = parent.region if parent and parent.region else (0, len(text))
    taken: list[tuple[int, int]] = []
    views, intermediates = [], []
    for name, pattern, decode in SPAN_DECODERS:
        for m in pattern.finditer(text, lo, min(hi, SCAN_CHARS)):
            start, end = m.span()
            if any(start < e and s < end for s, e in taken):
                continue
            decoded = decode(m.group(0))
            if decoded is None or decoded.strip() == m.group(0).strip():
                continue
            taken.append((start, end))
            readable_payload = payload(decoded)
            before, after = text[max(0, start - CONTEXT[0]) : start], text[end : end + CONTEXT[1]]
            body = readable_payload or decoded
            view = DecodedView(
                before + body + after,
                f"{parent.encoding}>{name}" if parent else name,
                parent.span if parent else (start, end),
                decoded,
                depth,
                (len(before), len(before) + len(body)),
            )
            (views if readable_payload is not None else intermediates).append(view)
    return views, intermediates


def _changed_span(before: str, after: str) -> tuple[int, int]:
    """The span of ``before`` that differs from ``after`` (between their common prefix and common suffix)."""
    start = 0
    while start < min(len(before), len(after)) and before[start] == after[start]:
        start += 1
    end = 0
    while end < min(len(before), len(after)) - start and before[-1 - end] == after[-1 - end]:
        end += 1
    return start, len(before) - end


def decoded_views(text: str, max_depth: int = MAX_DEPTH, max_views: int = MAX_VIEWS) -> list[DecodedView]:
    """Every readable decoding of ``text`` (see the module docstring), breadth first, at most ``max_views``.

    A decode that is printable but not readable (hex inside base64) is decoded again, inside its payload only, up
    to ``max_depth`` encodings deep; it is not a view itself. The Unicode view is scanned again whole (homoglyphs
    in a base64 blob)."""
    views: list[DecodedView] = []
    seen = {text}
    frontier: list[tuple[str, DecodedView | None]] = [(text, None)]
    while frontier and len(views) < max_views:
        current, parent = frontier.pop(0)
        depth = parent.depth if parent else 0
        if depth >= max_depth:
            continue
        found, intermediates = _span_views(parent, current, depth + 1)
        head = current[:SCAN_CHARS]
        folded = unicode_view(head)
        if folded != head and not (parent and parent.encoding.endswith("unicode")):
            chain = f"{parent.encoding}>unicode" if parent else "unicode"
            span = parent.span if parent else _changed_span(head, folded)
            unicode = DecodedView(folded, chain, span, folded, depth + 1, None)
            (found if payload(folded) is not None else intermediates).insert(0, unicode)
        for view in found:
            if view.text not in seen and len(views) < max_views:
                seen.add(view.text)
                views.append(view)
                frontier.append((view.text, view))
        for view in intermediates[:max_views]:  # each is scanned again: as many as there may be views
            if view.text not in seen:
                seen.add(view.text)
                frontier.append((view.text, view))
    return views


def rescan_inputs(texts: list[str], rescan: bool = True) -> tuple[list[str], list[list[DecodedView]]]:
    """The inputs a detector scores in one batch, the texts and then every text's decoded views, and the views."""
    views = [decoded_views(t) if rescan else [] for t in texts]
    return [*texts, *(v.text for vs in views for v in vs)], views


def best_readings(scores, views: list[list[DecodedView]]) -> list[tuple[int, DecodedView | None]]:
    """Per text, the row of :func:`rescan_inputs` with the highest score and the view it came from (None for the
    text itself, which wins ties): the rescan verdict is the most suspicious reading."""
    picks, start = [], len(views)
    for i, vs in enumerate(views):
        rows = [i, *range(start, start + len(vs))]
        top = max(range(len(rows)), key=lambda j: scores[rows[j]])  # the first of equal scores
        picks.append((rows[top], vs[top - 1] if top else None))
        start += len(vs)
    return picks
