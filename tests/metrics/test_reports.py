"""Report writers: markdown tables, eval_report.{json,md}, and an import that stays free of scikit-learn."""

from __future__ import annotations

import json
import subprocess
import sys

from loraroute.metrics.reports import (
    Figure,
    Report,
    confusion_figure,
    markdown_table,
    per_class_table,
    roc_pr_figure,
    summary_table,
)


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


def test_report_writes_the_json_and_the_markdown_side_by_side(tmp_path):
    report = {"task": "intent", "test": {"accuracy": 0.5, "label": "café"}}
    Report(report, "# intent\n\n\n").write(tmp_path)
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


def test_report_writes_its_files_and_draws_each_figure_once(tmp_path):
    drawn = []
    figure = Figure(("a.png",), lambda out_dir: drawn.append(out_dir))
    Report({"task": "x"}, "# x", [figure], files={"thresholds.json": {"threshold": 0.25}}).write(tmp_path)
    assert drawn == [tmp_path]
    assert json.loads((tmp_path / "thresholds.json").read_text()) == {"threshold": 0.25}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval_report.json", "eval_report.md", "thresholds.json"]


def test_a_roc_pr_figure_names_the_files_it_draws_before_drawing_them(tmp_path):
    figure = roc_pr_figure([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8], 0.5, "t", prefix="blind_")
    assert figure.names == ("blind_roc_curve.png", "blind_pr_curve.png") and not list(tmp_path.iterdir())
    assert figure.draw(tmp_path) == list(figure.names)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(figure.names)
    one_class = roc_pr_figure([1, 1], [0.1, 0.9], 0.5, "t")
    assert one_class.names == () and one_class.draw(tmp_path / "none") == []


def test_a_roc_pr_figure_names_nothing_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    figure = roc_pr_figure([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8], 0.5, "t")
    assert figure.names == () and figure.draw(tmp_path) == []


def test_a_confusion_figure_draws_its_one_file(tmp_path):
    figure = confusion_figure([[1, 0], [0, 1]], ["a", "b"], "confusion_matrix.png", "t")
    assert figure.names == ("confusion_matrix.png",) and not list(tmp_path.iterdir())
    figure.draw(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["confusion_matrix.png"]
