"""PII span data: the offline generator, span validation, entity filtering and balanced sampling.

Every source returns records ``{"text": str, "spans": [{"entity_type", "start", "end"}, ...]
(sorted, non-overlapping, end exclusive), "template_id": str | None, "source": str}``.

* :func:`generate_presidio_records` -- offline default: presidio-evaluator's
  ``PresidioSentenceFaker`` (its ~210 shipped templates, fake-person table and Faker providers),
  seeded, with addresses rewritten to the annotation conventions (:func:`split_address_spans`).
* The hand-written chat-message sets load through :mod:`loraroute.data.pii_natural`.
* Chat-traffic training data (requests carrying PII, look-alikes) lives in :mod:`loraroute.data.pii_chat`.
* Presidio JSON, ai4privacy and generic JSONL loaders live in :mod:`loraroute.data.pii_sources`.

Template-disjoint splits use :func:`loraroute.data.splits.split_records` with
``group_key="template_id"`` (records without a template are their own group).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import itertools
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from loraroute.data.sources import DataError

# The 17 types presidio-evaluator's generator emits: PresidioSentenceFaker.ENTITY_TYPE_MAPPING
# applied to the placeholders of its shipped templates.txt (GPE = city/state/country,
# STREET_ADDRESS = street address or parts incl. postcode, DOMAIN_NAME = {{url}}, TITLE = prefix
# or job, NRP = nationality).  Sorted: bio_labels(PRESIDIO_ENTITIES) = O + 17 x (B, I) = 35 labels.
PRESIDIO_ENTITIES: list[str] = sorted(
    [
        "AGE",
        "CREDIT_CARD",
        "DATE_TIME",
        "DOMAIN_NAME",
        "EMAIL_ADDRESS",
        "GPE",
        "IBAN_CODE",
        "IP_ADDRESS",
        "NRP",
        "ORGANIZATION",
        "PERSON",
        "PHONE_NUMBER",
        "STREET_ADDRESS",
        "TITLE",
        "US_DRIVER_LICENSE",
        "US_SSN",
        "ZIP_CODE",
    ]
)

_MISSING_FIELD = re.compile(r"\bnan\b")

# Presidio annotates a full name or street address as one entity; generator and ai4privacy pieces get joined.
_MERGE_ADJACENT = {"PERSON", "STREET_ADDRESS"}

Record = dict[str, Any]


# ----------------------------------------------------------------------------- validation


def validate_record(rec: Record, where: str) -> Record:
    """Check one record; a problem raises :class:`DataError` naming ``where`` and the field.

    Text is a string; each span has an entity_type and integer ``0 <= start < end <= len(text)``,
    covers more than whitespace, and its ``entity_value`` (if any) equals ``text[start:end]``;
    spans do not overlap.  Returns the record with spans sorted by start.
    """
    text, spans = rec.get("text"), rec.get("spans")
    for name, v, kind in (("text", text, str), ("spans", spans, list)):
        if not isinstance(v, kind):
            raise DataError(f"{where}: field '{name}' must be a {kind.__name__}, got {v!r:.80}")
    for i, sp in enumerate(spans):
        at = f"{where}: spans[{i}]"
        if not isinstance(sp, dict) or not isinstance(sp.get("entity_type"), str) or not sp["entity_type"]:
            raise DataError(f"{at}: field 'entity_type' missing or empty")
        s, e = sp.get("start"), sp.get("end")
        for name, v in (("start", s), ("end", e)):
            if type(v) is not int:
                raise DataError(f"{at}: field '{name}' must be an integer, got {v!r}")
        if not 0 <= s < e <= len(text):
            raise DataError(
                f"{at}: fields 'start'/'end' ({s}, {e}) must satisfy 0 <= start < end <= len(text)={len(text)}"
            )
        if not text[s:e].strip():
            raise DataError(f"{at}: span ({s}, {e}) covers only whitespace")
        val = sp.get("entity_value")
        if val is not None and val != text[s:e]:
            raise DataError(f"{at}: field 'entity_value' {val!r} != text[{s}:{e}] {text[s:e]!r}")
    ordered = sorted(spans, key=lambda sp: (sp["start"], sp["end"]))
    for a, b in itertools.pairwise(ordered):
        if b["start"] < a["end"]:
            raise DataError(
                f"{where}: field 'spans': spans overlap: {a['entity_type']}"
                f"({a['start']}, {a['end']}) and {b['entity_type']}({b['start']}, {b['end']})"
            )
    rec["spans"] = ordered
    return rec


def _record(text: str, spans: list[dict], template_id: Any, source: str) -> Record:
    return {
        "text": text,
        "spans": [{k: sp[k] for k in ("entity_type", "start", "end")} for sp in spans],
        "template_id": None if template_id is None else str(template_id),
        "source": source,
    }


def _merge_adjacent(text: str, spans: list[dict], types_: set[str]) -> list[dict]:
    """Join same-type spans (of ``types_``) separated only by whitespace."""
    merged: list[dict] = []
    for sp in sorted(spans, key=lambda x: x["start"]):
        prev = merged[-1] if merged else None
        if (
            prev
            and prev["entity_type"] == sp["entity_type"] in types_
            and prev["end"] <= sp["start"]
            and not text[prev["end"] : sp["start"]].strip()
        ):
            prev["end"] = sp["end"]
            prev.pop("entity_value", None)
        else:
            merged.append(dict(sp))
    return merged


# ----------------------------------------------------------------------------- generator


def _import_sentence_faker():
    """``PresidioSentenceFaker``; its package imports spaCy, presidio-analyzer/-anonymizer and python-dotenv, which
    are dependencies of loraroute (presidio-evaluator itself goes in with ``--no-deps``: it pins old releases)."""
    if importlib.util.find_spec("presidio_evaluator") is None:
        raise ImportError("the PII generator needs presidio-evaluator: pip install --no-deps presidio-evaluator")
    from presidio_evaluator.data_generator.presidio_sentence_faker import PresidioSentenceFaker

    return PresidioSentenceFaker


_FIXED_NOW = 1735689600  # 2025-01-01T00:00:00Z


def _offline_providers(psf_mod) -> list:
    """Upstream providers minus HospitalProvider (queries WikiData when built; no template uses
    it), plus Faker dates with a fixed "now" (the default wall clock breaks determinism)."""
    from faker.providers.date_time import Provider as DateTimeProvider

    class FixedNowDateTimeProvider(DateTimeProvider):
        @classmethod
        def _parse_end_datetime(cls, value):
            return _FIXED_NOW if value is None else super()._parse_end_datetime(value)

    return [p for p in psf_mod.presidio_additional_entity_providers if p.__name__ != "HospitalProvider"] + [
        FixedNowDateTimeProvider
    ]


@contextlib.contextmanager
def _seeded_global_rngs(seed: int):
    """Seed the global ``random``, numpy and Faker's shared RNG (upstream draws from all three);
    restore the caller's states on exit."""
    import faker.generator as fg
    import numpy as np

    saved = random.getstate(), np.random.get_state(), fg.random.getstate()
    random.seed(seed)
    np.random.seed(seed)
    fg.random.seed(seed)
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        fg.random.setstate(saved[2])


