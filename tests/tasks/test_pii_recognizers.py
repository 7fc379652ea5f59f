"""Presidio's recognizers beside the model: context words, the look-alikes they must leave alone, and the one rule
that combines their results with the model's entities (tasks/pii_recognizers.py)."""

import itertools

import pytest

from loraroute.tasks.pii_recognizers import combine, passes_check, recognizer_entities


def found(text, types=None, **kwargs):
    return [(e["entity_type"], e["text"]) for e in recognizer_entities(text, types, **kwargs)]


def entity(text, value, etype, confidence):
    start = text.index(value)
    return {"entity_type": etype, "start": start, "end": start + len(value), "text": value, "confidence": confidence}


@pytest.mark.parametrize(
    "text, value",
    [
        ("my SSN is 394-57-0728", "394-57-0728"),
        ("social security number 394570728, thanks", "394570728"),  # nine bare digits: only the cue word decides
        ("SSN# 394 57 0728", "394 57 0728"),
        ("ITIN 912-70-1234 for the tax form", "912-70-1234"),  # the SSA never issues 9xx: still the user's SSN
        ("my ssn is 912701234", "912701234"),
    ],
)
def test_an_ssn_after_its_cue_word_is_found_in_every_print_form(text, value):
    assert ("US_SSN", value) in found(text)


@pytest.mark.parametrize(
    "text, value",
    [
        ("DL: D1234567", "D1234567"),
        ("my driver's license is D123-4567-8901", "D123-4567-8901"),  # grouped: Presidio's own pattern stops at 'D123'
        ("drivers lic no. F255-921-50-094-0 (FL)", "F255-921-50-094-0"),
        ("driving licence number S53012345678", "S53012345678"),
    ],
)
def test_a_licence_number_after_its_cue_word_is_found_whole(text, value):
    assert ("US_DRIVER_LICENSE", value) in found(text)


def test_checksummed_values_are_found_without_any_cue():
    text = "4111 1111 1111 1111 / GB33 BUKB 2020 1555 5555 55 / jo.b+x@mail.example.org / 10.0.3.17"
    assert found(text) == [
        ("CREDIT_CARD", "4111 1111 1111 1111"),
        ("IBAN_CODE", "GB33 BUKB 2020 1555 5555 55"),
        ("EMAIL_ADDRESS", "jo.b+x@mail.example.org"),
        ("IP_ADDRESS", "10.0.3.17"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "order number 4485532119 has not shipped",  # Presidio's phone cue list has "number": dropped here
        "tracking 1Z999AA10123456784, part 394-57-0728",  # a dashed 3-2-4 part number without a cue word
        "run python setup.py, then open README.md",  # .py and .md are top-level domains, not hosts
        "SSN 394570728",  # ...but the weak pattern below the floor is fine with its cue
    ],
)
def test_look_alikes_without_cue_words_do_not_count(text):
    results = found(text)
    if text.startswith("SSN"):
        assert results == [("US_SSN", "394570728")]
    else:
        assert results == []


def test_floor_zero_returns_presidios_weak_matches_too():
    assert ("US_SSN", "394-57-0728") in found("part 394-57-0728", floor=0.0)  # Presidio's medium pattern, 0.5
    assert found("part 394-57-0728") == []


def test_entity_types_limit_the_recognizers():
    text = "SSN 394-57-0728, e-mail x@y.com"
    assert found(text, {"US_SSN"}) == [("US_SSN", "394-57-0728")]
    assert found(text, {"PERSON"}) == []


def test_results_carry_offsets_source_and_decisiveness():
    text = "call my mobile (212) 555-0187 or see https://janesbakery.co.uk/about"
    phone, url = recognizer_entities(text)
    assert text[phone["start"] : phone["end"]] == phone["text"] == "(212) 555-0187"
    assert phone["source"] == "PhoneRecognizer" and phone["decisive"]  # "mobile" is a cue word
    assert url["entity_type"] == "DOMAIN_NAME" and not url["decisive"] and url["confidence"] == pytest.approx(0.6)


# --- the combination rule ----------------------------------------------------------------------------------------


def test_a_decisive_result_beats_a_confident_model_entity_of_another_type():
    text = "social security number 394570728"
    model = [entity(text, "394570728", "PHONE_NUMBER", 0.97)]
    (out,) = combine(model, recognizer_entities(text))
    assert (out["entity_type"], out["text"]) == ("US_SSN", "394570728")
    assert out["confidence"] == pytest.approx(0.97)  # the model was that sure a value is there
    assert out["source"] == "UsSsnRecognizer"


def test_agreement_takes_the_noisy_or_and_the_recognizers_span():
    text = "my SSN is 394-57-0728."
    model = [entity(text, "394-57-0728.", "US_SSN", 0.6)]  # the model ran over the full stop
    (out,) = combine(model, recognizer_entities(text))
    assert out["text"] == "394-57-0728" and out["source"] == "model+UsSsnRecognizer"
    assert out["confidence"] == pytest.approx(1 - (1 - 0.85) * (1 - 0.6))


def test_an_uncued_result_competes_with_the_model_by_confidence():
    text = "see https://janesbakery.co.uk/about today"
    url = recognizer_entities(text)
    assert [e["decisive"] for e in url] == [False]
    strong = [entity(text, "https://janesbakery.co.uk/about", "ORGANIZATION", 0.9)]
    weak = [entity(text, "https://janesbakery.co.uk/about", "ORGANIZATION", 0.3)]
    assert [e["entity_type"] for e in combine(strong, url)] == ["ORGANIZATION"]
    assert [e["entity_type"] for e in combine(weak, url)] == ["DOMAIN_NAME"]


