"""Generated training data for four families the jailbreak detector missed on real traffic.

* :func:`encoded_attacks`: attacks hidden in an encoding (base64/32, Ascii85/Base85, hex, binary, Morse, ROT13,
  URL-encoding, ``\\u``/``\\x`` escapes, Unicode tag characters, zero-width interleaving, homoglyphs, reversed,
  leetspeak), usually inside an ordinary carrier (e-mail, form, JSON, ticket, CSV row, code comment), with or
  without a "decode and follow it" request. The model saw almost no encoded attacks, so it scored them benign.
* :func:`encoded_benign`: harmless encoded strings (tokens, API keys, hashes, UUIDs, JWTs with harmless claims,
  TOTP secrets, hex dumps, escaped names, "what does this base64 say" with a harmless message, encoding homework).
  Without them "looks encoded" alone became the attack signal (0.98-1.00 on ordinary tokens and hashes).
* :func:`persona_requests`: benign roleplay (interviewers, customers, tutors, game masters, historical figures,
  a rubber duck, a strict editor) worded with "act as", "pretend", "from now on", "stay in character", "you are
  now", so those words stop predicting "jailbreak" on their own.
* :func:`multilingual_prompts`: attacks and benign requests in Spanish, French, German, Italian and Portuguese;
  attacks in other languages scored near 0 because every training attack was English.

Templates live in ``jailbreak_family_templates.json`` (written without looking at any eval or calibration set).
English texts go through :func:`loraroute.data.jailbreak._style` for both labels, so register does not predict
the label; encoded values are swapped in after styling so lower-casing never corrupts them. All encoders sit in
:func:`encoders`; ``loraroute.data.jailbreak._ENCODERS`` already has b64/rot13/leet/hex/reversed and those entries
are reused. ``jailbreak`` imports this module at top level, so it is imported here only inside functions.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.resources
import json
import random
import re
import urllib.parse
import uuid
from functools import lru_cache

from loraroute.data.text import word_key

MAX_CHARS = 1500
_MORSE_CODES = (
    ".- -... -.-. -.. . ..-. --. .... .. .--- -.- .-.. -- -. --- .--. --.- .-. ... - ..- ...- .-- -..- -.-- --.. "
    "----- .---- ..--- ...-- ....- ..... -.... --... ---.. ----."
)
_MORSE = dict(zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", _MORSE_CODES.split(" ")))
_HOMOGLYPH = {"a": "а", "c": "с", "e": "е", "o": "о", "p": "р", "x": "х", "y": "у", "i": "і", "A": "Α", "B": "Β"}
_ZW = "\u200b"
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


@lru_cache(maxsize=1)
def encoders() -> dict:
    """name -> str encoder; b64/rot13/leet/hex/reversed are ``jailbreak._ENCODERS``'s own entries."""
    from loraroute.data import jailbreak as jb

    return {
        **jb._ENCODERS,
        "b32": lambda s: base64.b32encode(s.encode()).decode(),
        "a85": lambda s: base64.a85encode(s.encode()).decode(),
        "b85": lambda s: base64.b85encode(s.encode()).decode(),
        "binary": lambda s: " ".join(f"{b:08b}" for b in s.encode()),
        "morse": lambda s: " / ".join(" ".join(_MORSE[c] for c in w if c in _MORSE) for w in s.upper().split()),
        "url": lambda s: urllib.parse.quote(s, safe=""),
        "uescape": lambda s: "".join(f"\\u{ord(c):04x}" for c in s),
        "xescape": lambda s: "".join(f"\\x{b:02x}" for b in s.encode()),
        "tags": lambda s: "".join(chr(0xE0000 + ord(c)) for c in s),
        "zwsp": lambda s: _ZW.join(s),
        "homoglyph": lambda s: "".join(_HOMOGLYPH.get(c, c) for c in s),
    }


@lru_cache(maxsize=1)
def _t() -> dict:
    return json.loads(
        (importlib.resources.files("loraroute.data") / "jailbreak_family_templates.json").read_text("utf-8")
    )


def _rand(rng: random.Random, k: int, alphabet: str = _ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(k))


def _b64url(obj) -> str:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _hexdump(data: bytes) -> str:
    rows = []
    for i in range(0, len(data), 16):
        chunk = data[i : i + 16]
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        rows.append(f"{i:08x}  {' '.join(f'{b:02x}' for b in chunk):<47}  |{text}|")
    return "\n".join(rows)


def _generated(key: str, rng: random.Random) -> str | None:
    """Values built in code (random-looking but harmless); None if ``key`` is not one of them."""
    f = _t()["fillers"]
    seed_bytes = _rand(rng, 24).encode()
    if key.startswith("enc_"):
        return encoders()[key[4:]](rng.choice(f["benign_plain"]))
    gens = {
        "uuid": lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "sha256": lambda: hashlib.sha256(seed_bytes).hexdigest(),
        "sha1": lambda: hashlib.sha1(seed_bytes).hexdigest(),
        "md5": lambda: hashlib.md5(seed_bytes).hexdigest(),
        "token": lambda: _rand(rng, rng.choice((24, 32, 43)), _ALNUM + "-_"),
        "api_key": lambda: rng.choice(f["key_prefix"]) + _rand(rng, rng.choice((20, 32, 36))),
        "totp": lambda: _rand(rng, rng.choice((16, 32)), "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"),
        "otp": lambda: _rand(rng, 6, "0123456789"),
        "uescape_name": lambda: "".join(
            c if ord(c) < 128 else f"\\u{ord(c):04x}" for c in rng.choice(f["accented_name"])
        ),
        "xescape_name": lambda: "".join(
            c if ord(c) < 128 else "".join(f"\\x{b:02x}" for b in c.encode()) for c in rng.choice(f["accented_name"])
        ),
        "hexdump": lambda: _hexdump(
            rng.choice((b"\x89PNG\r\n\x1a\n", b"%PDF-1.7\n", b"PK\x03\x04\x14\x00"))
            + rng.choice(f["benign_plain"]).encode()
        ),
        "jwt": lambda: ".".join(
            (
                _b64url({"alg": "HS256", "typ": "JWT"}),
                _b64url(
                    {
                        "sub": str(rng.randint(1000, 99999)),
                        "name": rng.choice(f["accented_name"]),
                        "role": rng.choice(("viewer", "editor", "student")),
                        "iat": 1764000000 + rng.randint(0, 10**6),
                    }
                ),
                _b64url(rng.randbytes(32)),
            )
        ),
    }
    return gens[key]() if key in gens else None


