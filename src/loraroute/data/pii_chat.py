"""Chat-traffic PII training data: personal details inside everyday requests, and look-alikes that are not PII.

presidio-evaluator's templates are sentences about a person ("My SSN is 394-57-0728"); a router sees requests that
happen to carry details ("can you fix the tone of this e-mail? ... Thanks, Priya, +44 20 7946 0958") and technical
prompts full of numbers that are not personal at all (order numbers, ports, versions). This module makes both:

* :func:`chat_pii_records`: an everyday request (the intent router's request templates and the jailbreak data's
  everyday requests) with one to three *carriers* of fake personal data (a clause with its cue word, a pasted form,
  a signature block), and often a look-alike too.
* :func:`lookalike_records`: the same requests with only look-alikes: tracking, serial, SKU, invoice and ticket
  numbers, versions, ports, error codes, line numbers, prices, measurements, public dates, code and config, public
  figures and companies. Every token is ``O``.

Values come from Faker (seeded, several locales) and follow the annotation conventions of
``eval_sets/README.md``: an address is street / GPE / ZIP_CODE parts, a title is its own span, cue words stay
outside spans. Records carry ``template_id = "chat:<carrier>"`` or ``"lookalike:<kind>"``; they go to training
and validation only, so the template-disjoint test split stays the generator's.
"""

from __future__ import annotations

import importlib.resources
import json
import random
import string
from collections.abc import Callable

from loraroute.data.pii import Record, validate_record

MAX_REQUEST_CHARS = 160

# Word lists, carriers and look-alikes: data, kept as JSON beside this module (as the jailbreak templates are).
_TEMPLATES = json.loads((importlib.resources.files("loraroute.data") / "pii_chat_templates.json").read_text("utf-8"))

# Faker locales for names, streets and cities: the traffic a router sees is not only American.
_LOCALES = (
    "en_US",
    "en_US",
    "en_US",
    "en_GB",
    "es_ES",
    "de_DE",
    "fr_FR",
    "it_IT",
    "pt_BR",
    "nl_NL",
    "pl_PL",
    "en_IN",
    "tr_TR",
)

# Faker locales whose city() draws real places (de_DE's Greiz, en_IN's Rohtak, zu_ZA's Sasolburg); en_US and en_GB
# make up names ("East Douglasmouth"), so alone they taught the model that only invented towns locate a person.
_CITY_LOCALES = (
    "en_US",
    "en_GB",
    "de_DE",
    "es_ES",
    "pl_PL",
    "en_IN",
    "sv_SE",
    "da_DK",
    "fi_FI",
    "zu_ZA",
    "id_ID",
    "cs_CZ",
    "es_CO",
    "es_AR",
    "nl_BE",
    "hu_HU",
)

# People, their relatives and their roles, without a name: never an entity ("my landlord", "ask your
# pediatrician"); a title is annotated only next to a private person's name.
_ROLES = tuple(_TEMPLATES["words"]["roles"])

# Everyday phrases in other languages, with nothing personal in them: people mix languages in chat, and a word
# the model has never seen is not a name or a place.
_FOREIGN = tuple(_TEMPLATES["words"]["foreign_phrases"])
_NRP = tuple(_TEMPLATES["words"]["nrp"])
_HONORIFICS = tuple(_TEMPLATES["words"]["honorifics"])
_NATURE = tuple(_TEMPLATES["words"]["nature_words"])
_PLACE_NOUNS = tuple(_TEMPLATES["words"]["place_nouns"])
_BUSINESSES = tuple(_TEMPLATES["words"]["businesses"])
_PLACES = tuple(_TEMPLATES["words"]["public_places"])
_PUBLIC_FIGURES = tuple(_TEMPLATES["words"]["public_figures"])
_DRUGS = tuple(_TEMPLATES["words"]["drugs"])
_COMPANIES = tuple(_TEMPLATES["words"]["companies"])
_PUBLIC_SITES = tuple(_TEMPLATES["words"]["public_sites"])
_EVENTS = tuple(_TEMPLATES["words"]["public_events"])


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