@functools.lru_cache(maxsize=1)
def _person_records() -> list[dict]:
    """Upstream's fake-person table (~1.5 s of pandas), built once per process, seeded."""
    from presidio_evaluator.data_generator.faker_extensions.datasets import load_fake_person_df

    with _seeded_global_rngs(0):
        return load_fake_person_df().to_dict(orient="records")


def _template_types(template: str, psf_cls) -> set[str]:
    names = re.findall(r"{{\s*(\w+)", psf_cls._preprocess_template(template))
    return {psf_cls.ENTITY_TYPE_MAPPING.get(n, n.upper()) for n in names}


def _read_templates(psf_mod) -> list[str]:
    # templates.txt writes line breaks as a literal backslash-n: make them real newlines
    return [line.strip().replace("\\n", "\n") for line in psf_mod.presidio_templates_file_path.read_text().splitlines()]


def presidio_template_types() -> dict[str, set[str]]:
    """``{template_id: entity types its placeholders produce}`` for the shipped templates."""
    psf_cls = _import_sentence_faker()
    from presidio_evaluator.data_generator import presidio_sentence_faker as psf_mod

    return {f"presidio:{i}": _template_types(t, psf_cls) for i, t in enumerate(_read_templates(psf_mod)) if t}


def generate_presidio_records(
    n: int,
    seed: int = 0,
    entities: list[str] | None = None,
    lower_case_ratio: float = 0.05,
    locale: str = "en_US",
    merge_adjacent: bool = True,
    split_addresses: bool = True,
) -> list[Record]:
    """``n`` sentences: presidio-evaluator templates filled by its fake-identity generator.

    Deterministic per ``seed``; global RNG states are restored.  ``entities`` keeps only templates
    whose placeholders all map into that set (no unlabelled PII of other types in the text).
    ``template_id`` = ``"presidio:<line in templates.txt>"``.  A ``lower_case_ratio`` share of
    texts is lower-cased (upstream lower-cases values only).  ``merge_adjacent`` joins
    whitespace-separated PERSON / STREET_ADDRESS placeholders (``{{first_name}} {{last_name}}``)
    into one span; ``split_addresses`` then rewrites addresses into street / GPE / ZIP_CODE parts
    (:func:`split_address_spans`).  Span edges are stripped of whitespace.
    """
    psf_cls = _import_sentence_faker()
    from presidio_evaluator.data_generator import presidio_sentence_faker as psf_mod

    templates = _read_templates(psf_mod)
    keep = [i for i, t in enumerate(templates) if t]
    if entities is not None:
        keep = [i for i in keep if (tt := _template_types(templates[i], psf_cls)) and tt <= set(entities)]
        if not keep:
            raise ValueError(f"no presidio-evaluator template uses only entities {sorted(entities)}")
    mapping = psf_cls.ENTITY_TYPE_MAPPING
    with _seeded_global_rngs(seed):
        faker = psf_cls(
            locale=locale,
            lower_case_ratio=0.0,
            sentence_templates=[templates[i] for i in keep],
            entity_providers=_offline_providers(psf_mod),
            base_records=_person_records(),
            entity_type_mapping=dict(mapping),
            provider_aliases=list(psf_cls.PROVIDER_ALIASES),
            random_seed=seed,
        )
        rng = random.Random(seed)
        out: list[Record] = []
        while len(out) < n:
            tid = keep[rng.randrange(len(keep))]
            sample = faker._sentence_faker.parse(psf_cls._preprocess_template(templates[tid]), tid)
            text, spans = sample.full_text, []
            for sp in sample.spans:
                value = text[sp.start_position : sp.end_position]
                s = sp.start_position + len(value) - len(value.lstrip())
                e = sp.end_position - len(value) + len(value.rstrip())
                if s < e:
                    et = mapping.get(sp.entity_type, sp.entity_type.upper())
                    spans.append({"entity_type": et, "start": s, "end": e})
            if _MISSING_FIELD.search(text):
                continue  # a missing field of the fake-person table, printed by pandas as "nan" (e.g. a city)
            if merge_adjacent:
                spans = _merge_adjacent(text, spans, _MERGE_ADJACENT)
            if split_addresses:
                spans = split_address_spans({"text": text, "spans": spans})["spans"]
            if rng.random() < lower_case_ratio and len(text.lower()) == len(text):
                text = text.lower()
            out.append(
                validate_record(
                    _record(text, spans, f"presidio:{tid}", "presidio_generator"),
                    f"presidio generator sample {len(out)} (template {tid})",
                )
            )
        return out


