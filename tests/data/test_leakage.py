"""Tests for loraroute.data.leakage."""

from __future__ import annotations

import random
import time

import pytest

from loraroute.data.leakage import DataLeakageError, assert_no_leakage, find_leaks

TRAIN = [
    "Which of the following enzymes unwinds the DNA double helix during replication in eukaryotic cells?",
    "A firm's marginal cost curve intersects its average total cost curve at which point?",
    "What is the time complexity of merge sort on a list of n elements in the worst case?",
    "Under common law, what is required for a contract to be enforceable between two parties?",
    "Define GDP.",
]
UNRELATED_EVAL = [
    "Which philosopher wrote the Critique of Pure Reason and when was it published?",
    "What is the boiling point of water at sea level in degrees Celsius?",
    "Who was the first emperor of Rome after the fall of the Republic?",
    "Which of the following best describes the role of the hippocampus in memory formation?",
]


def test_exact_duplicate_after_normalisation_is_caught():
    evals = UNRELATED_EVAL + [
        "which of the following enzymes unwinds the DNA double-helix during replication in eukaryotic cells"
    ]
    leaks = find_leaks(TRAIN, evals)
    assert leaks == [{"train_idx": 0, "eval_idx": 4, "kind": "exact", "score": 1.0}]


def test_paraphrase_sharing_a_long_ngram_is_caught():
    paraphrase = (
        "In a competitive market, a firm's marginal cost curve intersects its average total cost curve at which point?"
    )
    leaks = find_leaks(TRAIN, UNRELATED_EVAL + [paraphrase])
    assert len(leaks) == 1
    leak = leaks[0]
    assert (leak["train_idx"], leak["eval_idx"], leak["kind"]) == (1, 4, "ngram")
    assert 0.5 <= leak["score"] < 1.0


def test_unrelated_questions_and_shared_boilerplate_are_ignored():
    assert find_leaks(TRAIN, UNRELATED_EVAL) == []
    # "which of the following" alone is boilerplate, not a leak
    assert find_leaks(TRAIN, ["Which of the following is a prime number greater than ten and less than twenty?"]) == []


def test_short_questions_use_shorter_ngrams_and_tiny_ones_exact_only():
    # 5 words -> 4-grams
    assert find_leaks(["Please define GDP in economics today"], ["define GDP in economics"]) == [
        {"train_idx": 0, "eval_idx": 0, "kind": "ngram", "score": 1.0}
    ]
    # 2 words: only an exact match counts
    assert find_leaks(["Define GDP in words."], ["Define GDP"]) == []
    assert find_leaks(TRAIN, ["define gdp"])[0]["kind"] == "exact"


def test_assert_no_leakage_raises_readable_error():
    assert_no_leakage(TRAIN, UNRELATED_EVAL, ("mmlu_pro/validation", "mmlu_pro/test"))
    with pytest.raises(DataLeakageError) as info:
        assert_no_leakage(TRAIN, UNRELATED_EVAL + [TRAIN[2].upper()], ("mmlu_pro/validation", "mmlu_pro/test"))
    err = info.value
    assert isinstance(err, ValueError)
    msg = str(err)
    assert "'mmlu_pro/test'" in msg and "'mmlu_pro/validation'" in msg
    assert "eval[4] ~ train[2] exact" in msg and "merge sort" in msg.lower()
    assert err.leaks == [{"train_idx": 2, "eval_idx": 4, "kind": "exact", "score": 1.0}]


def test_error_lists_only_the_first_few_leaks():
    evals = [q + "!" for q in TRAIN[:4]] * 3
    with pytest.raises(DataLeakageError) as info:
        assert_no_leakage(TRAIN, evals, "train", max_listed=3)
    assert len(info.value.leaks) == 12
    assert "... and 9 more" in str(info.value)


def test_ten_thousand_by_two_thousand_runs_in_seconds():
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(5000)]
    train = [" ".join(rng.choices(vocab, k=rng.randint(8, 60))) for _ in range(10_000)]
    evals = [" ".join(rng.choices(vocab, k=rng.randint(8, 60))) for _ in range(2_000)]
    evals[7] = train[123]
    evals[8] = "prefix words here " + " ".join(train[456].split()[:20])
    start = time.perf_counter()
    leaks = find_leaks(train, evals)
    elapsed = time.perf_counter() - start
    found = {(leak["eval_idx"], leak["train_idx"], leak["kind"]) for leak in leaks}
    assert (7, 123, "exact") in found
    assert any(e == 8 and t == 456 for e, t, _ in found)
    assert elapsed < 15, f"find_leaks took {elapsed:.1f}s"
