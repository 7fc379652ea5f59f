"""Every report writer: markdown tables, the confusion-matrix and ROC/PR plots, and :class:`Report`, what an
evaluation returns and the one writer of ``eval_report.{json,md}`` and the plots.

Serving and export import ``markdown_table`` from here, so this module must not import scikit-learn (seconds at
start-up); the ROC/PR curves come from ``binary``, which imports it only when called."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loraroute.extras import missing_modules
from loraroute.metrics.binary import as_binary, roc_pr_curves


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v):
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def per_class_table(report: dict) -> str:
    rows = [[label, m["precision"], m["recall"], m["f1"], m["support"]] for label, m in report["per_class"].items()]
    return markdown_table(["class", "precision", "recall", "f1", "support"], rows)


def summary_table(metrics: dict[str, Any]) -> str:
    rows = [[k, v] for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return markdown_table(["metric", "value"], rows)


def plot_confusion(matrix: list[list[int]], labels: list[str], path: Path, title: str) -> None:
    from loraroute.extras import pyplot

    if (plt := pyplot(path)) is None:
        return
    m = np.asarray(matrix)
    size = max(4.0, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if m[i, j]:
                ax.text(
                    j,
                    i,
                    str(m[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if m[i, j] > m.max() / 2 else "black",
                )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_roc_pr(y_true, scores, threshold: float, out_dir: Path, title: str, prefix: str = "") -> list[str]:
    """Write ``{prefix}roc_curve.png`` and ``{prefix}pr_curve.png`` (the threshold marked); returns the names."""
    from loraroute.extras import pyplot

    if (plt := pyplot(f"{Path(out_dir) / f'{prefix}roc_curve.png'} and {prefix}pr_curve.png")) is None:
        return []

    y, s = as_binary(y_true, scores)
    if len(set(y)) < 2:
        return []
    pred = s >= threshold
    at_fpr = (pred & (y == 0)).sum() / max(1, (y == 0).sum())
    at_recall = (pred & (y == 1)).sum() / max(1, y.sum())
    at_precision = (pred & (y == 1)).sum() / max(1, pred.sum())
    names = [f"{prefix}roc_curve.png", f"{prefix}pr_curve.png"]
    roc, pr = roc_pr_curves(y, s)
    for name, (xs, ys, point, xlabel, ylabel, log) in zip(
        names,
        [
            (*roc, (at_fpr, at_recall), "false-positive rate (log)", "recall", True),
            (*pr, (at_recall, at_precision), "recall", "precision", False),
        ],
    ):
        fig, ax = plt.subplots(figsize=(4.5, 4.0))
        ax.plot(xs, ys, lw=1.5)
        ax.plot(*point, "o", color="crimson", label=f"threshold {threshold:.4g}")
        if log:  # the operating region (FPR 0.1%-10%) is invisible on a linear axis
            ax.set_xscale("symlog", linthresh=1e-3)
            ax.set_xlim(0, 1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
        ax.legend(loc="lower right", fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(Path(out_dir) / name, dpi=110)
        plt.close(fig)
    return names


@dataclass(frozen=True)
class Figure:
    """A plot not drawn yet: ``draw(out_dir)`` writes ``names`` into ``out_dir``."""

    names: tuple[str, ...]
    draw: Callable[[Path], Any]


def confusion_figure(matrix: list[list[int]], labels: list[str], name: str, title: str) -> Figure:
    return Figure((name,), lambda out_dir: plot_confusion(matrix, labels, Path(out_dir) / name, title))


def roc_pr_figure(y_true, scores, threshold: float, title: str, prefix: str = "") -> Figure:
    """:func:`plot_roc_pr` deferred. Its ``names`` are known before drawing, as a report lists them: none without
    matplotlib or with a single class, where ``plot_roc_pr`` draws nothing either."""
    y, _ = as_binary(y_true, scores)
    drawn = not missing_modules("matplotlib") and len(set(y)) == 2
    names = (f"{prefix}roc_curve.png", f"{prefix}pr_curve.png") if drawn else ()
    return Figure(names, lambda out_dir: plot_roc_pr(y_true, scores, threshold, out_dir, title, prefix))


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@dataclass
class Report:
    """What a task's evaluation found. Evaluating writes nothing: the trainer adds its own section to ``data``, then
    :meth:`write` puts everything in the model directory at once."""

    data: dict[str, Any]  # eval_report.json
    markdown: str  # eval_report.md
    figures: list[Figure] = field(default_factory=list)
    files: dict[str, Any] = field(default_factory=dict)  # other JSON files the evaluation made: thresholds.json

    def write(self, out_dir: Path) -> None:
        """Write ``eval_report.json``, ``eval_report.md``, :attr:`files` and the figures into ``out_dir``."""
        out_dir = Path(out_dir)
        for name, data in self.files.items():
            _write_json(out_dir / name, data)
        _write_json(out_dir / "eval_report.json", self.data)
        (out_dir / "eval_report.md").write_text(self.markdown.rstrip() + "\n")
        for figure in self.figures:
            figure.draw(out_dir)
