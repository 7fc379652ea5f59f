"""Bad data files give errors that name the file, the line and the field."""

import json

import pytest

from loraroute.config import TrainConfig
from loraroute.data.sources import DataError, read_local, read_rows, text_label_records
from loraroute.tasks import get_task


def load(path, text="text", label="label"):
    return text_label_records(read_local(path), text, label, str(path))


def test_jsonl_with_a_broken_line_names_the_file_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "ok", "label": "a"}\n{"text": "broken", \n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: invalid JSON"):
        read_local(path)


# The bad byte is the 4th character of line 3; the CSV's line 3 starts with a two-byte "é" (columns count characters).
BAD_LINE_3 = {
    ".jsonl": b'{"text": "one", "label": "a"}\n{"text": "two", "label": "a"}\n{"t\xffxt": "three"}\n',
    ".csv": b'text,label\n"one",a\n"\xc3\xa9t\xffe",a\n',
    ".json": b'[\n{"text": "one", "label": "a"},\n{"t\xffxt": "two"}\n]\n',
}


@pytest.mark.parametrize("suffix", sorted(BAD_LINE_3))
def test_a_file_that_is_not_utf8_names_the_file_line_and_column_of_the_bad_byte(tmp_path, suffix):
    path = tmp_path / f"d{suffix}"
    path.write_bytes(BAD_LINE_3[suffix])
    with pytest.raises(ValueError) as caught:
        read_local(path)
    assert str(caught.value) == f"{path}:3: not valid UTF-8 (byte 0xff at column 4)"


def test_pii_files_that_are_not_utf8_name_the_line_too(tmp_path):
    from loraroute.data.pii_sources import load_pii_jsonl, load_presidio_json

    path = tmp_path / "pii.jsonl"
    path.write_bytes(BAD_LINE_3[".jsonl"])
    with pytest.raises(DataError, match=r"pii\.jsonl:3: not valid UTF-8 \(byte 0xff at column 4\)"):
        load_pii_jsonl(path)
    path = tmp_path / "pii.json"
    path.write_bytes(BAD_LINE_3[".json"])
    with pytest.raises(DataError, match=r"pii\.json:3: not valid UTF-8"):
        load_presidio_json(path)


def test_missing_field_names_the_line_and_field_and_lists_available_ones(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "ok", "label": "a"}\n{"question": "no text", "label": "b"}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: missing field 'text' \(available: question, label\)"):
        load(path)


def test_empty_text_and_empty_label_are_errors(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "  ", "label": "a"}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:1: field 'text' must be a non-empty string"):
        load(path)
    path.write_text('{"text": "fine", "label": ""}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:1: field 'label' is empty"):
        load(path)


def test_csv_rows_are_numbered_as_in_the_file(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('text,label\nhello,a\n"multi\nline",b\n,c\n')
    with pytest.raises(DataError, match=r"d\.csv:5: field 'text'"):
        load(path)
    path.write_text("text,label\nhello,a,extra\n")
    with pytest.raises(DataError, match=r"d\.csv:2: more fields than the header"):
        read_local(path)


def test_json_and_parquet_records_are_named_by_index(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"text": "a", "label": "x"}, {"label": "y"}]))
    with pytest.raises(DataError, match=r"d\.json: record 1: missing field 'text'"):
        load(path)
    pq.write_table(pa.table({"text": ["a", "b"], "cat": ["x", "y"]}), tmp_path / "d.parquet")
    with pytest.raises(DataError, match=r"d\.parquet: row 0: missing field 'label'"):
        load(tmp_path / "d.parquet")
    assert [r["label"] for r in load(tmp_path / "d.parquet", label="cat")] == ["x", "y"]


def test_missing_file_and_unknown_suffix_are_clear(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_rows(str(tmp_path / "nope.jsonl"))
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(DataError, match="unsupported file type"):
        read_rows(str(tmp_path / "d.txt"))


def test_unreachable_hub_dataset_says_to_pass_a_local_file(monkeypatch):
    import datasets.config
    import huggingface_hub.constants

    # Offline mode answers at once; without it the same error comes after the hub client's network retries.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError, match="local"):
        read_rows("no-such-org/no-such-dataset")


def test_custom_columns_reach_the_task(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"prompt": f"p{i} {'alpha' if i % 2 else 'beta'}", "cat": "a" if i % 2 else "b"} for i in range(40)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    cfg = TrainConfig(data=str(path), text_column="prompt", label_column="cat")
    splits = get_task("intent").load_splits(cfg)
    assert {r["label"] for r in splits.train} == {"a", "b"}
