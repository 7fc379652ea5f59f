"""Jailbreak data that is not shipped offline: hub datasets (need network) and local labelled files.

* ``lmsys/toxic-chat`` (config ``toxicchat0124``; CC BY-NC 4.0): ~10k real user prompts (train + test splits).
  text = ``user_input``; label = the annotated ``jailbreaking`` column (1 = jailbreak). Toxic prompts that are not
  jailbreak attempts (``toxicity`` 1, ``jailbreaking`` 0) stay benign: this detector flags attempts to subvert the
  model, not offensive language. Jailbreaks are ~2% of rows, hence ``class_balance=weights`` for this source.
* ``OpenSafetyLab/Salad-Data`` (config ``attack_enhanced_set``; Apache-2.0): ~5k attacks, text = ``augq`` (a
  harmful base question wrapped by an attack method). It has one class, so an equal number of the offline benign
  prompts (:func:`loraroute.data.jailbreak.benign_prompts`) is added.
* Any other dataset id or a local JSONL/JSON/CSV/Parquet file: ``text_column``/``label_column`` (default
  ``text``/``label``); label values are mapped by :func:`to_label`.
"""

from __future__ import annotations

from loraroute.data.sources import DataError, read_rows, text_label_records

TOXIC_CHAT = "lmsys/toxic-chat"
SALAD = "opensafetylab/salad-data"
# Known hub datasets: (default config, text column, label column or None for attack-only data).
HUB_DATASETS = {
    TOXIC_CHAT: ("toxicchat0124", "user_input", "jailbreaking"),
    SALAD: ("attack_enhanced_set", "augq", None),
}

_BENIGN = {"0", "false", "no", "benign", "safe", "negative", "legitimate"}
_JAILBREAK = {
    "1",
    "true",
    "yes",
    "jailbreak",
    "jailbreaking",
    "injection",
    "prompt_injection",
    "attack",
    "malicious",
    "unsafe",
    "positive",
}


def to_label(value: str, where: str, column: str) -> str:
    """Map a label value (0/1, true/false, yes/no, or a class name) to "benign" or "jailbreak"."""
    key = str(value).strip().lower()
    if key in _BENIGN:
        return "benign"
    if key in _JAILBREAK:
        return "jailbreak"
    raise DataError(
        f"{where}: field {column!r} has value {value!r}, which is not a benign/jailbreak label; "
        f"use 0/1, true/false or one of: {', '.join(sorted(_BENIGN | _JAILBREAK))}"
    )


def labelled_records(
    data: str,
    config: str | None = None,
    split: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    seed: int = 0,
) -> list[dict]:
    """``{"text", "label", "source"}`` records from a hub dataset id or a local file; errors name line and field."""
    known = HUB_DATASETS.get(data.lower())
    default_config, default_text, default_label = known or (None, "text", "label")
    text_col = text_column or default_text
    label_col = label_column or default_label
    rows = read_rows(data, config or default_config, split)
    if label_col is None:  # attack-only corpus: every row is an attack, benign side from the offline prompts
        from loraroute.data.jailbreak import benign_prompts

        attacks = [dict(r, label="jailbreak") for r in text_label_records(rows, text_col, None, data)]
        return attacks + benign_prompts(seed, len(attacks))
    records = text_label_records(rows, text_col, label_col, data)
    return [
        dict(rec, label=to_label(rec["label"], row.get("_where", data), label_col)) for rec, row in zip(records, rows)
    ]
