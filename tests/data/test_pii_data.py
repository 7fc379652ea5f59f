"""PII data sources, validation, balancing and template-grouped splits (offline)."""

import json
import random
import re
from collections import Counter

import pytest

from loraroute.data.pii import (
    CUE_WORDS,
    PRESIDIO_ENTITIES,
    balanced_sample,
    entity_counts,
    generate_presidio_records,
    presidio_template_types,
    replace_context_words,
    restrict_entities,
    split_address_spans,
    validate_record,
)
from loraroute.data.pii_natural import NATURAL_SETS, load_natural_set, parse_marked
from loraroute.data.pii_sources import (
    convert_ai4privacy_row,
    detect_format,
    load_pii_jsonl,
    load_presidio_json,
    read_pii_records,
)
from loraroute.data.sources import DataError
from loraroute.data.splits import split_records
from loraroute.tasks.pii_spans import bio_labels


@pytest.fixture(scope="module")
def generated():
    return generate_presidio_records(300, seed=7)


def _span(t, s, e):
    return {"entity_type": t, "start": s, "end": e}


# ----------------------------------------------------------------------------- generator


def test_presidio_entities_are_the_17_sorted_template_types_giving_35_labels():
    assert len(PRESIDIO_ENTITIES) == 17 and sorted(PRESIDIO_ENTITIES) == PRESIDIO_ENTITIES
    assert set().union(*presidio_template_types().values()) == set(PRESIDIO_ENTITIES)
    assert len(bio_labels(PRESIDIO_ENTITIES)) == 35


def test_generator_records_have_valid_spans_known_types_and_template_ids(generated):
    assert len(generated) == 300
    for i, rec in enumerate(generated):
        validate_record(rec, f"generated {i}")
        assert rec["source"] == "presidio_generator"
        assert rec["template_id"].startswith("presidio:")
        for sp in rec["spans"]:
            assert sp["entity_type"] in PRESIDIO_ENTITIES
            piece = rec["text"][sp["start"] : sp["end"]]
            assert piece == piece.strip()
    assert len(entity_counts(generated)) >= 10
    assert not any("\\n" in rec["text"] for rec in generated)  # template "\n" became newlines


def test_generator_skips_fake_people_with_missing_fields():
    # seed 42's first 1500 draws include fake people whose city pandas prints as "nan" (a GPE span, or a word
    # inside an address span)
    recs = generate_presidio_records(1500, seed=42)
    assert len(recs) == 1500
    assert not any(re.search(r"\bnan\b", rec["text"]) for rec in recs)


def test_generator_is_deterministic_per_seed_and_leaves_global_random_alone(generated):
    state = random.getstate()
    again = generate_presidio_records(300, seed=7)
    assert random.getstate() == state
    assert again == generated
    other = generate_presidio_records(300, seed=8)
    assert other != generated


def test_generator_entity_filter_only_uses_templates_with_those_types():
    recs = generate_presidio_records(60, seed=1, entities=["EMAIL_ADDRESS", "PERSON"])
    kinds = entity_counts(recs)
    assert set(kinds) <= {"EMAIL_ADDRESS", "PERSON"} and kinds["PERSON"] > 0
    assert all(rec["spans"] for rec in recs)
    with pytest.raises(ValueError, match="no presidio-evaluator template"):
        generate_presidio_records(5, seed=1, entities=["NOT_A_TYPE"])


# ----------------------------------------------------------------------------- files / validation


def test_presidio_json_is_loaded_and_bad_entity_value_names_file_record_and_field(tmp_path):
    good = {
        "full_text": "I am Ann Lee.",
        "template_id": 4,
        "spans": [{"entity_type": "PERSON", "entity_value": "Ann Lee", "start_position": 5, "end_position": 12}],
    }
    path = tmp_path / "synth.json"
    path.write_text(json.dumps([good]))
    [rec] = load_presidio_json(path)
    assert rec == {
        "text": "I am Ann Lee.",
        "spans": [_span("PERSON", 5, 12)],
        "template_id": "4",
        "source": "presidio_json",
    }
    bad = json.loads(json.dumps(good))
    bad["spans"][0]["entity_value"] = "Ann Le"
    path.write_text(json.dumps([good, bad]))
    with pytest.raises(ValueError, match=r"synth\.json: record 1.*entity_value"):
        load_presidio_json(path)


