"""Natural-prompt eval set and request-template training prompts for the intent router."""

from collections import Counter

import pytest

from loraroute.data.intent_requests import (
    INTENT_LABELS,
    category_templates,
    dedup_against,
    generate_request_prompts,
    load_natural_eval_set,
    near_duplicates,
)
from loraroute.data.text import word_key


@pytest.fixture(scope="module")
def eval_set():
    return load_natural_eval_set()


def test_eval_set_has_at_least_26_items_for_every_one_of_the_14_labels(eval_set):
    counts = Counter(r["label"] for r in eval_set)
    assert set(counts) == set(INTENT_LABELS)
    assert len(INTENT_LABELS) == 14
    assert min(counts.values()) >= 26, counts
    assert len(eval_set) >= 364


def test_eval_set_contains_no_duplicate_texts_after_normalisation(eval_set):
    norm = Counter(word_key(r["text"]) for r in eval_set)
    assert [t for t, c in norm.items() if c > 1] == []


def test_eval_set_has_no_near_duplicates_within_itself(eval_set):
    texts = [r["text"] for r in eval_set]
    pairs = [(i, j, s) for i, j, s in near_duplicates(texts, texts) if i != j]
    assert pairs == []


def test_generator_is_deterministic_for_a_seed_and_differs_across_seeds():
    a = generate_request_prompts(30, seed=7)
    b = generate_request_prompts(30, seed=7)
    c = generate_request_prompts(30, seed=8)
    assert a == b
    assert [r["text"] for r in a] != [r["text"] for r in c]


def test_generator_covers_all_14_labels_with_exactly_n_per_class_and_tags_records():
    recs = generate_request_prompts(40, seed=0)
    assert Counter(r["label"] for r in recs) == {lab: 40 for lab in INTENT_LABELS}
    for r in recs:
        assert set(r) == {"text", "label", "source", "template_id"}
        assert r["source"] == "request_templates"
        assert r["template_id"].split(":")[0] in {"common", r["label"]}
        assert r["text"].strip() and "{" not in r["text"]


def test_generator_texts_are_unique_within_each_label_at_200_per_class():
    recs = generate_request_prompts(200, seed=0)
    for lab in INTENT_LABELS:
        texts = [word_key(r["text"]) for r in recs if r["label"] == lab]
        # Typo noise may rarely collide two surface forms; allow a tiny slack.
        assert len(set(texts)) >= 0.98 * len(texts), lab


def test_every_label_has_between_15_and_30_templates():
    for lab in INTENT_LABELS:
        assert 15 <= len(category_templates(lab)) <= 30, lab


def test_near_duplicates_catches_planted_exact_and_near_copies_and_ignores_unrelated_text():
    eval_texts = [
        "Can my landlord keep my whole deposit for normal wear and tear?",
        "what is the capital of australia",
        "explain how a PID controller works in a drone",
    ]
    train_texts = [
        "can my landlord keep my whole deposit for normal wear and tear",  # exact after normalising
        "Explain how a PID controller works in a drone, please!!",  # near copy
        "recommend a sci-fi novel about generation ships",  # unrelated
        "how do I repot an orchid",  # unrelated
    ]
    hits = near_duplicates(train_texts, eval_texts)
    pairs = {(i, j) for i, j, _ in hits}
    assert (0, 0) in pairs
    assert (1, 2) in pairs
    assert all(i in (0, 1) for i, _, _ in hits)
    assert dict(((i, j), s) for i, j, s in hits)[(0, 0)] == 1.0


def test_near_duplicates_flags_long_near_copies_but_not_long_texts_sharing_only_an_opening():
    a = (
        "I have been running a small bakery for three years and I want to open a second "
        "location across town next spring"
    )
    b = "I have been running a small bakery and need advice on choosing a point of sale system for the front counter"
    c = a.replace("next spring", "next autumn")
    assert near_duplicates([a], [a], n=5) == [(0, 0, 1.0)]
    assert [(i, j) for i, j, _ in near_duplicates([c], [a], n=5)] == [(0, 0)]
    assert near_duplicates([b], [a], n=5, threshold=0.6) == []


def test_dedup_against_drops_only_the_contaminated_records():
    recs = [{"text": "what is the capital of australia?"}, {"text": "balance a redox equation"}]
    kept, removed = dedup_against(recs, ["What is the capital of Australia"])
    assert removed == 1
    assert kept == [recs[1]]


@pytest.mark.parametrize("seed", [0, 1])
def test_generated_training_prompts_at_200_per_class_have_no_near_duplicates_in_eval_set(eval_set, seed):
    recs = generate_request_prompts(200, seed=seed)
    hits = near_duplicates([r["text"] for r in recs], [r["text"] for r in eval_set])
    shown = [(recs[i]["text"], eval_set[j]["text"], s) for i, j, s in hits[:10]]
    assert hits == [], shown


def test_load_natural_eval_set_reports_file_line_and_field_for_bad_lines(monkeypatch, tmp_path):
    import loraroute.data.intent_requests as ir
    import loraroute.data.sources as sources

    bad = tmp_path / "intent_natural.jsonl"
    bad.write_text('{"text": "ok", "label": "math"}\n{"text": "x", "label": "maths"}\n')
    monkeypatch.setattr(sources, "package_file", lambda rel: bad)
    with pytest.raises(ValueError, match=r"intent_natural\.jsonl:2: field 'label'"):
        ir.load_natural_eval_set()
    bad.write_text('{"text": "", "label": "math"}\n')
    with pytest.raises(ValueError, match=r"intent_natural\.jsonl:1: field 'text'"):
        ir.load_natural_eval_set()
    bad.write_text('{"text": "ok", "label": "math"}\nnot json\n')
    with pytest.raises(ValueError, match=r"intent_natural\.jsonl:2: invalid JSON"):
        ir.load_natural_eval_set()


def test_no_template_filler_combination_at_all_near_duplicates_the_eval_set(eval_set):
    """Stronger than sampling: expand the whole template x slot space (~23k texts)."""
    import itertools

    import loraroute.data.intent_requests as ir

    texts = []
    for lab in INTENT_LABELS:
        slots = ir._slots(lab)
        for tpl in category_templates(lab).values():
            fields = ir._fields(tpl)
            for combo in itertools.product(*(slots[f] for f in fields)):
                texts.append(tpl.format(**dict(zip(fields, combo))))
    hits = near_duplicates(texts, [r["text"] for r in eval_set])
    assert hits == [], [(texts[i], eval_set[j]["text"], s) for i, j, s in hits[:10]]