# ----------------------------------------------------------------------------- address convention

# The unit part of a street line: "Apt 12", "Suite 300", "#304", "Flat 3", Polish "m. 7".
ADDRESS_UNIT = re.compile(r"(?i)(?:(?:apt|apartment|suite|ste|unit|flat|floor|fl|room|rm|m)\b\.?|#)\s*\w")
# A piece that is only a unit ("Flat 6", "Unit 5", "Apt. 12B"): the street line goes on in the next piece.
_UNIT_ONLY = re.compile(r"(?i)(?:apt|apartment|suite|ste|unit|flat)\.?\s*[\w-]{1,5}|#\s*[\w-]{1,5}")
_POSTCODE_AT_END = re.compile(r"(?:^|\s)(\d{4,6}(?:-\d{4})?|[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2})$")


def split_address_spans(rec: Record) -> Record:
    """The generator's whole-address STREET_ADDRESS spans in the annotation conventions' parts
    (``eval_sets/README.md``): pieces between line breaks and commas; the first, any apartment, suite or unit
    piece after it, and the piece after a first piece that is only a unit, are the STREET_ADDRESS; a trailing
    postcode is a ZIP_CODE; the other pieces are GPE (city, state, country). A span without separators stays
    whole. Returns a new record."""
    text, spans = rec["text"], []
    for sp in rec["spans"]:
        value = text[sp["start"] : sp["end"]]
        pieces = [
            (
                sp["start"] + m.start() + len(m.group()) - len(m.group().lstrip()),
                sp["start"] + m.end() - len(m.group()) + len(m.group().rstrip()),
            )
            for m in re.finditer(r"[^\n,]+", value)
            if m.group().strip()
        ]
        if sp["entity_type"] != "STREET_ADDRESS" or (len(pieces) < 2 and not value.strip().isdigit()):
            spans.append(sp)
            continue
        street: list[int] | None = None
        for i, (s, e) in enumerate(pieces):
            piece = text[s:e]
            if street is None and i == 0 and not piece.isdigit():
                street = [s, e]
            elif (
                street is not None
                and street[1] == pieces[i - 1][1]
                and (ADDRESS_UNIT.match(piece) or _UNIT_ONLY.fullmatch(text[street[0] : street[1]]))
            ):  # "12 Elm St, Apt 4" and "Flat 6, 22 Merton Rise" are one street line
                street[1] = e
            else:
                if street is not None:
                    spans.append({"entity_type": "STREET_ADDRESS", "start": street[0], "end": street[1]})
                    street = None
                post = _POSTCODE_AT_END.search(piece)
                if post:
                    head = piece[: post.start(1)].rstrip()
                    if head:
                        spans.append({"entity_type": "GPE", "start": s, "end": s + len(head)})
                    spans.append({"entity_type": "ZIP_CODE", "start": s + post.start(1), "end": e})
                else:
                    spans.append({"entity_type": "GPE", "start": s, "end": e})
        if street is not None:
            spans.append({"entity_type": "STREET_ADDRESS", "start": street[0], "end": street[1]})
    return {**rec, "spans": sorted(spans, key=lambda x: x["start"])}