@pytest.mark.parametrize(
    "spans, field",
    [
        ([_span("PERSON", 3, 3)], "start'/'end"),
        ([_span("PERSON", 5, 99)], "start'/'end"),
        ([{"entity_type": "PERSON", "start": "0", "end": 2}], "'start'"),
        ([{"start": 0, "end": 2}], "'entity_type'"),
        ([_span("PERSON", 0, 5), _span("GPE", 4, 8)], "overlap"),
        ([_span("PERSON", 3, 5)], "whitespace"),
    ],
)
def test_bad_jsonl_span_raises_naming_file_record_line_and_field(tmp_path, spans, field):
    path = tmp_path / "pii.jsonl"
    lines = [
        json.dumps({"text": "Ann  Lee is here", "spans": [_span("PERSON", 0, 3)]}),
        "",
        json.dumps({"text": "Ann  Lee is here", "spans": spans}),
    ]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError) as err:
        load_pii_jsonl(path)
    msg = str(err.value)
    assert "pii.jsonl: record 1 (line 3)" in msg and field in msg


def test_jsonl_loads_sorted_spans_and_template_ids(tmp_path):
    path = tmp_path / "ok.jsonl"
    path.write_text(
        json.dumps(
            {"text": "Ann met Bob", "template_id": "t1", "spans": [_span("PERSON", 8, 11), _span("PERSON", 0, 3)]}
        )
        + "\n"
    )
    [rec] = load_pii_jsonl(path)
    assert rec["spans"] == [_span("PERSON", 0, 3), _span("PERSON", 8, 11)]
    assert rec["template_id"] == "t1" and rec["source"] == "jsonl"


def test_ai4privacy_row_maps_labels_merges_name_parts_and_counts_dropped():
    text = "Hi Ann Lee, user ann77, mail ann@x.io, city Paris."
    mask = [
        {"label": "GIVENNAME", "start": 3, "end": 6, "value": "Ann"},
        {"label": "SURNAME", "start": 7, "end": 10, "value": "Lee"},
        {"label": "USERNAME", "start": 17, "end": 22, "value": "ann77"},
        {"label": "EMAIL", "start": 29, "end": 37, "value": "ann@x.io"},
        {"label": "CITY", "start": 44, "end": 49, "value": "Paris"},
    ]
    stats = Counter()
    rec = convert_ai4privacy_row({"source_text": text, "privacy_mask": json.dumps(mask)}, 0, stats)
    assert rec["spans"] == [_span("PERSON", 3, 10), _span("EMAIL_ADDRESS", 29, 37), _span("GPE", 44, 49)]
    assert rec["template_id"] is None and rec["source"] == "ai4privacy"
    assert stats["dropped:USERNAME"] == 1 and stats["kept:GIVENNAME"] == 1
    mask[0]["value"] = "Bob"
    assert convert_ai4privacy_row({"source_text": text, "privacy_mask": mask}, 1, stats) is None
    assert stats["invalid_rows"] == 1


# ----------------------------------------------------------------------------- selection / splits


def test_restrict_entities_drops_other_spans_or_records():
    recs = [
        {"text": "Ann Paris", "spans": [_span("PERSON", 0, 3), _span("GPE", 4, 9)], "template_id": None, "source": "x"},
        {"text": "Bob", "spans": [_span("PERSON", 0, 3)], "template_id": None, "source": "x"},
    ]
    assert [r["spans"] for r in restrict_entities(recs, ["PERSON"])] == [
        [_span("PERSON", 0, 3)],
        [_span("PERSON", 0, 3)],
    ]
    assert len(restrict_entities(recs, ["PERSON"], drop_records_with_other=True)) == 1


def test_template_grouped_split_never_shares_templates_between_parts(generated):
    extra = [{"text": f"dup {i % 5}", "spans": [], "template_id": None, "source": "x"} for i in range(40)]
    recs = generated + extra
    splits = split_records(recs, 0.15, 0.15, seed=3, label_key=None, group_key="template_id")
    parts = (splits.train, splits.validation, splits.test)
    # exact duplicates ("dup 0" x 8) are removed before splitting, so they cannot straddle splits either
    assert sum(map(len, parts)) == len(recs) - splits.notes["duplicates_removed"]
    keys = [{r["template_id"] or "text:" + r["text"] for r in part} for part in parts]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    total = sum(map(len, parts))
    assert 0.05 < len(splits.test) / total < 0.3 and 0.05 < len(splits.validation) / total < 0.3
    again = split_records(recs, 0.15, 0.15, seed=3, label_key=None, group_key="template_id")
    assert (again.train, again.validation, again.test) == parts


def test_balanced_sample_balances_entity_types_and_prefers_rare_ones():
    def rec(i, *types):
        text = " ".join(f"w{i}{t[:2]}" for t in types) or f"none {i}"
        spans, pos = [], 0
        for t in types:
            w = f"w{i}{t[:2]}"
            spans.append(_span(t, pos, pos + len(w)))
            pos += len(w) + 1
        return {"text": text, "spans": spans, "template_id": None, "source": "x"}

    recs = (
        [rec(i, "PERSON") for i in range(200)]
        + [rec(i, "EMAIL_ADDRESS") for i in range(12)]
        + [rec(i, "PHONE_NUMBER") for i in range(12)]
        + [rec(i, "US_SSN", "PERSON") for i in range(4)]
        + [rec(i) for i in range(50)]
    )
    sample = balanced_sample(recs, 30, seed=0)
    assert len(sample) == 30 and len({r["text"] for r in sample}) == 30
    counts = entity_counts(sample)
    assert counts["US_SSN"] == 4  # every record with the rarest type is taken
    big3 = [counts["PERSON"], counts["EMAIL_ADDRESS"], counts["PHONE_NUMBER"]]
    assert max(big3) - min(big3) <= 1
    assert balanced_sample(recs, 30, seed=0) == sample
    assert len(balanced_sample(recs, 1000, seed=0)) == len(recs)