class _Values:
    """Seeded fake values, one method per type; each returns the text of one entity."""

    def __init__(self, seed: int):
        from faker import Faker

        self.rng = random.Random(seed)
        self.fakers = {loc: Faker(loc) for loc in sorted(set(_LOCALES) | set(_CITY_LOCALES))}
        for i, f in enumerate(self.fakers.values()):
            f.seed_instance(seed * 100 + i)
        self.us = self.fakers["en_US"]

    def faker(self):
        return self.fakers[self.rng.choice(_LOCALES)]

    def person(self) -> str:
        f = self.faker()
        return self.rng.choice(
            [f"{f.first_name()} {f.last_name()}", f.first_name(), f"{f.first_name()} {f.last_name()}"]
        )

    def full_name(self) -> str:
        f = self.faker()
        return f"{f.first_name()} {f.last_name()}"

    def email(self) -> str:
        f = self.faker()
        user = self.rng.choice(
            [
                f.user_name(),
                f"{f.first_name()}.{f.last_name()}".lower(),
                f"{f.first_name()[0]}{f.last_name()}{self.rng.randrange(100)}".lower(),
            ]
        )
        user = "".join(c for c in user if c.isascii() and (c.isalnum() or c in "._-")) or "user"
        return f"{user}@{self.rng.choice([self.us.free_email_domain(), self.domain()])}"

    def phone(self) -> str:
        r, d = self.rng, lambda n: _digits(self.rng, n)
        area = f"{r.randrange(201, 990)}"
        return r.choice(
            [
                f"({area}) {d(3)}-{d(4)}",
                f"{area}-{d(3)}-{d(4)}",
                f"{area}.{d(3)}.{d(4)}",
                f"+1 {area} {d(3)} {d(4)}",
                f"+1-{area}-{d(3)}-{d(4)}",
                f"{area}{d(7)}",
                f"+44 20 {d(4)} {d(4)}",
                f"07{d(3)} {d(6)}",
                f"+44 7{d(3)} {d(6)}",
                f"+49 30 {d(6)}",
                f"+33 6 {d(2)} {d(2)} {d(2)} {d(2)}",
                f"+91 9{d(4)} {d(5)}",
                f"+61 4{d(2)} {d(3)} {d(3)}",
                f"+34 6{d(2)} {d(3)} {d(3)}",
            ]
        )

    def ssn(self) -> str:
        r = self.rng
        area = f"{r.randrange(900, 1000)}" if r.random() < 0.2 else f"{r.randrange(1, 900):03d}"
        group, serial = f"{r.randrange(1, 100):02d}", f"{r.randrange(1, 10000):04d}"
        sep = r.choice(["-", "-", "-", "", " "])
        return f"{area}{sep}{group}{sep}{serial}"

    def license(self) -> str:
        r, d = self.rng, lambda n: _digits(self.rng, n)
        letter = r.choice(string.ascii_uppercase)
        return r.choice(
            [
                f"{letter}{d(3)}-{d(4)}-{d(4)}",
                f"{letter}{d(7)}",
                f"{letter}{d(12)}",
                f"{letter}{d(3)}-{d(3)}-{d(2)}-{d(3)}-{d(1)}",
                f"{letter}{d(8)}",
                f"{d(9)}",
                f"{letter}{d(3)} {d(4)} {d(4)}",
                f"{letter}{d(4)}-{d(5)}-{d(5)}",
            ]
        )

    def card(self) -> str:
        number = self.us.credit_card_number()
        if len(number) == 16 and self.rng.random() < 0.6:
            sep = self.rng.choice([" ", "-"])
            number = sep.join(number[i : i + 4] for i in range(0, 16, 4))
        return number

    def iban(self) -> str:
        iban = self.fakers[self.rng.choice(["en_GB", "de_DE", "fr_FR", "es_ES", "nl_NL", "it_IT"])].iban()
        return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)) if self.rng.random() < 0.5 else iban

    def ip(self) -> str:
        return self.rng.choice([self.us.ipv4_private(), self.us.ipv4_public(), self.us.ipv4_private(), self.us.ipv6()])

    def domain(self) -> str:
        f = self.faker()
        word = "".join(c for c in f.last_name().lower() if c.isascii() and c.isalpha()) or "acme"
        kind = self.rng.choice(["", "-dental", "-law", "bakery", "-labs", "-clinic", "-consulting", "-studio"])
        return f"{word}{kind}.{self.rng.choice(['com', 'net', 'co.uk', 'io', 'org', 'de', 'com.au'])}"

    def host(self) -> str:
        r = self.rng
        return r.choice(
            [
                f"{r.choice(['db', 'app', 'web', 'mail', 'vpn', 'git', 'ci'])}{r.randrange(1, 30):02d}."
                f"{r.choice(['prod', 'ops', 'internal', 'corp', 'eu-west'])}.{self.domain()}",
                f"www.{self.domain()}",
                self.domain(),
                f"https://{self.domain()}/{r.choice(['booking', 'about', 'invoice/2291', 'login'])}",
            ]
        )

    def street(self) -> str:
        r, f = self.rng, self.fakers[self.rng.choice(["en_US", "en_US", "en_GB", "en_US"])]
        line = f"{f.building_number()} {f.street_name()}"
        unit = r.randrange(1, 999)
        # The unit belongs to the street line, written as people write it (the conventions keep it in the span).
        return r.choice(
            [
                line,
                line,
                f"{line}, Apt {unit}",
                f"{line} Apt. {unit}",
                f"{line} #{unit}",
                f"{line}, Suite {unit}",
                f"Unit {unit}, {line}",
                f"Flat {unit % 40 + 1}, {line}",
                f.street_address().replace("\n", ", "),
            ]
        )

    def city(self) -> str:
        return self.fakers[self.rng.choice(_CITY_LOCALES)].city()

    def first_name(self) -> str:
        return self.faker().first_name()

    def last_name(self) -> str:
        return self.faker().last_name()

    def state(self) -> str:
        return self.rng.choice([self.us.state_abbr(), self.us.state()])

    def country(self) -> str:
        return self.rng.choice(
            [
                "USA",
                "United States",
                "UK",
                "Canada",
                "Germany",
                "Spain",
                "India",
                "Brazil",
                "Ireland",
                "Australia",
                "Mexico",
                "France",
            ]
        )

    def zip(self) -> str:
        return self.rng.choice(
            [self.us.zipcode(), self.us.zipcode(), self.fakers["en_GB"].postcode(), self.us.zipcode_plus4()]
        )

    def date(self) -> str:
        d = self.us.date_of_birth(minimum_age=1, maximum_age=90)
        return self.rng.choice(
            [
                d.strftime("%m/%d/%Y"),
                d.strftime("%d/%m/%Y"),
                d.strftime("%B %d, %Y"),
                d.strftime("%Y-%m-%d"),
                d.strftime("%d %b %Y"),
                d.strftime("%-d %B %Y"),
                d.strftime("%b %-d %Y"),
                d.strftime("%m-%d-%y"),
            ]
        )

    def appointment(self) -> str:
        d = self.us.date_between(start_date="-30d", end_date="+120d")
        t = f"{self.rng.randrange(7, 19)}:{self.rng.choice(['00', '15', '30', '45'])}"
        minutes = self.rng.choice(["00", "15", "30", "45"])
        pm = f"{self.rng.randrange(1, 12)}:{minutes}{self.rng.choice(['pm', 'am', ' PM'])}"
        return self.rng.choice(
            [
                d.strftime("%B %-d") + f" at {t}",
                d.strftime("%A %-d %B"),
                d.strftime("%m/%d/%Y"),
                d.strftime("%a %b %-d") + f", {t}",
                d.strftime("%-d.%m.%Y"),
                d.strftime("%A %-d %B") + f" at {pm}",
                d.strftime("%a %-m/%-d") + f" at {pm}",
                d.strftime("%Y-%m-%d") + f" {t}",
                d.strftime("%A, %B %-d"),
                d.strftime("%a ").lower() + f"{self.rng.randrange(1, 12)}{self.rng.choice(['pm', 'am'])}",
                d.strftime("%A ").lower() + f"{self.rng.randrange(1, 12)}{self.rng.choice(['pm', 'am'])}",
                d.strftime("%B %-d"),
                d.strftime("%-d %B"),
                d.strftime("%-d %b %Y"),
                f"{_ordinal(d.day)} of {d.strftime('%B')}",
                d.strftime("%-m/%-d") + f" at {pm}",
                d.strftime("%A ") + f"{_ordinal(d.day)} {d.strftime('%B')}, {pm}",
            ]
        )

    def age(self) -> str:
        return str(self.rng.randrange(2, 95))

    def org(self) -> str:
        r = self.rng
        place = r.choice([self.us.last_name(), r.choice(_NATURE), f"{r.choice(_NATURE)} {r.choice(_PLACE_NOUNS)}"])
        return r.choice(
            [
                self.faker().company(),
                f"{place} {r.choice(_BUSINESSES)}",
                f"{place} {r.choice(_BUSINESSES)} {r.choice(['LLC', 'Inc.', 'Ltd', 'GmbH', 'AS', 'S.L.'])}",
            ]
        )

    def job(self) -> str:
        return self.us.job().split(",")[0]


