"""The hand-written chat-message sets of the PII task (``eval_sets/README.md``): markup and loading.

Entities are written inline as ``⟦TYPE|value⟧``, so a set is edited as text and its offsets are computed, never
typed. :func:`load_natural_set` returns the records of :mod:`loraroute.data.pii` plus ``id``, ``register`` and, on
messages without PII, ``lookalike``.
"""

from __future__ import annotations

import re
from pathlib import Path

from loraroute.data.pii import PRESIDIO_ENTITIES, Record, _record, validate_record
from loraroute.data.sources import DataError

# ``⟦TYPE|value⟧``: brackets no message, code snippet or template uses, so a hand-written set is edited as text and its
# offsets are computed, never typed.
_MARK = re.compile(r"⟦([A-Z_]+)\|([^⟦⟧]+)⟧")


def parse_marked(marked: str, where: str = "text") -> tuple[str, list[dict]]:
    """``("Hi ⟦PERSON|Ana Ruiz⟧!")`` -> ``("Hi Ana Ruiz!", [{"entity_type": "PERSON", "start": 3, "end": 11}])``.

    A stray or unclosed bracket, an unknown-looking type or a value with edge whitespace raises :class:`DataError`
    naming ``where``, so a typo in a hand-written set cannot silently drop an entity."""
    text, spans, pos = [], [], 0
    length = 0
    for m in _MARK.finditer(marked):
        text.append(marked[pos : m.start()])
        length += m.start() - pos
        value = m.group(2)
        if value != value.strip():
            raise DataError(f"{where}: entity {m.group()!r} has whitespace at its edge")
        spans.append({"entity_type": m.group(1), "start": length, "end": length + len(value)})
        text.append(value)
        length += len(value)
        pos = m.end()
    text.append(marked[pos:])
    plain = "".join(text)
    if "⟦" in plain or "⟧" in plain or "|⟧" in marked:
        raise DataError(
            f"{where}: malformed markup near {plain[max(plain.find('⟦'), plain.find('⟧'), 0) :][:40]!r}"
            " (write an entity as ⟦TYPE|value⟧)"
        )
    return plain, spans


# The hand-written chat-message sets (eval_sets/README.md): "test", "blind" and "blind2" are scored only,
# "validation" may guide. Each blind part was written after the parts before it had been scored, for the changes
# made after that scoring.
NATURAL_SETS = {
    "test": "eval_sets/pii_natural.jsonl",
    "blind": "eval_sets/pii_natural_blind.jsonl",
    "blind2": "eval_sets/pii_natural_blind2.jsonl",
    "validation": "eval_sets/pii_natural_validation.jsonl",
}


# Hand-written chat messages for training, in the same markup: written for training by other writers than the
# evaluation sets' (eval_sets/README.md), and checked for near-duplicates of every natural set (tests/data).
TRAINING_MESSAGES = "pii_chat_messages.jsonl"


def training_messages() -> list[Record]:
    """The hand-written training messages (:data:`TRAINING_MESSAGES`) as records, ``source`` ``pii_natural:train``."""
    from loraroute.data.sources import package_file

    return load_natural_set("train", str(package_file(TRAINING_MESSAGES)))


def load_natural_set(part: str = "test", path: str | None = None) -> list[Record]:
    """A hand-written chat-message set as records (plus ``id``, ``register`` and, without PII, ``lookalike``).
    ``path`` reads a file in the same format instead of the shipped part. Errors name the file, line and field."""
    from loraroute.data.sources import package_file, read_local

    if path is None and part not in NATURAL_SETS:
        raise ValueError(f"unknown PII natural set {part!r}; choose from {', '.join(NATURAL_SETS)}")
    source = Path(path) if path else package_file(NATURAL_SETS[part])
    out, seen = [], set()
    for row in read_local(source):
        where = row["_where"]
        for name in ("id", "register", "marked"):
            if not isinstance(row.get(name), str) or not row[name].strip():
                raise DataError(f"{where}: field {name!r} must be a non-empty string")
        if row["id"] in seen:
            raise DataError(f"{where}: field 'id' {row['id']!r} repeats an earlier line")
        seen.add(row["id"])
        text, spans = parse_marked(row["marked"], f"{where}: field 'marked'")
        unknown = {sp["entity_type"] for sp in spans} - set(PRESIDIO_ENTITIES)
        if unknown:
            raise DataError(
                f"{where}: field 'marked': entity type(s) {sorted(unknown)} are not among {PRESIDIO_ENTITIES}"
            )
        if spans and row.get("lookalike"):
            raise DataError(f"{where}: field 'lookalike' marks a message without PII, but it has entities")
        if not spans and not isinstance(row.get("lookalike"), str):
            raise DataError(f"{where}: a message without entities needs field 'lookalike' (what it is full of)")
        rec = validate_record(_record(text, spans, None, f"pii_natural:{part}"), where)
        rec.update(id=row["id"], register=row["register"], lookalike=row.get("lookalike"))
        out.append(rec)
    return out
