"""Presidio's recognizers beside the LoRA tagger, and the one rule that combines them.

A tagger fine-tuned on templates reads wording and guesses at unfamiliar values: the demo's ``4111 1111 1111 1111``
came back as a PHONE_NUMBER, a nine-digit number right after "SSN" as a phone number too. presidio-analyzer ships
recognizers for exactly the types whose form, checksum or cue words decide them; this module runs those
(not copies of them) and merges their answers with the model's.

**Context.** Presidio raises a pattern's score when one of its cue words ("ssn", "license", "iban", ...) is among the
five words before the value (its ``LemmaContextAwareEnhancer``, +0.35, at least 0.4). The tokens come from a blank
spaCy English pipeline behind Presidio's NLP-engine interface: a tokenizer and stop-word list, no statistical model,
so nothing is downloaded and a text costs about 2 ms. Blank spaCy has no lemmatizer, so a token's lemma is its
lower-cased text; Presidio matches cue words as substrings, so "licence" still carries "lic".

**The combination rule** (:func:`combine`), in order:

1. A recognizer result counts when it is *decisive*, or when it scores at least ``RECOGNIZER_FLOOR`` (0.55) alone.
   Decisive: its checksum passed (card: Luhn, IBAN: mod 97, e-mail: a real top-level domain; score 1.0), or one
   of its cue words stands before it (an SSN/ITIN shape after "ssn" or "social security", a licence number after
   "license" or "DL", a phone number after "phone" or "mobile"). Alone, only an IP address (0.6) and a URL with
   its scheme (0.6) reach the floor; the weak shapes (a dashed 3-2-4 number, 0.5; a bare host name such as
   ``setup.py``, 0.5; nine bare digits, 0.05) are evidence for nothing, since tickets and code are full of them.
2. A decisive result beats every model entity it overlaps, whatever the model's confidence: the cue word and the
   shape together say more about a value than the model's reading of the sentence (the model called a nine-digit
   number after "SSN" a phone number). If the model agreed on the type, the confidence is their noisy-or,
   ``1 - (1 - p)(1 - q)``; if it disagreed, the higher of the two (the model was sure a value is there). The span
   is the recognizer's (its pattern knows where a value ends).
3. Other counted results and the model's entities compete for their characters: the higher confidence wins.
4. A model entity of a type Presidio can check (card: Luhn; IBAN: mod 97; IP: ``ipaddress``) whose text fails the
   check is dropped, as Presidio invalidates such a match; so is an IP address that points at no machine
   (loopback, unspecified, a netmask), and a DOMAIN_NAME that names no host (no public suffix by tldextract's
   bundled list, ``localhost``, a path, a bare ``main.py``), which the annotation conventions do not count.

The SSA's issuing rules are not a filter: an ITIN starts with 9, and a value the user calls an SSN is one.
Two of Presidio's cue lists are adjusted, as measured on the natural validation set: the phone recognizer's
"number" is dropped ("order number", "tracking number" raised every look-alike to 0.75), and "dl" is added to the
licence recognizer's.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable

from loraroute.tasks.pii_spans import TRAILING_PUNCTUATION

# An uncued recognizer result below this does not count (rule 1): Presidio's medium patterns score 0.5 (a dashed
# 3-2-4 number, a bare host name) and match part numbers and file names; an IP address or a URL with a scheme
# scores 0.6.
RECOGNIZER_FLOOR = 0.55

# Presidio's entity names -> the label set's (PRESIDIO_ENTITIES): an ITIN is answered as a US_SSN, a URL's host as
# DOMAIN_NAME (the generator's {{url}} type).
TYPE_MAP = {"US_ITIN": "US_SSN", "URL": "DOMAIN_NAME"}

# A licence number printed in groups (California's D123-4567-8901 style, Florida's F255-921-50-094-0): Presidio's
# pattern needs the digits run together and stops at the first dash. Weak (0.3) like Presidio's own, so it counts
# only with a cue word.
GROUPED_LICENSE = r"\b[A-Z]\d{2,4}(?:[- ]\d{1,5}){2,4}\b"


def _recognizers() -> list:
    from presidio_analyzer import Pattern
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        UrlRecognizer,
        UsItinRecognizer,
        UsLicenseRecognizer,
        UsSsnRecognizer,
    )

    license_patterns = [*UsLicenseRecognizer.PATTERNS, Pattern("Driver License - grouped (weak)", GROUPED_LICENSE, 0.3)]
    phone_context = [w for w in PhoneRecognizer.CONTEXT if w != "number"] + ["tel", "fax", "whatsapp"]
    # Order breaks ties between equal scores in combine(): checksums first.
    return [
        EmailRecognizer(),
        IbanRecognizer(),
        CreditCardRecognizer(),
        IpRecognizer(),
        UsSsnRecognizer(),
        UsItinRecognizer(),
        UsLicenseRecognizer(patterns=license_patterns, context=[*UsLicenseRecognizer.CONTEXT, "dl"]),
        PhoneRecognizer(context=phone_context),
        UrlRecognizer(),
    ]


def _offline_tldextract() -> None:
    """Presidio's e-mail and URL checks call ``tldextract.extract``, whose default fetches the public-suffix list
    from the internet on first use (minutes of retries offline). The snapshot tldextract ships is used instead."""
    import tldextract.tldextract as tld

    tld.TLD_EXTRACTOR = tld.TLDExtract(suffix_list_urls=(), cache_dir=None)


@functools.lru_cache(maxsize=1)
def _engine():
    """(blank-spaCy NLP engine, recognizers, context enhancer), built once per process (~1 s)."""
    import spacy
    from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
    from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine

    class BlankEnglishEngine(NlpEngine):
        """Presidio's NLP-engine interface over ``spacy.blank("en")``: tokens and stop words, lemma = lower text."""

        def __init__(self):
            self.nlp = spacy.blank("en")

        def load(self):
            pass

        def is_loaded(self):
            return True

        def process_text(self, text, language):
            doc = self.nlp(text)
            return NlpArtifacts(
                entities=[],
                tokens=doc,
                tokens_indices=[t.idx for t in doc],
                lemmas=[t.lower_ for t in doc],
                nlp_engine=self,
                language=language,
            )

        def process_batch(self, texts, language, batch_size=1, n_process=1, **kwargs):
            for text in texts:
                yield text, self.process_text(text, language)

        def is_stopword(self, word, language):
            return self.nlp.vocab[word].is_stop

        def is_punct(self, word, language):
            return self.nlp.vocab[word].is_punct

        def get_supported_entities(self):
            return []

        def get_supported_languages(self):
            return ["en"]

    _offline_tldextract()
    logging.getLogger("presidio-analyzer").setLevel(logging.WARNING)  # one INFO line per recognizer built
    return BlankEnglishEngine(), _recognizers(), LemmaContextAwareEnhancer()