# Carriers: (name, template). Slots are {TYPE} or {TYPE:kind} for a value of that type drawn by kind (kind defaults
# to the type). Cue words stand next to each value, as people write them.
_KIND: dict[str, Callable[[_Values], str]] = {
    "PERSON": _Values.person,
    "full": _Values.full_name,
    "first": _Values.first_name,
    "last": _Values.last_name,
    "EMAIL_ADDRESS": _Values.email,
    "PHONE_NUMBER": _Values.phone,
    "US_SSN": _Values.ssn,
    "US_DRIVER_LICENSE": _Values.license,
    "CREDIT_CARD": _Values.card,
    "IBAN_CODE": _Values.iban,
    "IP_ADDRESS": _Values.ip,
    "DOMAIN_NAME": _Values.host,
    "STREET_ADDRESS": _Values.street,
    "GPE": _Values.city,
    "state": _Values.state,
    "country": _Values.country,
    "ZIP_CODE": _Values.zip,
    "DATE_TIME": _Values.date,
    "appointment": _Values.appointment,
    "AGE": _Values.age,
    "ORGANIZATION": _Values.org,
    "TITLE": lambda v: v.rng.choice(_HONORIFICS),
    "job": _Values.job,
    "NRP": lambda v: v.rng.choice(_NRP),
}
# Slots filled with words that are never entities (a role without a name, a MAC address beside an IP).
_PLAIN: dict[str, Callable[[_Values], str]] = {
    "role": lambda v: v.rng.choice(_ROLES),
    "mac": lambda v: ":".join(f"{v.rng.randrange(256):02x}" for _ in range(6)),
    "foreign": lambda v: v.rng.choice(_FOREIGN),
}
_SLOT_TYPE = {
    **dict.fromkeys(("first", "last", "full"), "PERSON"),
    **dict.fromkeys(("state", "country"), "GPE"),
    "appointment": "DATE_TIME",
    "job": "TITLE",
}