def test_model_entities_that_fail_presidios_checks_are_dropped():
    text = "card 4111 1111 1111 1112, iban GB33BUKB20201555555556, ip 999.1.1.1, mask 255.255.255.0, lo 127.0.0.1"
    model = [
        entity(text, v, t, 0.99)
        for v, t in [
            ("4111 1111 1111 1112", "CREDIT_CARD"),
            ("GB33BUKB20201555555556", "IBAN_CODE"),
            ("999.1.1.1", "IP_ADDRESS"),
            ("255.255.255.0", "IP_ADDRESS"),
            ("127.0.0.1", "IP_ADDRESS"),
        ]
    ]
    assert combine(model, recognizer_entities(text)) == []


def test_a_one_word_value_the_model_ran_on_past_is_cut_at_whitespace_not_dropped():
    """An IP or host name never holds whitespace: a model span that runs over the next word keeps the pieces that
    pass the check, at the model's confidence; a span with no valid piece is still dropped."""
    text = "web1.kestrel-dental.com ansible_host=10.0.4.21\n192.168.0.147   a4:cf:12:9b:3e:01\nsee localhost ok"
    model = [
        entity(text, "web1.kestrel-dental.com ansible_host=10.0.4.21", "DOMAIN_NAME", 0.9),
        entity(text, "192.168.0.147   a4:cf:12:9b:3e:01", "IP_ADDRESS", 0.8),
        entity(text, "localhost ok", "DOMAIN_NAME", 0.7),
    ]
    out = combine(model, [])
    assert [(e["entity_type"], e["text"], e["confidence"]) for e in out] == [
        ("DOMAIN_NAME", "web1.kestrel-dental.com", 0.9),
        ("IP_ADDRESS", "192.168.0.147", 0.8),
    ]
    assert all(text[e["start"] : e["end"]] == e["text"] and e["source"] == "model" for e in out)
    # a value of another type is never cut: a name over two words is one entity
    name = entity("ask Ama Owusu", "Ama Owusu", "PERSON", 0.9)
    assert [e["text"] for e in combine([name], [])] == ["Ama Owusu"]


@pytest.mark.parametrize(
    "value, etype, ok",
    [
        ("4111-1111-1111-1111", "CREDIT_CARD", True),
        ("4111-1111-1111-1112", "CREDIT_CARD", False),
        ("GB82 WEST 1234 5698 7654 32", "IBAN_CODE", True),
        ("GB82WEST12345698765433", "IBAN_CODE", False),
        ("2001:db8::8a2e:370:7334", "IP_ADDRESS", True),
        ("::1", "IP_ADDRESS", False),
        ("0.0.0.0", "IP_ADDRESS", False),
        ("anything", "PERSON", True),
    ],
)
def test_passes_check(value, etype, ok):
    assert passes_check({"entity_type": etype, "text": value}) is ok


def test_combined_answers_never_overlap_and_keep_unrelated_model_entities():
    text = "Ann Lee, SSN 394-57-0728, card 4111111111111111"
    model = [entity(text, "Ann Lee", "PERSON", 0.8), entity(text, "SSN 394-57", "PHONE_NUMBER", 0.9)]
    out = combine(model, recognizer_entities(text))
    assert [(e["entity_type"], e["text"]) for e in out] == [
        ("PERSON", "Ann Lee"),
        ("US_SSN", "394-57-0728"),
        ("CREDIT_CARD", "4111111111111111"),
    ]
    assert all(a["end"] <= b["start"] for a, b in itertools.pairwise(out))


PHONE_GATE_TEXTS = [
    "call me on +49 30 901820 or 030 901820",
    "Rufnummer 0301 2345",  # short German numbers: DE's national numbers start at 4 digits
    "tel +44 20 7946 0958",
    "my cell is (212) 555-0187",
    "room 12, floor 3",
    "What is the derivative of x^3 sin(x)?",
    "mail ann@x.io, SSN 394-57-0728",
    "١٢٣٤٥٦٧٨٩٠ is my number",  # Arabic-Indic digits count as digits for phonenumbers and for the gate
]


@pytest.mark.parametrize("text", PHONE_GATE_TEXTS)
def test_skipping_the_phone_matcher_on_texts_with_too_few_digits_changes_no_result(text, monkeypatch):
    import loraroute.tasks.pii_recognizers as R

    gated = recognizer_entities(text, floor=0)
    monkeypatch.setattr(R, "phone_min_digits", lambda regions: 0)
    assert recognizer_entities(text, floor=0) == gated


def test_the_phone_matcher_does_not_run_on_a_text_with_fewer_digits_than_any_phone_number(monkeypatch):
    import phonenumbers

    from loraroute.tasks.pii_recognizers import phone_min_digits

    regions = ("US", "GB", "DE", "FR", "IL", "IN", "CA", "BR")  # Presidio's PhoneRecognizer default
    assert phone_min_digits(regions) == 4  # Germany's shortest national numbers
    monkeypatch.setattr(phonenumbers, "PhoneNumberMatcher", lambda *a, **k: pytest.fail("matcher ran"))
    assert found("room 12 on floor 3, call me") == []
