"""Presidio-style pattern recognizers: values whose form (and checksum) defines their type.

A tagger fine-tuned on templates reads context and guesses at unfamiliar layouts: the demo's ``4111 1111 1111 1111``
came back as a PHONE_NUMBER, an IP inside ``?%20|1.2.3.4|%20`` as nothing. Presidio pairs its NER model with
pattern recognizers for exactly these types, and so does this module: a regular expression finds candidates, a
validator (Luhn, ISO 13616 mod-97, ``ipaddress``, SSA issuing rules) keeps the real ones, and
:func:`apply_patterns` lets a validated value replace whatever the model tagged over it.

Only types whose form is decisive are here. Phone numbers, dates and postcodes share digit shapes, so the model
decides those.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Callable, Iterable

# Confidence of a validated match: the value passed its format and, where one exists, its checksum.
PATTERN_CONFIDENCE = 1.0


def luhn_valid(value: str) -> bool:
    """ISO/IEC 7812 check digit, as every payment card number carries."""
    digits = [int(c) for c in value if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return bool(digits) and total % 10 == 0


def iban_valid(value: str) -> bool:
    """ISO 13616: move the country code and check digits to the end, letters to 10..35; the number mod 97 is 1."""
    s = re.sub(r"\s", "", value).upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", s):
        return False
    return int("".join(str(int(c, 36)) for c in s[4:] + s[:4])) % 97 == 1


def ssn_valid(value: str) -> bool:
    """A number the SSA issues: area not 000, 666 or 900-999; group not 00; serial not 0000."""
    area, group, serial = re.split(r"[- ]", value)
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def card_valid(value: str, min_digits: int = 13) -> bool:
    """Luhn-valid with 13-19 digits, Presidio's range (Maestro also issues 12: ``min_digits=12``)."""
    return min_digits <= sum(c.isdigit() for c in value) <= 19 and luhn_valid(value)


def ip_valid(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class PatternRecognizer:
    entity_type: str
    pattern: re.Pattern
    validate: Callable[[str], bool] = lambda value: True


# Lookarounds keep a match from starting or ending inside a longer run of the same characters.
RECOGNIZERS: tuple[PatternRecognizer, ...] = (
    PatternRecognizer("EMAIL_ADDRESS", re.compile(
        r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")),
    # Country code, check digits, then 11-30 letters or digits: run together, or printed in groups of four.
    # Before cards: an IBAN's digits can pass Luhn.
    PatternRecognizer("IBAN_CODE", re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:[A-Za-z0-9]{11,30}|"
                                              r"(?: [A-Za-z0-9]{4}){2,7}(?: [A-Za-z0-9]{1,4})?)(?![A-Za-z0-9])"),
                      iban_valid),
    # 13-19 digits, optionally grouped by spaces or dashes; issuers' first digits are 2-6 (Mastercard 2-series and
    # 5, Amex/Diners/JCB 3, Visa 4, Discover/Maestro 6).
    PatternRecognizer("CREDIT_CARD", re.compile(r"(?<![\w+-])[2-6]\d{0,3}(?:[ -]?\d{1,4}){3,5}(?![\w-])"),
                      card_valid),
    PatternRecognizer("IP_ADDRESS", re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d]|\.\d)"), ip_valid),
    PatternRecognizer("IP_ADDRESS", re.compile(r"(?<![\w:])(?=[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:)[0-9A-Fa-f:]{2,39}"
                                               r"(?![\w:])"), ip_valid),
    PatternRecognizer("US_SSN", re.compile(r"(?<![\d-])\d{3}([- ])\d{2}\1\d{4}(?![\d-])"), ssn_valid),
)


# What every real value of these types passes, so a model entity that fails it is a false alarm and is dropped (as
# Presidio invalidates a card number that fails Luhn): a 4-digit postcode the model read as a card, or as an SSN.
MODEL_CHECKS: dict[str, Callable[[str], bool]] = {
    "CREDIT_CARD": lambda value: card_valid(value, min_digits=12), "IBAN_CODE": iban_valid, "IP_ADDRESS": ip_valid,
    "US_SSN": lambda value: sum(c.isdigit() for c in value) == 9,
}


def _candidates(value: str) -> Iterable[int]:
    """Lengths to try, longest first: the whole match, then each prefix ending before a space or dash (a
    greedy match may have taken the next word: ``GB33BUKB20201555555555 for``)."""
    yield len(value)
    for i in range(len(value) - 1, 0, -1):
        if value[i] in " -" and value[i - 1] not in " -":
            yield i


def pattern_entities(text: str, entity_types: Iterable[str] | None = None) -> list[dict]:
    """Validated matches in ``text`` as entities (``entity_type, start, end, text, confidence``), sorted and
    non-overlapping (the earlier recognizer in ``RECOGNIZERS`` wins a tie). ``entity_types`` limits the types."""
    wanted = None if entity_types is None else set(entity_types)
    found: list[dict] = []
    for rec in RECOGNIZERS:
        if wanted is not None and rec.entity_type not in wanted:
            continue
        for m in rec.pattern.finditer(text):
            for n in _candidates(m.group()):
                value = m.group()[:n]
                if rec.pattern.fullmatch(value) and rec.validate(value):
                    s, e = m.start(), m.start() + n
                    if not any(f["start"] < e and s < f["end"] for f in found):
                        found.append({"entity_type": rec.entity_type, "start": s, "end": e, "text": value,
                                      "confidence": PATTERN_CONFIDENCE})
                    break
    return sorted(found, key=lambda f: f["start"])


def apply_patterns(text: str, entities: list[dict], entity_types: Iterable[str] | None = None) -> list[dict]:
    """The model's ``entities`` with every validated pattern match added. A model entity overlapping a match is
    dropped, since a checksum is better evidence about a value than context is, and so is one of a
    ``MODEL_CHECKS`` type whose text fails the check."""
    found = pattern_entities(text, entity_types)
    kept = [e for e in entities if not any(f["start"] < e["end"] and e["start"] < f["end"] for f in found)
            and (e["entity_type"] not in MODEL_CHECKS or MODEL_CHECKS[e["entity_type"]](e["text"]))]
    return sorted(kept + found, key=lambda e: e["start"])