CARRIERS: dict[str, list[str]] = _TEMPLATES["carriers"]

# Look-alikes: (kind, template); the slots are filled by LOOKALIKE_VALUES and are never entities.
LOOKALIKES: dict[str, list[str]] = _TEMPLATES["lookalikes"]


def _lookalike_values(rng: random.Random) -> dict[str, str]:
    d = lambda n: _digits(rng, n)  # noqa: E731
    up = string.ascii_uppercase
    return {
        "ups": f"1Z{d(3)}{rng.choice(up)}{rng.choice(up)}{d(10)}",
        "usps": f"9400 {d(4)} {d(4)} {d(4)} {d(4)} {d(2)}",
        "order": f"{d(3)}-{d(7)}-{d(7)}",
        "amzn": f"{d(3)}-{d(7)}-{d(7)}",
        "serial": f"{rng.choice(up)}{rng.choice(up)}{d(8)}",
        "sku": f"{rng.choice(up)}{rng.choice(up)}-{d(4)}-{rng.choice(up)}",
        "part": f"{d(3)}-{d(2)}-{d(4)}",
        "jira": f"{rng.choice(['OPS', 'WEB', 'DATA', 'PAY'])}-{d(4)}",
        "pnr": "".join(rng.choice(up) for _ in range(6)),
        "ver": f"{rng.randrange(1, 20)}.{rng.randrange(30)}.{rng.randrange(30)}",
        "port": str(
            rng.choice([22, 80, 443, 3000, 5432, 6379, 8000, 8080, 8443, 9200, 27017, rng.randrange(1024, 65535)])
        ),
        "err": rng.choice(["E1102", "0x80070005", "ORA-00942", "ERR_CONNECTION_RESET", f"{d(4)}"]),
        "http": str(rng.choice([400, 401, 403, 404, 409, 429, 500, 502, 503, 504])),
        "hex": d(8),
        "file": rng.choice(["app.py", "main.go", "index.js", "setup.py", "README.md", "config.yaml", "Dockerfile"]),
        "price": f"{rng.randrange(1, 3000)}.{d(2)}",
        "event": rng.choice(_EVENTS),
        "year": str(rng.randrange(1850, 2026)),
        "figure": rng.choice(_PUBLIC_FIGURES),
        "company": rng.choice(_COMPANIES),
        "site": rng.choice(_PUBLIC_SITES),
        "place": rng.choice(_PLACES),
        "place2": rng.choice(_PLACES),
        "year2": str(rng.randrange(1850, 2030)),
        "figure2": rng.choice(_PUBLIC_FIGURES),
        "drug": rng.choice(_DRUGS),
        "drug2": rng.choice(_DRUGS),
        "month": rng.choice(["January", "March", "April", "June", "July", "August", "October", "December"]),
        "day": str(rng.randrange(1, 29)),
        "hour": str(rng.randrange(6, 12)),
        "hour2": str(rng.randrange(1, 11)),
        "minute": rng.choice(["00", "15", "30", "45", "55"]),
        "flight": f"{rng.choice(['BA', 'LH', 'UA', 'AF', 'DL', 'KL'])}{rng.randrange(10, 9999)}",
        "role": rng.choice(_ROLES),
        "foreign": rng.choice(_FOREIGN),
        **{f"n{k}": d(k).lstrip("0") or "7" for k in range(1, 9)},
    }


