"""PII span files and hub sets: Presidio JSON, ai4privacy (hub) and generic JSONL, one validation path.

Each loader returns the records of :mod:`loraroute.data.pii` (``{"text", "spans", "template_id", "source"}``)
after :func:`~loraroute.data.pii.validate_record`; a bad span raises :class:`DataError` naming the file and record.
:func:`read_pii_records` picks the loader for ``--data`` (and ``--data-format``).
"""

from __future__ import annotations

import ast
import json
import logging
from collections import Counter
from pathlib import Path

from loraroute.data.pii import _MERGE_ADJACENT, Record, _merge_adjacent, _record, validate_record
from loraroute.data.sources import DataError, utf8_errors_located

logger = logging.getLogger(__name__)

DATA_FORMATS = ("auto", "presidio", "jsonl", "ai4privacy")

# ai4privacy label -> Presidio type.  First block: the 17 public pii-masking-400k labels; the rest
# cover sibling releases (300k, open-pii-500k).  Targets follow PRESIDIO_ENTITIES where it has the
# concept (CITY -> GPE as the generator does, STREET/BUILDINGNUM -> STREET_ADDRESS, URL ->
# DOMAIN_NAME), else Presidio analyzer names (US_PASSPORT, US_BANK_NUMBER) that
# restrict_entities(recs, PRESIDIO_ENTITIES) drops.  None (no Presidio type: IDCARDNUM, TAXNUM,
# USERNAME, PASSWORD) and unlisted labels are dropped and counted.  GIVENNAME+SURNAME and
# BUILDINGNUM+STREET pieces separated by whitespace only are merged into one span, as Presidio
# annotates a full name / street address as one entity.
AI4PRIVACY_TO_PRESIDIO: dict[str, str | None] = {
    "GIVENNAME": "PERSON",
    "SURNAME": "PERSON",
    "EMAIL": "EMAIL_ADDRESS",
    "TELEPHONENUM": "PHONE_NUMBER",
    "SOCIALNUM": "US_SSN",
    "CREDITCARDNUMBER": "CREDIT_CARD",
    "DATEOFBIRTH": "DATE_TIME",
    "STREET": "STREET_ADDRESS",
    "BUILDINGNUM": "STREET_ADDRESS",
    "CITY": "GPE",
    "ZIPCODE": "ZIP_CODE",
    "DRIVERLICENSENUM": "US_DRIVER_LICENSE",
    "PASSPORTNUM": "US_PASSPORT",
    "ACCOUNTNUM": "US_BANK_NUMBER",
    "IDCARDNUM": None,
    "TAXNUM": None,
    "USERNAME": None,
    "PASSWORD": None,
    # sibling releases
    "FIRSTNAME": "PERSON",
    "LASTNAME": "PERSON",
    "DATE": "DATE_TIME",
    "TIME": "DATE_TIME",
    "STATE": "GPE",
    "COUNTRY": "GPE",
    "IBAN": "IBAN_CODE",
    "IP": "IP_ADDRESS",
    "IPV4": "IP_ADDRESS",
    "IPV6": "IP_ADDRESS",
    "URL": "DOMAIN_NAME",
    "AGE": "AGE",
    "TITLE": "TITLE",
}


def load_presidio_json(path: str | Path) -> list[Record]:
    """presidio-evaluator JSON (``InputSample.to_dict``): ``[{"full_text", "spans":
    [{"entity_type", "entity_value", "start_position", "end_position"}], "template_id"?}]``."""
    path = Path(path)
    try:
        with utf8_errors_located(path):
            data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of samples")
    out = []
    for i, item in enumerate(data):
        where = f"{path}: record {i}"
        if not isinstance(item, dict) or not isinstance(item.get("full_text"), str):
            raise DataError(f"{where}: field 'full_text' missing or not a string")
        spans = [
            {
                "entity_type": sp.get("entity_type"),
                "start": sp.get("start_position"),
                "end": sp.get("end_position"),
                "entity_value": sp.get("entity_value"),
            }
            if isinstance(sp, dict)
            else sp
            for sp in item.get("spans") or []
        ]
        tid = item.get("template_id")
        if tid is None and isinstance(item.get("metadata"), dict):
            tid = item["metadata"].get("template_id")
        rec = validate_record({"text": item["full_text"], "spans": spans}, where)
        out.append(_record(rec["text"], rec["spans"], tid, "presidio_json"))
    return out