def test_data_format_is_detected_from_suffix_or_hub_id_and_unknown_is_an_error(tmp_path):
    assert detect_format("synth_dataset_v2.json") == "presidio"
    assert detect_format("x/pii.jsonl") == "jsonl"
    assert detect_format("ai4privacy/pii-masking-400k") == "ai4privacy"
    with pytest.raises(DataError, match="--data-format"):
        detect_format("spans.csv")
    with pytest.raises(DataError, match="no such file"):
        read_pii_records(str(tmp_path / "missing.jsonl"))
    bad = tmp_path / "broken.json"
    bad.write_text('[{"full_text": "x",')
    with pytest.raises(DataError, match=r"broken\.json:1: invalid JSON"):
        read_pii_records(str(bad))


def test_context_word_replacement_keeps_every_span_value_and_is_seeded(generated):
    from loraroute.data.pii import replace_context_words

    noisy = replace_context_words(generated, rate=1.0, seed=3)
    assert noisy == replace_context_words(generated, rate=1.0, seed=3)
    changed = [(a, b) for a, b in zip(generated, noisy) if a["text"] != b["text"]]
    assert 0.3 * len(generated) < len(changed) < 0.7 * len(generated)  # share=0.5 of the records
    for i, (before, after) in enumerate(zip(generated, noisy)):
        validate_record(dict(after), f"augmented {i}")
        assert [after["text"][s["start"] : s["end"]] for s in after["spans"]] == [
            before["text"][s["start"] : s["end"]] for s in before["spans"]
        ]
        assert after["template_id"] == before["template_id"]
    assert replace_context_words(generated, rate=0.0, seed=3) == generated
    with pytest.raises(ValueError, match="rate"):
        replace_context_words(generated, rate=1.5, seed=3)


# --- hand-written markup and the natural sets -------------------------------------------------------------------


def test_parse_marked_computes_offsets_around_emoji_and_newlines():
    text, spans = parse_marked("🙂 Hi ⟦PERSON|Ana Ruiz⟧,\nmail ⟦EMAIL_ADDRESS|a@b.co⟧!")
    assert text == "🙂 Hi Ana Ruiz,\nmail a@b.co!"
    assert [(sp["entity_type"], text[sp["start"] : sp["end"]]) for sp in spans] == [
        ("PERSON", "Ana Ruiz"),
        ("EMAIL_ADDRESS", "a@b.co"),
    ]


@pytest.mark.parametrize(
    "marked, problem",
    [
        ("bad ⟦PERSON Ana⟧", "malformed markup"),
        ("open ⟦PERSON|Ana", "malformed markup"),
        ("edge ⟦PERSON| Ana⟧", "whitespace at its edge"),
        ("stray ⟧ here", "malformed markup"),
    ],
)
def test_parse_marked_rejects_broken_markup(marked, problem):
    with pytest.raises(DataError, match=problem):
        parse_marked(marked, "f.jsonl:3: field 'marked'")


@pytest.mark.parametrize(
    "row, problem",
    [
        ({"id": "x", "register": "hr", "marked": "⟦PERSONA|Ana⟧"}, "not among"),
        ({"id": "x", "register": "hr", "marked": "no entity"}, "needs field 'lookalike'"),
        ({"id": "x", "register": "hr", "marked": "⟦PERSON|Ana⟧", "lookalike": "sku"}, "without PII, but it has"),
        ({"id": "", "register": "hr", "marked": "x", "lookalike": "sku"}, "field 'id'"),
    ],
)
def test_natural_set_errors_name_file_line_and_field(tmp_path, row, problem):
    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps({"id": "ok", "register": "hr", "marked": "⟦PERSON|Bo⟧"}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError, match=f"set.jsonl:2.*{problem}"):
        load_natural_set(path=str(path))