def _fill(template: str, values: _Values) -> tuple[str, list[dict]]:
    """A carrier template filled with fresh values: (text, spans)."""
    text, spans = "", []
    for literal, etype, kind, _ in string.Formatter().parse(template):  # "{TITLE:job}": field TITLE, spec job
        text += literal
        if etype is None:
            continue
        if etype in _PLAIN:
            text += _PLAIN[etype](values)
            continue
        value = _KIND[kind or etype](values).strip()
        spans.append({"entity_type": _SLOT_TYPE.get(kind, etype), "start": len(text), "end": len(text) + len(value)})
        text += value
    return text, spans


def _join(pieces: list[tuple[str, list[dict]]], rng: random.Random) -> tuple[str, list[dict]]:
    """Pieces joined into one message (a sentence break, a comma or a line break between them), spans shifted."""
    text, spans = "", []
    for i, (piece, piece_spans) in enumerate(pieces):
        if i and not piece.startswith("\n"):
            sep = rng.choice([" ", ". ", ", ", "\n", " - "]) if text and text[-1] not in ".?!\n" else " "
            text = text.rstrip() + sep if sep.strip() else text.rstrip() + " "
        spans += [{**sp, "start": sp["start"] + len(text), "end": sp["end"] + len(text)} for sp in piece_spans]
        text += piece
    return text, spans