# ----------------------------------------------------------------------------- augmentation


def _outside_words(rec: Record) -> list[re.Match]:
    """Whitespace-delimited words of ``rec`` that touch no span."""
    return [
        m
        for m in re.finditer(r"\S+", rec["text"])
        if not any(sp["start"] < m.end() and m.start() < sp["end"] for sp in rec["spans"])
    ]


# Words that say what a value is: noise never replaces them. Scrambling them had taught the model to ignore "SSN",
# "licence", "zip" and "port" (a nine-digit number after "SSN" came back as a PHONE_NUMBER). Matched on the word's
# letters, lower-cased ("SSN:" and "(ssn)" are "ssn").
CUE_WORDS = frozenset(
    [
        "ssn",
        "social",
        "security",
        "itin",
        "tax",
        "tin",
        "id",
        "dl",
        "driver",
        "driver's",
        "drivers",
        "driving",
        "license",
        "licence",
        "lic",
        "permit",
        "phone",
        "tel",
        "telephone",
        "cell",
        "mobile",
        "call",
        "fax",
        "whatsapp",
        "text",
        "number",
        "no",
        "email",
        "e-mail",
        "mail",
        "iban",
        "account",
        "card",
        "visa",
        "mastercard",
        "amex",
        "cvv",
        "exp",
        "expiry",
        "bank",
        "address",
        "street",
        "st",
        "ave",
        "road",
        "rd",
        "apt",
        "apartment",
        "suite",
        "unit",
        "flat",
        "zip",
        "zipcode",
        "postcode",
        "postal",
        "code",
        "dob",
        "born",
        "birth",
        "birthday",
        "date",
        "age",
        "aged",
        "old",
        "years",
        "ip",
        "host",
        "server",
        "ssh",
        "site",
        "website",
        "domain",
        "url",
        "order",
        "tracking",
        "serial",
        "sku",
        "invoice",
        "ticket",
        "case",
        "ref",
        "reference",
        "version",
        "build",
        "port",
        "line",
        "error",
        "errno",
        "status",
        "price",
        "cost",
        "total",
        "room",
        "flight",
        "gate",
        "seat",
        "part",
        "model",
    ]
)


