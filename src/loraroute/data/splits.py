"""Seeded train/validation/test splits: exact duplicates removed, classes stratified, groups kept whole."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from loraroute.data.text import duplicate_key


@dataclass
class Splits:
    train: list[dict]
    validation: list[dict]
    test: list[dict]
    notes: dict = field(default_factory=dict)  # what was removed or capped, reported in the eval report

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


def dedupe(records: list[dict], key: str = "text") -> tuple[list[dict], int]:
    """Drop records whose normalised text was already seen (first one wins). Returns (kept, removed)."""
    seen, kept = set(), []
    for rec in records:
        k = duplicate_key(rec[key])
        if k not in seen:
            seen.add(k)
            kept.append(rec)
    return kept, len(records) - len(kept)


def stratified_sample(records: list[dict], n: int, seed: int, label_key: str = "label") -> list[dict]:
    """At most ``n`` records, each class keeping its share (rounded, at least one)."""
    if n >= len(records):
        return list(records)
    rng = random.Random(seed)
    by_label = defaultdict(list)
    for rec in records:
        by_label[rec.get(label_key)].append(rec)
    out = []
    for label in sorted(by_label, key=str):
        group = by_label[label]
        take = max(1, round(n * len(group) / len(records)))
        out.extend(rng.sample(group, min(take, len(group))))
    rng.shuffle(out)
    return out[:n]


def split_records(
    records: list[dict],
    val_size: float,
    test_size: float,
    seed: int,
    label_key: str | None = "label",
    group_key: str | None = None,
    train_covers: Callable[[dict], Iterable[str]] | None = None,
) -> Splits:
    """Split after exact-duplicate removal, stratified by ``label_key``.

    With ``group_key`` every group (a template, a question's source document) lands whole in one split, so
    near-identical examples never cross splits. Groups are assigned per class of their first record.
    ``train_covers(record)`` names what training must keep seeing (a PII record's entity types): a group goes
    to test or validation only while every name in it keeps another group in train -- a type produced by one
    template alone cannot be both learnt and tested, so it is learnt.
    """
    records, removed = dedupe(records)
    rng = random.Random(seed)
    units: dict = defaultdict(list)  # stratum -> list of groups (each a list of records)
    groups: dict = defaultdict(list)
    for i, rec in enumerate(records):
        gid = rec.get(group_key) if group_key else None
        groups[gid if gid is not None else ("__single__", i)].append(rec)
    for members in groups.values():
        stratum = members[0].get(label_key) if label_key else None
        units[stratum].append(members)

    def names(unit: list[dict]) -> set:
        return {n for rec in unit for n in train_covers(rec)} if train_covers else set()

    train, val, test = [], [], []
    for stratum in sorted(units, key=str):
        unit_list = units[stratum]
        rng.shuffle(unit_list)
        total = sum(len(u) for u in unit_list)
        in_train = Counter(n for unit in unit_list for n in names(unit))  # groups still in train, per name
        # Fill test, then validation, by record count; a class with a single group stays in train.
        targets = [(test, round(total * test_size)), (val, round(total * val_size))]
        rest, i = [], 0
        for bucket, target in targets:
            got = 0
            while i < len(unit_list) and len(rest) + (len(unit_list) - i) > 1 and got < target:
                unit, held = unit_list[i], names(unit_list[i])
                i += 1
                if any(in_train[n] < 2 for n in held):
                    rest.append(unit)
                    continue
                in_train.subtract(held)
                bucket.extend(unit)
                got += len(unit)
        for unit in rest + unit_list[i:]:
            train.extend(unit)
    for part in (train, val, test):
        rng.shuffle(part)
    notes = {"duplicates_removed": removed}
    if group_key:
        notes["group_key"] = group_key
    return Splits(train, val, test, notes)