def _requests(n: int, seed: int) -> list[str]:
    """Everyday requests without personal data: the intent router's request prompts and the jailbreak data's
    everyday requests (both generated from their own templates)."""
    from loraroute.data.intent_requests import INTENT_LABELS, generate_request_prompts
    from loraroute.data.jailbreak import everyday_requests

    texts = [r["text"] for r in generate_request_prompts(max(1, n // (2 * len(INTENT_LABELS)) + 1), seed)]
    texts += [r["text"] for r in everyday_requests(seed, max(1, n // 2 + 1))]
    # Short requests only: the carriers are what is learnt, and a 600-character request costs five times the
    # training compute of a 120-character one (long messages are the windowing code's job, tested apart).
    texts = [t for t in texts if len(t) <= MAX_REQUEST_CHARS]
    random.Random(seed).shuffle(texts)
    return texts


def _lookalike(rng: random.Random, kind: str | None = None) -> tuple[str, str]:
    kind = kind or rng.choice(sorted(LOOKALIKES))
    return kind, rng.choice(LOOKALIKES[kind]).format(**_lookalike_values(rng))


def _maybe_lower(text: str, rng: random.Random) -> str:
    # Some people type everything in lower case; lower() keeps offsets only when no character changes length.
    return text.lower() if rng.random() < 0.1 and len(text.lower()) == len(text) else text


def chat_pii_records(n: int, seed: int = 0, lookalike_share: float = 0.4) -> list[Record]:
    """``n`` everyday requests carrying one to three carriers of personal data; ``lookalike_share`` of them also
    carry an unlabelled look-alike. Deterministic per ``seed``."""
    rng, values = random.Random(seed), _Values(seed)
    asks = _requests(n, seed)
    names = sorted(CARRIERS)
    out = []
    for i in range(n):
        chosen = rng.sample(names, rng.choice([1, 1, 2, 2, 3]))
        pieces = [_fill(rng.choice(CARRIERS[c]), values) for c in chosen]
        if rng.random() < lookalike_share:
            pieces.append((_lookalike(rng)[1], []))
        rng.shuffle(pieces)
        # Blocks (signatures, forms) go after the request; clauses go before or after it.
        blocks = [p for p in pieces if p[0].startswith("\n")]
        clauses = [p for p in pieces if not p[0].startswith("\n")]
        ask = (asks[i % len(asks)], [])
        parts = clauses + [ask] if rng.random() < 0.5 else [ask] + clauses
        text, spans = _join(parts + blocks, rng)
        rec = {
            "text": _maybe_lower(text, rng),
            "spans": spans,
            "template_id": f"chat:{'+'.join(sorted(chosen))}",
            "source": "chat_pii",
        }
        out.append(validate_record(rec, f"chat PII record {i} ({'+'.join(chosen)})"))
    return out


def lookalike_records(n: int, seed: int = 0) -> list[Record]:
    """``n`` everyday requests with one to three look-alikes and no personal data: every token is ``O``."""
    rng = random.Random(seed + 1)
    asks = _requests(n, seed + 1)
    out = []
    for i in range(n):
        found = [_lookalike(rng) for _ in range(rng.choice([1, 2, 2, 3]))]
        pieces = [(text, []) for _, text in found]
        ask = (asks[i % len(asks)], [])
        text, _ = _join([ask] + pieces if rng.random() < 0.6 else pieces + [ask], rng)
        out.append(
            {
                "text": _maybe_lower(text, rng),
                "spans": [],
                "template_id": f"lookalike:{found[0][0]}",
                "source": "chat_lookalike",
            }
        )
    return out