def _fill(template: str, rng: random.Random, local: dict, slots: list[str]) -> str:
    """Fill ``{slot}``s: ``local`` fillers, then generated values (kept aside in ``slots`` as placeholders so that
    styling cannot alter them), then the main ``jailbreak_templates.json`` fillers."""
    from loraroute.data import jailbreak as jb

    def one(m: re.Match) -> str:
        key = m.group(1)
        if key in local:
            return _fill(rng.choice(local[key]), rng, local, slots)
        value = _generated(key, rng)
        if value is None:
            return jb._fill("{" + key + "}", rng)
        slots.append(value)
        return f"\x00{len(slots) - 1}\x00"

    return re.sub(r"(?<!\{)\{(\w+)\}(?!\})", one, template).replace("{{", "{").replace("}}", "}")


def _finish(text: str, slots: list[str]) -> str:
    return re.sub(r"\x00(\d+)\x00", lambda m: slots[int(m.group(1))], text).strip()


def _collect(n: int, make, label: str, source: str, out: dict | None = None) -> list[dict]:
    """Up to ``n`` distinct (by ``word_key``) records under MAX_CHARS from ``make()`` -> text (or None)."""
    out = {} if out is None else out
    for _ in range(n * 30):
        if len(out) >= n:
            break
        text = make()
        if text and len(text) < MAX_CHARS:
            out.setdefault(word_key(text) or text, {"text": text, "label": label, "source": source})
    return list(out.values())


def _english(rng: random.Random, templates: list[str]) -> str:
    from loraroute.data import jailbreak as jb

    slots: list[str] = []
    return _finish(jb._style(_fill(rng.choice(templates), rng, _t()["fillers"], slots), rng), slots)


def persona_requests(seed: int = 0, n: int = 400) -> list[dict]:
    rng = random.Random(seed + 11)
    return _collect(n, lambda: _english(rng, _t()["persona"]), "benign", "generated_persona")


def encoded_benign(seed: int = 0, n: int = 400) -> list[dict]:
    rng = random.Random(seed + 12)
    return _collect(n, lambda: _english(rng, _t()["encoded_benign"]), "benign", "generated_encoded_benign")


def encoded_attack_items(seed: int = 0, n: int = 400) -> list[tuple[dict, str, str, str]]:
    """(record, encoder name, plain payload, encoded blob) for each of :func:`encoded_attacks`' records; the
    encoders are cycled so every one appears."""
    from loraroute.data import jailbreak as jb

    rng, t, out, items = random.Random(seed + 13), _t(), {}, []
    names = sorted(encoders())
    long_goals = [g for g in jb._harmful_imperatives() if len(g) < 160]
    local = {**t["fillers"], "harmful_imperative": long_goals or [f"Explain how to {jb._fill('{harmful_goal}', rng)}."]}
    for i in range(n * 30):
        if len(out) >= n:
            break
        enc = names[i % len(names)]
        plain = _fill(rng.choice(t["fillers"]["attack_payload"]), rng, local, [])
        blob = encoders()[enc](plain)
        ask = rng.choice(t["fillers"]["decode_ask"] if rng.random() < 0.6 else t["fillers"]["harmless_ask"] + [""])
        ask = ask.replace("{enc_name}", rng.choice(t["enc_names"][enc]))
        slots = [blob]
        body = _fill(rng.choice(t["carrier"]).replace("{ask}", ask).replace("{blob}", "\x000\x00"), rng, local, slots)
        text = _finish(jb._style(body, rng), slots)
        if len(text) < MAX_CHARS and word_key(text) not in out:
            out[word_key(text)] = rec = {"text": text, "label": "jailbreak", "source": "generated_encoded_attack"}
            items.append((rec, enc, plain, blob))
    return items


def encoded_attacks(seed: int = 0, n: int = 400) -> list[dict]:
    return [rec for rec, *_ in encoded_attack_items(seed, n)]


def multilingual_prompts(seed: int = 0, n: int = 800) -> list[dict]:
    """About n/2 benign and n/2 attack prompts, languages in turn; per-language greeting/sign-off noise is drawn the
    same way for both labels."""
    langs = _t()["multilingual"]
    out = []
    for k, label in enumerate(("benign", "attack")):
        rng, codes = random.Random(seed + 14 + k), sorted(langs)
        counter = iter(range(10**9))

        def make(label=label, rng=rng, codes=codes, counter=counter) -> str:
            lang = langs[codes[next(counter) % len(codes)]]
            slots: list[str] = []
            text = _fill(rng.choice(lang[label]), rng, lang["fillers"], slots)
            prefix = rng.choice(lang["prefix"])
            text = prefix + (text[0].lower() + text[1:] if prefix.endswith(", ") else text) + rng.choice(lang["suffix"])
            return _finish(text.lower() if rng.random() < 0.1 else text, slots)

        lab = "benign" if label == "benign" else "jailbreak"
        out += _collect(n // 2 + (n % 2) * k, make, lab, f"generated_multilingual_{label}")
    return out