def test_natural_set_ids_must_be_unique(tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_text(2 * (json.dumps({"id": "a1", "register": "hr", "marked": "⟦PERSON|Bo⟧"}) + "\n"))
    with pytest.raises(DataError, match="set.jsonl:2: field 'id' 'a1' repeats"):
        load_natural_set(path=str(path))


@pytest.mark.parametrize(
    "part, at_least", [("test", (250, 80)), ("blind", (180, 70)), ("blind2", (180, 70)), ("validation", (220, 100))]
)
def test_shipped_natural_sets_have_the_promised_size_and_every_type(part, at_least):
    records = load_natural_set(part)
    with_pii = [r for r in records if r["spans"]]
    assert len(with_pii) >= at_least[0] and len(records) - len(with_pii) >= at_least[1]
    assert {sp["entity_type"] for r in records for sp in r["spans"]} == set(PRESIDIO_ENTITIES)
    assert all(r["source"] == f"pii_natural:{part}" for r in records)
    with pytest.raises(ValueError, match="unknown PII natural set"):
        load_natural_set("train")
    assert set(NATURAL_SETS) == {"test", "blind", "blind2", "validation"}


def test_training_messages_are_valid_and_near_duplicate_no_natural_set_message():
    from loraroute.data.leakage import find_leaks
    from loraroute.data.pii_natural import training_messages

    train = training_messages()
    with_pii = [r for r in train if r["spans"]]
    assert len(with_pii) >= 300 and len(train) - len(with_pii) >= 150
    assert {sp["entity_type"] for r in train for sp in r["spans"]} == set(PRESIDIO_ENTITIES)
    assert all(r["source"] == "pii_natural:train" for r in train)
    evaluation = [r["text"] for part in NATURAL_SETS for r in load_natural_set(part)]
    assert find_leaks([r["text"] for r in train], evaluation) == []


def test_natural_sets_share_no_message():
    texts = {part: {r["text"] for r in load_natural_set(part)} for part in NATURAL_SETS}
    for a in NATURAL_SETS:
        for b in NATURAL_SETS:
            assert a == b or not texts[a] & texts[b]


# --- the address convention ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, parts",
    [
        (
            "at 12 Rua Alta\n Apt. 286\n Lisboa\n Portugal 49066",
            [
                ("STREET_ADDRESS", "12 Rua Alta\n Apt. 286"),
                ("GPE", "Lisboa"),
                ("GPE", "Portugal"),
                ("ZIP_CODE", "49066"),
            ],
        ),
        (
            "at 254 Avenue du Golf Apt. 224, Recife, Brazil",
            [("STREET_ADDRESS", "254 Avenue du Golf Apt. 224"), ("GPE", "Recife"), ("GPE", "Brazil")],
        ),
        (
            "at 10 Downing St, London SW1A 2AA",
            [("STREET_ADDRESS", "10 Downing St"), ("GPE", "London"), ("ZIP_CODE", "SW1A 2AA")],
        ),
        (
            "at Flat 6, 22 Merton Rise, London NW3 4QT",
            [("STREET_ADDRESS", "Flat 6, 22 Merton Rise"), ("GPE", "London"), ("ZIP_CODE", "NW3 4QT")],
        ),
        ("at Linzer Strasse 69", [("STREET_ADDRESS", "Linzer Strasse 69")]),  # no separator: stays whole
        ("at 51167", [("ZIP_CODE", "51167")]),  # the generator's postcode-only address
    ],
)
def test_split_address_spans_rewrites_the_generators_addresses_into_parts(text, parts):
    rec = {"text": text, "spans": [{"entity_type": "STREET_ADDRESS", "start": 3, "end": len(text)}]}
    out = split_address_spans(rec)
    assert [(sp["entity_type"], text[sp["start"] : sp["end"]]) for sp in out["spans"]] == parts
    assert rec["spans"] == [{"entity_type": "STREET_ADDRESS", "start": 3, "end": len(text)}]  # input untouched


def test_generated_addresses_follow_the_convention(generated):
    for rec in generated:
        for sp in rec["spans"]:
            if sp["entity_type"] == "STREET_ADDRESS":
                assert not re.search(r"\n\s*[A-Za-z ]+\n", rec["text"][sp["start"] : sp["end"]])


def test_context_noise_never_replaces_cue_words():
    records = [
        {
            "text": f"my SSN is {n}, zip 62704 and port 8080 thanks a lot friend",
            "template_id": "t",
            "spans": [{"entity_type": "US_SSN", "start": 10, "end": 21}],
            "source": "x",
        }
        for n in ("394-57-0728", "512-44-1903", "601-22-8765")
    ] * 20
    noisy = replace_context_words(records, rate=1.0, seed=0, share=1.0)
    assert {"ssn", "zip", "port"} <= CUE_WORDS
    for rec in noisy:
        words = rec["text"].split()
        assert words[1] == "SSN" and "zip" in words and "port" in words
        assert rec["text"][rec["spans"][0]["start"] : rec["spans"][0]["end"]] in (
            "394-57-0728",
            "512-44-1903",
            "601-22-8765",
        )
    assert any(r["text"] != o["text"] for r, o in zip(noisy, records))
