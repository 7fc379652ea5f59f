"""Chat-traffic PII training data (data/pii_chat.py): carriers keep their cue words, look-alikes stay O."""

import re
from collections import Counter

import pytest

from loraroute.data.pii import CUE_WORDS, PRESIDIO_ENTITIES, validate_record
from loraroute.data.pii_chat import CARRIERS, LOOKALIKES, chat_pii_records, lookalike_records


@pytest.fixture(scope="module")
def chat():
    return chat_pii_records(300, seed=5)


def test_chat_records_are_valid_cover_every_type_and_carry_their_carrier_as_template(chat):
    for i, rec in enumerate(chat):
        validate_record(dict(rec), f"record {i}")
        assert rec["spans"] and rec["source"] == "chat_pii"
        assert set(rec["template_id"].removeprefix("chat:").split("+")) <= set(CARRIERS)
    assert {sp["entity_type"] for rec in chat for sp in rec["spans"]} == set(PRESIDIO_ENTITIES)


def test_values_follow_the_annotation_conventions(chat):
    """Titles and cue words outside names, addresses in parts, no span edge on whitespace or punctuation."""
    for rec in chat:
        for sp in rec["spans"]:
            value = rec["text"][sp["start"] : sp["end"]]
            assert value == value.strip() and value[-1] not in ",;:!?"
            if sp["entity_type"] == "PERSON":
                assert not re.match(r"(Dr|Mr|Ms|Mrs|Prof|Mx)\.? ", value)
            if sp["entity_type"] == "STREET_ADDRESS":
                assert "\n" not in value and not re.search(r", [A-Z]{2} \d{5}$", value)
            assert value.lower() not in {"ssn", "phone", "email", "dob"}


def test_cue_words_stand_next_to_the_identifiers_they_name(chat):
    before = Counter()
    for rec in chat:
        for sp in rec["spans"]:
            if sp["entity_type"] in ("US_SSN", "US_DRIVER_LICENSE"):
                words = re.findall(r"[A-Za-z'#]+", rec["text"][max(0, sp["start"] - 30) : sp["start"]].lower())
                before[sp["entity_type"]] += any(w.strip("#'") in CUE_WORDS for w in words[-3:])
    counts = Counter(sp["entity_type"] for rec in chat for sp in rec["spans"])
    for etype in ("US_SSN", "US_DRIVER_LICENSE"):  # nine digits or a letter and digits: only the cue decides
        assert before[etype] == counts[etype] > 10


def test_lookalikes_have_no_spans_and_cover_every_kind():
    records = lookalike_records(400, seed=2)
    assert all(r["spans"] == [] and r["source"] == "chat_lookalike" for r in records)
    assert {r["template_id"].removeprefix("lookalike:") for r in records} == set(LOOKALIKES)
    # look-alike numbers really are there: most messages carry a run of 3+ digits
    assert sum(bool(re.search(r"\d{3,}", r["text"])) for r in records) > 0.7 * len(records)


def test_both_generators_are_deterministic_per_seed(chat):
    assert chat_pii_records(300, seed=5) == chat
    assert chat_pii_records(50, seed=6) != chat[:50]
    assert lookalike_records(30, seed=1) == lookalike_records(30, seed=1)


def test_roles_mac_addresses_and_other_languages_are_never_entities(monkeypatch):
    """The plain slots ({role}, {mac}, {foreign}) fill words that are not PII: no span covers one."""
    from loraroute.data import pii_chat

    monkeypatch.setattr(pii_chat, "_ROLES", ("qqrole",))
    monkeypatch.setattr(pii_chat, "_FOREIGN", ("qqforeign",))
    records = chat_pii_records(400, seed=3)
    plain = [rec for rec in records if re.search(r"qqrole|qqforeign|(?:[0-9a-f]{2}:){5}[0-9a-f]{2}", rec["text"])]
    assert len(plain) > 10
    for rec in plain:
        for sp in rec["spans"]:
            value = rec["text"][sp["start"] : sp["end"]]
            assert "qq" not in value and not re.search(r"(?:[0-9a-f]{2}:){5}", value)
    looks = lookalike_records(400, seed=3)
    assert sum("qqrole" in r["text"] or "qqforeign" in r["text"] for r in looks) > 10
    assert all(r["spans"] == [] for r in looks)