def _is_cue(word: str) -> bool:
    return re.sub(r"[^a-z'-]", "", word.lower()).strip("'-") in CUE_WORDS


def replace_context_words(records: list[Record], rate: float, seed: int, share: float = 0.5) -> list[Record]:
    """Training-only augmentation: in a ``share`` of the records, each word outside every span is replaced, with
    probability ``rate``, by a word drawn from the records' non-entity words; spans keep their text, and so do
    the cue words that say what a value is (:data:`CUE_WORDS`).

    A template-disjoint test has sentence shapes training never saw: a model that learnt "the word after
    *ssn is* is an SSN" fails on "social security number 394-57-0728".  Scrambled contexts make it read the value
    itself (label-wise token replacement, Dai & Adel 2020).  Deterministic per ``seed``; records are copied.
    """
    if not 0.0 <= rate <= 1.0 or not 0.0 <= share <= 1.0:
        raise ValueError(f"rate and share must be in [0, 1], got {rate}, {share}")
    outside = [_outside_words(rec) for rec in records]
    vocab = [m.group() for words in outside for m in words]
    rng = random.Random(seed)
    out = []
    for rec, words in zip(records, outside):
        if not vocab or rng.random() >= share:
            out.append(rec)
            continue
        text, pos, pieces, shifts = rec["text"], 0, [], []  # shifts: (original end, length change)
        for m in words:
            if rng.random() >= rate or _is_cue(m.group()):
                continue
            word = rng.choice(vocab)
            pieces += [text[pos : m.start()], word]
            shifts.append((m.end(), len(word) - (m.end() - m.start())))
            pos = m.end()
        spans = []
        for sp in rec["spans"]:
            delta = sum(d for end, d in shifts if end <= sp["start"])
            spans.append({**sp, "start": sp["start"] + delta, "end": sp["end"] + delta})
        out.append({**rec, "text": "".join(pieces) + text[pos:], "spans": spans})
    return out


# ----------------------------------------------------------------------------- selection / splits


def restrict_entities(
    records: Iterable[Record], entities: Iterable[str], drop_records_with_other: bool = False
) -> list[Record]:
    """Keep only spans of ``entities``; with ``drop_records_with_other``, drop records holding
    another type instead (their text would carry unlabelled PII)."""
    keep, out = set(entities), []
    for rec in records:
        spans = [sp for sp in rec["spans"] if sp["entity_type"] in keep]
        if not (drop_records_with_other and len(spans) != len(rec["spans"])):
            out.append({**rec, "spans": spans})
    return out


def entity_counts(records: Iterable[Record]) -> Counter:
    return Counter(sp["entity_type"] for rec in records for sp in rec["spans"])


def balanced_sample(records: list[Record], n: int, seed: int = 0) -> list[Record]:
    """``n`` records with entity types (``entity_type``) as balanced as possible.

    Greedy: take the type with the fewest selected spans so far (ties: the type rarer in the
    pool) and add a random unchosen record containing it, so records with rare types are
    preferred.  When every type is exhausted, span-less records fill the rest.
    """
    rng = random.Random(seed)
    if n >= len(records):
        out = list(records)
        rng.shuffle(out)
        return out
    pool = entity_counts(records)
    by_type: dict[str, list[int]] = defaultdict(list)
    empty: list[int] = []
    for i, rec in enumerate(records):
        kinds = {sp["entity_type"] for sp in rec["spans"]}
        for t in sorted(kinds):
            by_type[t].append(i)
        if not kinds:
            empty.append(i)
    for idxs in [*by_type.values(), empty]:
        rng.shuffle(idxs)
    chosen: list[int] = []
    used: set[int] = set()
    got: Counter = Counter()
    while len(chosen) < n:
        for idxs in by_type.values():
            while idxs and idxs[-1] in used:
                idxs.pop()
        live = [t for t in by_type if by_type[t]]
        if not live:
            break
        i = by_type[min(live, key=lambda x: (got[x], pool[x], x))].pop()
        used.add(i)
        chosen.append(i)
        got.update(sp["entity_type"] for sp in records[i]["spans"])
    chosen.extend(empty[: n - len(chosen)])
    rng.shuffle(chosen)
    return [records[i] for i in chosen]