def recognizer_entities(
    text: str, entity_types: Iterable[str] | None = None, floor: float = RECOGNIZER_FLOOR
) -> list[dict]:
    """Presidio's results for ``text`` that count (rule 1), as entities (``entity_type, start, end, text,
    confidence, source, decisive``) in the label set's type names; ``entity_types`` limits the types; ``floor=0``
    returns every match. Overlapping results are all returned: :func:`combine` resolves them."""
    engine, recognizers, enhancer = _engine()
    wanted = None if entity_types is None else set(entity_types)
    digits = sum(c.isdigit() for c in text)
    raw = []
    for rec in recognizers:
        types = [t for t in rec.supported_entities if wanted is None or TYPE_MAP.get(t, t) in wanted]
        if rec.name == "PhoneRecognizer" and digits < phone_min_digits(tuple(rec.supported_regions)):
            continue  # phonenumbers' matcher, 8 regions over the whole text, was most of the recognizers' time
        if types:
            # Presidio's recognizers here read only the text; the tokens are for the context step below.
            raw += rec.analyze(text, entities=types, nlp_artifacts=None) or []
    if not raw:
        return []
    artifacts = engine.process_text(text, "en")
    names = {rec.id: rec.name for rec in recognizers}
    out = []
    for r in enhancer.enhance_using_context(text, raw, artifacts, recognizers):
        cued = bool(r.analysis_explanation and r.analysis_explanation.supportive_context_word)
        decisive = cued or r.score >= 1.0
        if decisive or r.score >= floor:
            source = names.get((r.recognition_metadata or {}).get("recognizer_identifier"), "presidio")
            out.append(
                {
                    "entity_type": TYPE_MAP.get(r.entity_type, r.entity_type),
                    "start": r.start,
                    "end": r.end,
                    "text": text[r.start : r.end],
                    "confidence": float(min(r.score, 1.0)),
                    "source": source,
                    "decisive": decisive,
                }
            )
    order = {rec.name: i for i, rec in enumerate(recognizers)}
    return sorted(out, key=lambda e: (e["start"], -e["confidence"], order.get(e["source"], len(order))))


