"""Presidio-style pattern recognizers: validators, exact offsets, and how matches override the model."""

import pytest

from loraroute.tasks.pii_patterns import apply_patterns, iban_valid, luhn_valid, pattern_entities, ssn_valid


def found(text, types=None):
    return [(e["entity_type"], e["text"]) for e in pattern_entities(text, types)]


@pytest.mark.parametrize("number, valid", [
    ("4111 1111 1111 1111", True), ("4111-1111-1111-1112", False), ("378282246310005", True),
    ("5555555555554444", True), ("5555555555554445", False)])
def test_luhn_accepts_published_test_card_numbers_and_rejects_a_changed_digit(number, valid):
    assert luhn_valid(number) is valid


@pytest.mark.parametrize("iban, valid", [
    ("GB82WEST12345698765432", True), ("GB82 WEST 1234 5698 7654 32", True), ("gb82west12345698765432", True),
    ("DE89370400440532013000", True), ("GB82WEST12345698765433", False), ("GB82WEST", False)])
def test_iban_mod97_accepts_the_iso_examples_in_any_print_form(iban, valid):
    assert iban_valid(iban) is valid


@pytest.mark.parametrize("ssn, valid", [
    ("078-05-1120", True), ("000-12-3456", False), ("666-12-3456", False), ("912-12-3456", False),
    ("123-00-4567", False), ("123-45-0000", False), ("123 45 6789", True)])
def test_ssn_follows_the_ssa_issuing_rules(ssn, valid):
    assert ssn_valid(ssn) is valid


def test_matches_have_exact_offsets_next_to_punctuation():
    text = "Mail (a.b+c@mail.example.org), card 4111111111111111; IBAN GB82 WEST 1234 5698 7654 32. IP 10.0.0.1!"
    entities = pattern_entities(text)
    assert [(e["entity_type"], e["text"]) for e in entities] == [
        ("EMAIL_ADDRESS", "a.b+c@mail.example.org"), ("CREDIT_CARD", "4111111111111111"),
        ("IBAN_CODE", "GB82 WEST 1234 5698 7654 32"), ("IP_ADDRESS", "10.0.0.1")]
    assert all(text[e["start"]:e["end"]] == e["text"] and e["confidence"] == 1.0 for e in entities)


def test_look_alikes_are_not_matched():
    assert found("version 1.2.3.4.5, host 300.1.1.1, time 12:30:45, card 4111 1111 1111 1112, "
                 "phone (212) 555-0187, ssn 666-12-3456, order 12345678901234") == []


def test_an_iban_is_not_read_as_a_card_nor_extended_over_the_next_word():
    assert found("from GB82WEST12345698765432 to GB82 WEST 1234 5698 7654 32 for rent") == [
        ("IBAN_CODE", "GB82WEST12345698765432"), ("IBAN_CODE", "GB82 WEST 1234 5698 7654 32")]


def test_ip_addresses_inside_an_injection_string_and_ipv6():
    assert found("client_ip = ?%//!%20\\|192.168.12.1|%20/ or 2001:db8::8a2e:370:7334") == [
        ("IP_ADDRESS", "192.168.12.1"), ("IP_ADDRESS", "2001:db8::8a2e:370:7334")]


def test_entity_types_limit_the_recognizers():
    text = "SSN 078-05-1120, e-mail x@y.com"
    assert found(text, {"US_SSN"}) == [("US_SSN", "078-05-1120")]
    assert found(text, {"PERSON"}) == []


def test_a_match_replaces_overlapping_model_entities_and_keeps_the_rest():
    text = "Ann's SSN is 078-05-1120 and her phone 555-123-4567"
    model = [{"entity_type": "PERSON", "start": 0, "end": 3, "text": "Ann", "confidence": 0.9},
             {"entity_type": "PHONE_NUMBER", "start": 13, "end": 24, "text": "078-05-1120", "confidence": 0.8},
             {"entity_type": "PHONE_NUMBER", "start": 39, "end": 51, "text": "555-123-4567", "confidence": 0.7}]
    out = apply_patterns(text, model)
    assert [(e["entity_type"], e["text"]) for e in out] == [
        ("PERSON", "Ann"), ("US_SSN", "078-05-1120"), ("PHONE_NUMBER", "555-123-4567")]
    assert apply_patterns(text, model, entity_types={"PERSON", "PHONE_NUMBER"}) == model


def test_model_entities_of_checked_types_that_fail_their_check_are_dropped():
    text = "ZIP 2446, Maestro 676131367838, SSN 7102, IP 10.0.0, Ann"

    def ent(entity_type, value):
        start = text.index(value)
        return {"entity_type": entity_type, "start": start, "end": start + len(value), "text": value,
                "confidence": 0.9}

    model = [ent("CREDIT_CARD", "2446"), ent("CREDIT_CARD", "676131367838"), ent("US_SSN", "7102"),
             ent("IP_ADDRESS", "10.0.0"), ent("PERSON", "Ann")]
    # a 12-digit Maestro number is Luhn-valid and kept, though too short for the card recognizer itself
    assert found(text) == []
    assert [e["text"] for e in apply_patterns(text, model)] == ["676131367838", "Ann"]