def load_pii_jsonl(path: str | Path) -> list[Record]:
    """One ``{"text", "spans": [{"entity_type","start","end"}], "template_id"?}`` per line (blank
    lines skipped).  Errors name the file, record index and line number."""
    path = Path(path)
    out = []
    with utf8_errors_located(path), path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}: record {len(out)} (line {lineno})"
            try:
                item = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{where}: invalid JSON: {err}") from None
            if not isinstance(item, dict):
                raise DataError(f"{where}: expected a JSON object")
            rec = validate_record({"text": item.get("text"), "spans": item.get("spans", [])}, where)
            out.append(_record(rec["text"], rec["spans"], item.get("template_id"), item.get("source", "jsonl")))
    return out


def convert_ai4privacy_row(row: dict, index: int, stats: Counter) -> Record | None:
    """One pii-masking-400k row (``source_text`` + ``privacy_mask``) -> record, None if invalid.
    Counts ``kept:<label>``, ``dropped:<label>`` and ``invalid_rows`` into ``stats``."""
    text, mask = row["source_text"], row.get("privacy_mask") or []
    if isinstance(mask, str):  # some releases store it as a JSON / Python-literal string
        try:
            mask = json.loads(mask)
        except json.JSONDecodeError:
            mask = ast.literal_eval(mask)
    spans = []
    for m in mask:
        target = AI4PRIVACY_TO_PRESIDIO.get(m["label"])
        stats[f"{'dropped' if target is None else 'kept'}:{m['label']}"] += 1
        if target is not None:
            spans.append(
                {"entity_type": target, "start": int(m["start"]), "end": int(m["end"]), "entity_value": m.get("value")}
            )
    try:
        rec = validate_record({"text": text, "spans": spans}, f"ai4privacy row {index}")
    except DataError as err:
        stats["invalid_rows"] += 1
        logger.debug("skipping %s", err)
        return None
    return _record(text, _merge_adjacent(text, rec["spans"], _MERGE_ADJACENT), None, "ai4privacy")


def load_ai4privacy(
    split: str = "train",
    language: str | None = "en",
    limit: int | None = None,
    stats: dict | None = None,
    dataset: str = "ai4privacy/pii-masking-400k",
) -> list[Record]:
    """ai4privacy/pii-masking-400k (``train`` / ``validation``) from the Hub, mapped with
    :data:`AI4PRIVACY_TO_PRESIDIO`; rows failing validation are skipped.  Kept/dropped labels and
    invalid rows are logged and added to ``stats`` if given.  ``language=None`` keeps all six."""
    from datasets import load_dataset

    try:
        ds = load_dataset(dataset, split=split)
    except Exception as exc:  # network, auth and missing-dataset errors all surface here
        raise DataError(
            f"Could not load hub dataset {dataset!r}: {exc}\nWithout network access, convert it "
            "elsewhere to JSONL and pass the file with --data PATH (or leave --data out for the "
            "offline generator)."
        ) from None
    if language is not None and "language" in ds.column_names:
        ds = ds.filter(lambda lang: lang == language, input_columns="language")
    counts: Counter = Counter()
    out = []
    for i, row in enumerate(ds):
        if limit is not None and len(out) >= limit:
            break
        if (rec := convert_ai4privacy_row(row, i, counts)) is not None:
            out.append(rec)
    dropped = {k[8:]: v for k, v in counts.items() if k.startswith("dropped:")}
    logger.info(
        "ai4privacy %s: %d records, dropped labels %s, invalid rows %d",
        split,
        len(out),
        dropped,
        counts["invalid_rows"],
    )
    if stats is not None:
        stats.update(counts)
    return out


def detect_format(spec: str) -> str:
    """``presidio`` for a .json file, ``jsonl`` for .jsonl, ``ai4privacy`` for an ``ai4privacy/...`` hub id."""
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".json":
        return "presidio"
    if path.suffix.lower() == ".jsonl":
        return "jsonl"
    if spec.lower().startswith("ai4privacy/"):
        return "ai4privacy"
    raise DataError(
        f"{spec}: cannot tell the PII data format; pass --data-format "
        f"({', '.join(DATA_FORMATS[1:])}): a Presidio .json list, a JSONL file of "
        '{"text", "spans": [{"entity_type", "start", "end"}]}, or an ai4privacy hub id'
    )


def read_pii_records(
    spec: str,
    data_format: str = "auto",
    split: str | None = None,
    limit: int | None = None,
    language: str | None = "en",
) -> list[Record]:
    """Validated span records from a Presidio JSON file, a generic JSONL file or an ai4privacy hub set."""
    fmt = detect_format(spec) if data_format == "auto" else data_format
    if fmt == "ai4privacy":
        return load_ai4privacy(split or "train", language=language, limit=limit, dataset=spec)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise DataError(f"{spec}: no such file")
    records = load_presidio_json(path) if fmt == "presidio" else load_pii_jsonl(path)
    if not records:
        raise DataError(f"{spec}: no records found")
    return records