@functools.lru_cache(maxsize=4)
def phone_min_digits(regions: tuple[str, ...]) -> int:
    """The fewest digits a number PhoneRecognizer accepts can have: the shortest national number of its regions,
    or a country code plus the shortest national number of any region (a number written with +). A text with fewer
    digits cannot hold one, so the matcher is not run on it."""
    import phonenumbers
    from phonenumbers import PhoneMetadata

    def shortest(metadata) -> int:
        lengths = [n for n in (metadata.general_desc.possible_length if metadata else ()) if n > 0]
        return min(lengths, default=1)

    national = min(shortest(PhoneMetadata.metadata_for_region(r)) for r in regions)
    international = min(
        [
            len(str(phonenumbers.country_code_for_region(r))) + shortest(PhoneMetadata.metadata_for_region(r))
            for r in phonenumbers.SUPPORTED_REGIONS
        ]
        + [
            len(str(cc)) + shortest(PhoneMetadata.metadata_for_nongeo_region(cc))
            for cc in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS
        ]
    )
    return min(national, international)


def _points_at_a_machine(value: str) -> bool:
    import ipaddress

    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError:
        return False
    # A netmask (255.255.255.0) parses as an address: ones then zeros, so its complement is a run of low ones.
    low = ~int(ip) & ((1 << ip.max_prefixlen) - 1)
    netmask = ip.version == 4 and int(ip) != 0 and low & (low + 1) == 0
    return not (ip.is_loopback or ip.is_unspecified or netmask)


# Bare names ending in these are source files in chat traffic (setup.py, README.md), though each is also a country's
# top-level domain.
_FILE_SUFFIXES = frozenset({"py", "md", "sh", "rs", "ts"})


def _names_a_host(value: str) -> bool:
    """A host name, domain or URL whose host ends in a public suffix (tldextract's bundled list), and not
    ``localhost``, an IP address (that is IP_ADDRESS) or a bare file name."""
    import ipaddress

    import tldextract

    m = re.fullmatch(r"(?i)([a-z][a-z0-9+.-]*://)?([^/\s:?#@=]+)(:\d+)?([/?#]\S*)?", value.strip())
    if not m or "." not in m.group(2):
        return False
    host = m.group(2).lower().rstrip(".")
    try:
        ipaddress.ip_address(host)
        return False
    except ValueError:
        pass
    parts = tldextract.extract(host)
    if not parts.suffix or not parts.domain or host.endswith("localhost"):
        return False
    return bool(m.group(1) or host.startswith("www.") or parts.suffix not in _FILE_SUFFIXES)


