"""Report writers: markdown tables, eval_report.{json,md}, and an import that stays free of scikit-learn."""

from __future__ import annotations

import json
import subprocess
import sys

from loraroute.metrics.reports import markdown_table, per_class_table, summary_table, write_report


def test_markdown_table_formats_floats_to_four_places_and_leaves_the_rest():
    table = markdown_table(["name", "value"], [["a", 0.123456], ["b", 3], ["c", None]])
    assert table.splitlines() == [
        "| name | value |",
        "|---|---|",
        "| a | 0.1235 |",
        "| b | 3 |",
        "| c | None |",
    ]


def test_summary_table_keeps_numbers_and_drops_booleans_and_the_rest():
    table = summary_table({"accuracy": 0.5, "num_examples": 4, "passed": True, "labels": ["a"], "note": "x"})
    assert table.splitlines()[2:] == ["| accuracy | 0.5000 |", "| num_examples | 4 |"]


def test_per_class_table_has_one_row_per_class_in_report_order():
    report = {
        "per_class": {
            "b": {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2},
            "a": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        }
    }
    lines = per_class_table(report).splitlines()
    assert lines[0] == "| class | precision | recall | f1 | support |"
    assert lines[2:] == ["| b | 1.0000 | 0.5000 | 0.6667 | 2 |", "| a | 0.0000 | 0.0000 | 0.0000 | 1 |"]


def test_write_report_writes_the_json_and_the_markdown_side_by_side(tmp_path):
    report = {"task": "intent", "test": {"accuracy": 0.5, "label": "café"}}
    write_report(tmp_path, report, "# intent\n\n\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval_report.json", "eval_report.md"]
    assert json.loads((tmp_path / "eval_report.json").read_text()) == report
    assert "café" in (tmp_path / "eval_report.json").read_text()  # written as text, not \\u escapes
    assert (tmp_path / "eval_report.md").read_text() == "# intent\n"


def test_importing_reports_does_not_pull_in_scikit_learn():
    # serving and export import markdown_table; scikit-learn costs seconds at start-up
    code = "import sys, loraroute.metrics.reports\nprint('sklearn' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
