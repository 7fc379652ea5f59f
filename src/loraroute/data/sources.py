"""Reading examples: local JSONL/JSON/CSV/Parquet files or hub datasets, with errors that point at the bad line.

Every loader returns plain ``list[dict]`` rows tagged with ``_where`` ("file.jsonl:12") so later validation can
name the exact line and field that is wrong.
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LOCAL_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


class DataError(ValueError):
    """Bad input data; the message names the file, line (or record) and field."""


@contextlib.contextmanager
def utf8_errors_located(path: Path) -> Iterator[None]:
    """Re-raise a UnicodeDecodeError from reading ``path`` inside the block as a DataError naming its line and column.

    The error's own offset counts from the start of an internal read buffer, not of the file, so the file's bytes
    are decoded again to find the first bad byte.
    """
    try:
        yield
    except UnicodeDecodeError as buffered:
        raw = Path(path).read_bytes()
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as whole:
            bad = whole.start
        else:  # decoded fine the second time (the file changed): report what we have
            raise DataError(f"{path}: not valid UTF-8 ({buffered.reason})") from None
        line_start = raw.rfind(b"\n", 0, bad) + 1
        line = raw.count(b"\n", 0, bad) + 1
        column = len(raw[line_start:bad].decode("utf-8")) + 1  # in characters, as an editor counts
        raise DataError(f"{path}:{line}: not valid UTF-8 (byte 0x{raw[bad]:02x} at column {column})") from None


def package_file(relative: str) -> Path:
    """A data file shipped inside the loraroute package (eval sets, templates), e.g. "eval_sets/x.jsonl"."""
    import importlib.resources

    return Path(str(importlib.resources.files("loraroute.data").joinpath(*relative.split("/"))))


def read_labelled_set(relative: str, labels: tuple[str, ...], extra: tuple[str, ...] = ()) -> list[dict]:
    """A shipped ``{"text", "label", ...}`` JSONL set, validated: errors name the file, line and field."""
    path = package_file(relative)
    rows = read_local(path)
    records = text_label_records(rows, "text", "label", relative)
    for row, record in zip(rows, records):
        if record["label"] not in labels:
            raise DataError(f"{row['_where']}: field 'label' is {record['label']!r}, expected one of {list(labels)}")
        for name in extra:
            if not isinstance(row.get(name), str) or not row[name].strip():
                raise DataError(f"{row['_where']}: field {name!r} must be a non-empty string")
            record[name] = row[name]
    return records


def read_rows(spec: str, config: str | None = None, split: str | None = None) -> list[dict[str, Any]]:
    """Rows from a local file (by suffix) or, if ``spec`` is not a path, from the hub via ``datasets``."""
    path = Path(spec).expanduser()
    if path.exists():
        return read_local(path)
    if path.suffix in LOCAL_SUFFIXES or spec.startswith((".", "/", "~")):
        raise DataError(f"{spec}: no such file")
    return read_hub(spec, config, split)


def read_local(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(path)
    if suffix == ".json":
        return _read_json(path)
    if suffix == ".csv":
        return _read_csv(path)
    if suffix == ".parquet":
        return _read_parquet(path)
    raise DataError(f"{path}: unsupported file type {suffix!r}; use one of {', '.join(LOCAL_SUFFIXES)}")


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with utf8_errors_located(path), path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            row["_where"] = f"{path}:{lineno}"
            rows.append(row)
    return rows


def _read_json(path: Path) -> list[dict]:
    try:
        with utf8_errors_located(path):
            data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if isinstance(data, dict):  # {"data": [...]} / {"train": [...]} style wrappers
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise DataError(f"{path}: expected a list of records (or an object holding exactly one list)")
        data = lists[0]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a list of records, got {type(data).__name__}")
    rows = []
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise DataError(f"{path}: record {i}: expected an object, got {type(row).__name__}")
        rows.append({**row, "_where": f"{path}: record {i}"})
    return rows


def _read_csv(path: Path) -> list[dict]:
    with utf8_errors_located(path), path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = []
        for row in reader:
            if None in row:
                raise DataError(f"{path}:{reader.line_num}: more fields than the header has")
            row["_where"] = f"{path}:{reader.line_num}"
            rows.append(row)
    return rows


def _read_parquet(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise DataError(f"{path}: cannot read as Parquet ({exc})") from None
    return [{**row, "_where": f"{path}: row {i}"} for i, row in enumerate(table.to_pylist())]


def read_hub(dataset_id: str, config: str | None = None, split: str | None = None) -> list[dict]:
    """Rows of a hub dataset (all splits concatenated unless ``split`` is given)."""
    import datasets

    try:
        loaded = datasets.load_dataset(dataset_id, config, split=split)
    except Exception as exc:  # network, auth and missing-dataset errors all surface here
        raise DataError(
            f"Could not load hub dataset {dataset_id!r}: {exc}\nWithout network access, pass a local "
            ".jsonl/.json/.csv/.parquet file with --data PATH (or leave --data out for the offline default)."
        ) from None
    parts = [loaded] if split else [loaded[name] for name in loaded]
    rows = []
    for part in parts:
        for i, row in enumerate(part):
            rows.append({**row, "_where": f"{dataset_id}[{part.split}] row {i}"})
    return rows


def text_label_records(rows: list[dict], text_column: str, label_column: str | None, source: str) -> list[dict]:
    """Validate and project rows to ``{"text", "label", "source"}``; errors name the line and the field."""
    if not rows:
        raise DataError(f"{source}: no records found")
    out = []
    for row in rows:
        where = row.get("_where", source)
        if text_column not in row:
            raise DataError(f"{where}: missing field {text_column!r} (available: {_fields(row)})")
        text = row[text_column]
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{where}: field {text_column!r} must be a non-empty string, got {text!r:.60}")
        record = {"text": text, "source": source}
        if label_column is not None:
            if label_column not in row:
                raise DataError(f"{where}: missing field {label_column!r} (available: {_fields(row)})")
            label = row[label_column]
            if label is None or (isinstance(label, str) and not label.strip()):
                raise DataError(f"{where}: field {label_column!r} is empty")
            if isinstance(label, float) and label.is_integer():
                label = int(label)
            record["label"] = str(label).strip()
        out.append(record)
    return out


def _fields(row: dict) -> str:
    return ", ".join(k for k in row if k != "_where") or "none"
