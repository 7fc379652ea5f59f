"""Scores and reports, one module per kind of output:

- ``classification``: softmax, expected calibration error, the multi-class report (accuracy, macro/weighted F1,
  per-class P/R/F1, confusion matrix), also for generated answers that may name no label;
- ``binary``: detector scores: decision threshold for a target false-positive rate, recall at a false-positive
  rate, ROC/PR AUC and everything at one threshold;
- ``spans``: entity-level span scores (exact and overlap), per-message ``has_pii`` scores, token accuracy;
- ``reports``: every writer: markdown tables, confusion and ROC/PR plots, ``eval_report.{json,md}``.

Nothing is re-exported here: ``reports`` is imported by serving and export, which must not pay for scikit-learn,
so import the module you need.
"""