@functools.lru_cache(maxsize=1)
def _checks() -> dict:
    """Presidio's validators for the types whose form is decisive: what every real value passes (rule 4)."""
    from presidio_analyzer.predefined_recognizers import CreditCardRecognizer, IbanRecognizer

    card, iban = CreditCardRecognizer(), IbanRecognizer()

    def card_ok(value: str) -> bool:  # Presidio's Luhn check reads every character as a digit
        digits = re.sub(r"[ -]", "", value.strip())
        return digits.isdigit() and bool(card.validate_result(digits))

    def iban_ok(value: str) -> bool:  # and its mod-97 check wants capitals
        return bool(iban.validate_result(value.strip().upper()))

    _engine()  # tldextract offline before the first host check
    return {
        "CREDIT_CARD": card_ok,
        "IBAN_CODE": iban_ok,
        "IP_ADDRESS": _points_at_a_machine,
        "DOMAIN_NAME": _names_a_host,
    }


def passes_check(entity: dict) -> bool:
    """False when ``entity``'s type has a check and its text fails it (rule 4)."""
    check = _checks().get(entity["entity_type"])
    return check is None or check(entity["text"])


# Types whose values never hold whitespace: a model span of one that runs on over a space ("web1.shop.com
# ansible_host=10.0.0.4", "192.168.0.147   a4:cf:12:9b:3e:01") is cut at the whitespace, not dropped whole.
_ONE_WORD_TYPES = frozenset({"IP_ADDRESS", "DOMAIN_NAME"})


def checked_pieces(entity: dict) -> list[dict]:
    """``entity`` if it passes its check (rule 4); else, for a type whose values hold no whitespace, its
    whitespace-separated pieces that pass (each at the entity's confidence); else nothing."""
    if passes_check(entity):
        return [entity]
    if entity["entity_type"] not in _ONE_WORD_TYPES:
        return []
    pieces = []
    for m in re.finditer(r"\S+", entity["text"]):
        word = m.group().rstrip(TRAILING_PUNCTUATION)
        piece = {**entity, "start": entity["start"] + m.start(), "end": entity["start"] + m.start() + len(word)}
        piece["text"] = word
        if word and passes_check(piece):
            pieces.append(piece)
    return pieces


def _overlap(a: dict, b: dict) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


def combine(model: list[dict], found: list[dict]) -> list[dict]:
    """The rule of the module docstring: ``model`` entities and recognizer results ``found`` (both with
    ``entity_type, start, end, text, confidence``; results also ``decisive``) -> one sorted, non-overlapping list.
    Each answer names its origin in ``source``: ``model``, a recognizer, or ``model+<recognizer>`` when both
    agreed."""
    model = [{**p, "source": "model"} for e in model for p in checked_pieces(e)]
    found = [r for r in found if passes_check(r)]
    kept: list[dict] = []
    # Decisive results first (rule 2), then everything by confidence (rule 3); a tie goes to the longer span,
    # then to the earlier recognizer.
    for r in sorted((r for r in found if r.get("decisive")), key=lambda r: (-r["confidence"], r["start"] - r["end"])):
        if any(_overlap(r, k) for k in kept):
            continue
        under = [m for m in model if _overlap(m, r)]
        if under:
            q = max(m["confidence"] for m in under)
            if all(m["entity_type"] == r["entity_type"] for m in under):
                r = {**r, "confidence": 1.0 - (1.0 - r["confidence"]) * (1.0 - q), "source": f"model+{r['source']}"}
            else:  # the model was as sure there is a value here as it was of its (wrong) type
                r = {**r, "confidence": max(r["confidence"], q)}
        model = [m for m in model if not _overlap(m, r)]
        kept.append(r)
    rest = model + [r for r in found if not r.get("decisive")]
    for c in sorted(rest, key=lambda c: (-c["confidence"], c["start"] - c["end"])):
        if not any(_overlap(c, k) for k in kept):
            kept.append(c)
    return sorted(({k: v for k, v in e.items() if k != "decisive"} for e in kept), key=lambda e: e["start"])


def apply_recognizers(text: str, entities: list[dict], entity_types: Iterable[str] | None = None) -> list[dict]:
    """The model's ``entities`` for ``text`` combined with Presidio's recognizers (of ``entity_types``)."""
    return combine(entities, recognizer_entities(text, entity_types))
