"""The PII task end to end on tiny random BERT, RoBERTa and ModernBERT: training, artifacts, spans, errors."""

import dataclasses
import json

import numpy as np
import pytest
from transformers import set_seed

from loraroute.cli import main
from loraroute.data.pii_natural import load_natural_set
from loraroute.data.sources import DataError
from loraroute.inference import Predictor
from loraroute.metrics.spans import entity_metrics
from loraroute.models.loading import load_base_model, load_tokenizer
from loraroute.tasks import get_task
from loraroute.tasks.pii import PIIConfig, PIITask, bio_entities, confusion_matrix_with_none
from loraroute.tasks.pii_spans import IGNORE_INDEX, align_spans_to_tokens
from loraroute.training import train_task

ARCHS = ["bert", "roberta", "modernbert"]
# Punctuation, an emoji, a repeated entity and two adjacent entities of the same type.
TEXT = "😀 Hi, I'm John (John!) — mail: a.b@x.io; call 555-123-4567. John Mary, bye."
SPANS = sorted(
    [
        *[{"entity_type": "PERSON", "start": i, "end": i + 4} for i in range(len(TEXT)) if TEXT.startswith("John", i)],
        {"entity_type": "PERSON", "start": TEXT.index("Mary"), "end": TEXT.index("Mary") + 4},
        {"entity_type": "EMAIL_ADDRESS", "start": TEXT.index("a.b@x.io"), "end": TEXT.index("a.b@x.io") + 8},
        {"entity_type": "PHONE_NUMBER", "start": TEXT.index("555"), "end": TEXT.index("555") + 12},
    ],
    key=lambda s: s["start"],
)
PROBES = [TEXT, "My SSN is 078-05-1120, ok?", "no personal data here"]


def tiny_pii_cfg(model_dir, out, **overrides):
    values = dict(
        model=str(model_dir),
        output_dir=str(out),
        n_samples=240,
        max_samples=None,
        chat_samples=40,
        lookalike_samples=20,
        natural_repeats=0,
        epochs=3,
        batch_size=16,
        learning_rate=1e-2,
        rank=4,
        max_length=64,
        early_stopping_patience=0,
        seed=3,
        name="m",
        precision="fp32",
    )
    values.update(overrides)
    return PIIConfig.from_dict(values)


@pytest.fixture(scope="module")
def pii_runs(tiny_encoder, tiny_bpe_encoder, tmp_path_factory):
    """One short training run per architecture on the offline generator (BPE tokenizers for RoBERTa/ModernBERT)."""
    runs = {}

    def run(arch):
        if arch not in runs:
            encoder = tiny_encoder(arch) if arch == "bert" else tiny_bpe_encoder(arch)
            runs[arch] = train_task(get_task("pii"), tiny_pii_cfg(encoder, tmp_path_factory.mktemp(f"pii-{arch}")))
        return runs[arch]

    return run


def token_nll(predictor, records):
    """Mean negative log-likelihood of the gold labels on labelled tokens."""
    logits, encodings = predictor.logits([r["text"] for r in records])
    total, count = 0.0, 0
    for row, enc, rec in zip(logits, encodings, records):
        y = np.array(align_spans_to_tokens(enc["offsets"], enc["word_ids"], rec["spans"], predictor.label2id))
        keep = y != IGNORE_INDEX
        z = row - row.max(-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
        total += float(-logp[keep, y[keep]].sum())
        count += int(keep.sum())
    return total / count


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_training_writes_the_pii_layout_and_lowers_the_token_loss(
    pii_runs, arch, tiny_encoder, tiny_bpe_encoder, tmp_path
):
    result = pii_runs(arch)
    out = result.artifact_dir
    for name in (
        "config.json",
        "model.safetensors",
        "label_mapping.json",
        "pii_type_mapping.json",
        "lora_config.json",
        "eval_report.json",
        "eval_report.md",
        "adapter/adapter_model.safetensors",
    ):
        assert (out / name).exists(), name
    mapping = json.loads((out / "label_mapping.json").read_text())
    # upstream Go's PIIMapping reads label_to_idx/idx_to_label; label_to_id/id_to_label stay for earlier readers
    assert set(mapping) == {"label_to_idx", "idx_to_label", "label_to_id", "id_to_label"}
    assert mapping["label_to_idx"] == mapping["label_to_id"] and mapping["idx_to_label"] == mapping["id_to_label"]
    assert json.loads((out / "pii_type_mapping.json").read_text()) == mapping
    id2label = json.loads((out / "config.json").read_text())["id2label"]
    assert len(id2label) == 35 and id2label["0"] == "O" and id2label["1"] == "B-AGE"
    report = json.loads((out / "eval_report.json").read_text())
    assert {"micro_f1", "micro_f2", "macro_f1", "token_accuracy"} <= set(report["test"])
    assert all(isinstance(v, (int, float)) for v in report["test"].values())
    assert report["data_notes"]["group_key"] == "template_id"
    assert "## Per entity type" in (out / "eval_report.md").read_text()

    # The starting point: base encoder + fresh head, seeded as training seeds it (LoRA B = 0 adds nothing).
    encoder = tiny_encoder(arch) if arch == "bert" else tiny_bpe_encoder(arch)
    trained = Predictor.load(out)
    set_seed(3)
    start = Predictor(
        load_base_model(str(encoder), "token", trained.labels), load_tokenizer(str(encoder)), trained.meta, trained.task
    )
    records = get_task("pii").load_splits(tiny_pii_cfg(encoder, tmp_path)).train[:64]
    assert token_nll(trained, records) < token_nll(start, records) - 0.5


@pytest.mark.slow
def test_the_written_report_renders_its_own_markdown_and_summary(pii_runs):
    task, out = get_task("pii"), pii_runs("bert").artifact_dir
    report = json.loads((out / "eval_report.json").read_text())
    assert task.report_markdown(report) + "\n" == (out / "eval_report.md").read_text()
    summary = task.summary(report)
    assert summary.startswith(f"Test split ({report['split_sizes']['test']} examples):\n")
    assert "## Natural chat messages" in summary and "## Per entity type" not in summary


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_merged_logits_equal_adapter_logits_and_reload_is_identical(pii_runs, arch):
    out = pii_runs(arch).artifact_dir
    merged, encodings = Predictor.load(out).logits(PROBES)
    again, _ = Predictor.load(out).logits(PROBES)
    adapter, adapter_enc = Predictor.load(out, use_adapter=True).logits(PROBES)
    assert encodings == adapter_enc
    for a, b, c in zip(merged, again, adapter):
        assert a.shape[-1] == 35
        assert np.array_equal(a, b)
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-5)


def controlled_predictor(path, monkeypatch, gold, soft=()):
    """The real model's tokenization and batching, with logits that encode ``gold`` spans per text: +8 on the
    aligned label of first subwords, +8 on an unrelated label for specials and later subwords (must be ignored),
    and only +1 (low confidence) on the first word of entities whose start is in ``soft``."""
    predictor = Predictor.load(path)
    # The tiny model's calibrated threshold (thresholds.json) belongs to its own logits, not to these.
    predictor.meta.pop("thresholds", None)
    real = Predictor.logits

    def logits(self, texts):
        rows, encodings = real(self, texts)
        out = []
        for text, row, enc in zip(texts, rows, encodings):
            spans = gold[text]
            y = align_spans_to_tokens(enc["offsets"], enc["word_ids"], spans, self.label2id)
            fake = np.zeros_like(row)
            for i, label in enumerate(y):
                if label == IGNORE_INDEX:
                    fake[i, self.label2id["B-US_SSN"]] = 8.0
                    continue
                start = enc["offsets"][i][0]
                # ModernBERT-style offsets start at the space before a word
                weak = any(s["start"] in soft and start in (s["start"] - 1, s["start"]) for s in spans)
                fake[i, label] = 1.0 if weak else 8.0
            out.append(fake)
        return out, encodings

    monkeypatch.setattr(Predictor, "logits", logits)
    return predictor


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_predict_returns_exact_character_spans_with_punctuation_emoji_and_repeats(pii_runs, arch, monkeypatch):
    plain = "no personal data here"
    predictor = controlled_predictor(pii_runs(arch).artifact_dir, monkeypatch, {TEXT: SPANS, plain: []})
    answers = predictor.predict([TEXT, plain])
    entities = answers[0]["entities"]
    assert answers[0]["has_pii"] and answers[1] == {"has_pii": False, "entities": []}
    assert [(e["entity_type"], e["start"], e["end"]) for e in entities] == [
        (s["entity_type"], s["start"], s["end"]) for s in SPANS
    ]
    assert all(TEXT[e["start"] : e["end"]] == e["text"] for e in entities)
    assert [e["text"] for e in entities][-2:] == ["John", "Mary"]  # adjacent entities stay apart
    assert all(0.9 < e["confidence"] <= 1.0 for e in entities)


@pytest.mark.slow
def test_threshold_drops_low_confidence_entities_and_min_aggregation_is_stricter(pii_runs, monkeypatch):
    phone = next(s for s in SPANS if s["entity_type"] == "PHONE_NUMBER")
    predictor = controlled_predictor(pii_runs("bert").artifact_dir, monkeypatch, {TEXT: SPANS}, soft={phone["start"]})
    every = predictor.predict([TEXT])[0]["entities"]
    assert len(every) == len(SPANS)  # no threshold: every tagged entity
    weak = next(e for e in every if e["entity_type"] == "PHONE_NUMBER")
    assert weak["confidence"] < 0.9 and all(e["confidence"] > 0.9 for e in every if e is not weak)
    assert predictor.predict([TEXT], threshold=0.9)[0]["entities"] == [e for e in every if e is not weak]
    strict = predictor.predict([TEXT], aggregation="min")[0]["entities"]
    assert next(e for e in strict if e["entity_type"] == "PHONE_NUMBER")["confidence"] < 0.1 < weak["confidence"]


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_viterbi_decoding_keeps_a_split_email_whole_and_argmax_is_still_available(pii_runs, arch, monkeypatch):
    out = pii_runs(arch).artifact_dir
    assert json.loads((out / "lora_config.json").read_text())["task_settings"]["decoding"] == "viterbi"
    predictor = controlled_predictor(out, monkeypatch, {TEXT: SPANS})
    perfect = Predictor.logits
    email = next(s for s in SPANS if s["entity_type"] == "EMAIL_ADDRESS")

    def logits(self, texts):  # the first deciding token after the address's first one leans PERSON
        rows, encodings = perfect(self, texts)
        for row, enc in zip(rows, encodings):
            firsts = [
                i
                for i, (w, o) in enumerate(zip(enc["word_ids"], enc["offsets"]))
                if w is not None
                and (i == 0 or enc["word_ids"][i - 1] != w)
                and email["start"] < o[1]
                and o[0] < email["end"]
            ]
            row[firsts[1], self.label2id["B-PERSON"]] = 9.0
        return rows, encodings

    monkeypatch.setattr(Predictor, "logits", logits)
    gold = [(s["entity_type"], s["start"], s["end"]) for s in SPANS]
    whole = predictor.predict([TEXT], patterns=False)[0]["entities"]
    assert [(e["entity_type"], e["start"], e["end"]) for e in whole] == gold
    broken = predictor.predict([TEXT], decoding="argmax", patterns=False)[0]["entities"]
    assert len(broken) > len(SPANS) and ("EMAIL_ADDRESS", email["start"], email["end"]) not in [
        (e["entity_type"], e["start"], e["end"]) for e in broken
    ]
    # the e-mail pattern recognizer (on by default) repairs what argmax broke
    repaired = predictor.predict([TEXT], decoding="argmax")[0]["entities"]
    assert [(e["entity_type"], e["start"], e["end"]) for e in repaired] == gold
    with pytest.raises(ValueError, match="decoding"):
        predictor.predict([TEXT], decoding="beam")


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_pii_past_max_length_is_found_at_exact_offsets(pii_runs, arch, monkeypatch):
    filler = " ".join(f"The report, part {i}, covers costs." for i in range(40))
    text = f"John wrote: {filler} Mail a.b@x.io or call 555-123-4567 today. John"
    spans = [
        {"entity_type": "PERSON", "start": 0, "end": 4},
        {"entity_type": "EMAIL_ADDRESS", "start": text.index("a.b@x.io"), "end": text.index("a.b@x.io") + 8},
        {"entity_type": "PHONE_NUMBER", "start": text.index("555"), "end": text.index("555") + 12},
        {"entity_type": "PERSON", "start": len(text) - 4, "end": len(text)},
    ]
    predictor = controlled_predictor(pii_runs(arch).artifact_dir, monkeypatch, {text: spans})
    (_row,), (enc,) = predictor.logits([text])
    assert enc["windows"] > 2 and len(enc["word_ids"]) > predictor.meta["max_length"]  # 64 in the tiny runs
    entities = predictor.predict([text], patterns=False)[0]["entities"]
    assert [(e["entity_type"], e["start"], e["end"]) for e in entities] == [
        (s["entity_type"], s["start"], s["end"]) for s in spans
    ]


@pytest.mark.slow
def test_pattern_recognizers_replace_a_model_tag_over_a_valid_card_unless_turned_off(pii_runs, monkeypatch):
    out = pii_runs("bert").artifact_dir
    text = "Charge 4111 1111 1111 1111 for Ann, not 4111 1111 1111 1112."
    card = text.index("4111")
    as_phone = [
        {"entity_type": "PHONE_NUMBER", "start": card, "end": card + 19},
        {"entity_type": "PERSON", "start": text.index("Ann"), "end": text.index("Ann") + 3},
    ]
    predictor = controlled_predictor(out, monkeypatch, {text: as_phone})
    assert json.loads((out / "lora_config.json").read_text())["task_settings"]["patterns"] is True
    served = predictor.predict([text])[0]["entities"]
    assert [(e["entity_type"], e["text"], e["confidence"]) for e in served] == [
        ("CREDIT_CARD", "4111 1111 1111 1111", 1.0),
        ("PERSON", "Ann", served[1]["confidence"]),
    ]
    model_only = predictor.predict([text], patterns=False)[0]["entities"]
    assert [e["entity_type"] for e in model_only] == ["PHONE_NUMBER", "PERSON"]  # the Luhn-invalid one: untouched
    del predictor.meta["task_settings"]["patterns"]  # a model saved before patterns existed answers as evaluated
    assert predictor.predict([text])[0]["entities"] == model_only


@pytest.mark.slow
def test_cli_predict_prints_spans_for_a_pii_model(pii_runs, capsys):
    out = pii_runs("bert").artifact_dir
    assert main(["predict", "--model", str(out), "--threshold", "0", TEXT, "plain words"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["text"] for line in lines] == [TEXT, "plain words"]
    for line in lines:
        assert set(line) == {"text", "has_pii", "entities"}
        assert line["has_pii"] == bool(line["entities"])
        for e in line["entities"]:
            assert line["text"][e["start"] : e["end"]] == e["text"] and e["text"] == e["text"].strip()
    card = "card 4111 1111 1111 1111"
    recognized = {
        "entity_type": "CREDIT_CARD",
        "start": 5,
        "end": 24,
        "text": card[5:],
        "confidence": 1.0,
        "source": "CreditCardRecognizer",
    }
    for flag, expected in (([], True), (["--no-patterns"], False)):
        assert main(["predict", "--model", str(out), *flag, card]) == 0
        assert (recognized in json.loads(capsys.readouterr().out)["entities"]) is expected


# ----------------------------------------------------------------------------- data path and errors


@pytest.mark.parametrize(
    "span, field",
    [
        ({"entity_type": "PERSON", "start": 0, "end": 99}, "'start'/'end'"),
        ({"entity_type": "PERSON", "start": 0, "end": 3, "entity_value": "Bob"}, "entity_value"),
        ({"entity_type": "", "start": 0, "end": 3}, "entity_type"),
    ],
)
def test_cli_train_rejects_a_bad_span_naming_file_record_and_field(tmp_path, capsys, span, field):
    data = tmp_path / "spans.jsonl"
    data.write_text(
        json.dumps({"text": "Ann is here", "spans": [{"entity_type": "PERSON", "start": 0, "end": 3}]})
        + "\n"
        + json.dumps({"text": "Ann is here", "spans": [span]})
        + "\n"
    )
    assert main(["train", "pii", "--data", str(data), "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "spans.jsonl: record 1 (line 2)" in err and field in err
    assert not any(tmp_path.glob("lora_*"))


def test_cli_train_rejects_a_bad_presidio_json_span(tmp_path, capsys):
    data = tmp_path / "synth_dataset_v2.json"
    data.write_text(
        json.dumps(
            [
                {
                    "full_text": "I am Ann.",
                    "spans": [
                        {"entity_type": "PERSON", "entity_value": "Anne", "start_position": 5, "end_position": 8}
                    ],
                }
            ]
        )
    )
    assert main(["train", "pii", "--data", str(data), "--output-dir", str(tmp_path)]) == 2
    assert "synth_dataset_v2.json: record 0" in capsys.readouterr().err


def test_jsonl_data_gives_labels_of_its_types_and_entities_restricts_them(tmp_path):
    rows = [
        {
            "text": f"Ann {i} mailed ann{i}@x.io",
            "template_id": f"t{i % 7}",
            "spans": [
                {"entity_type": "PERSON", "start": 0, "end": 3},
                {"entity_type": "EMAIL_ADDRESS", "start": 13, "end": 13 + len(f"ann{i}@x.io")},
            ],
        }
        for i in range(60)
    ]
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    task = get_task("pii")
    cfg = tiny_pii_cfg(tmp_path, tmp_path, data=str(data), val_size=0.2, test_size=0.2)
    splits = task.load_splits(cfg)
    assert task.labels(splits, cfg) == ["O", "B-EMAIL_ADDRESS", "I-EMAIL_ADDRESS", "B-PERSON", "I-PERSON"]
    templates = [{r["template_id"] for r in part} for part in (splits.train, splits.validation, splits.test)]
    assert not (templates[0] & templates[1] or templates[0] & templates[2] or templates[1] & templates[2])
    cfg = tiny_pii_cfg(tmp_path, tmp_path, data=str(data), entities=["PERSON"])
    splits = task.load_splits(cfg)
    assert task.labels(splits, cfg) == ["O", "B-PERSON", "I-PERSON"]
    assert {s["entity_type"] for r in splits.train for s in r["spans"]} == {"PERSON"}


def test_offline_entities_option_generates_only_those_types_and_balances_samples(tmp_path):
    task = get_task("pii")
    cfg = tiny_pii_cfg(tmp_path, tmp_path, n_samples=300, max_samples=120, entities=["EMAIL_ADDRESS", "PERSON"])
    splits = task.load_splits(cfg)
    records = splits.train + splits.validation + splits.test
    generated = [r for r in records if r["source"] == "presidio_generator"]
    assert len(generated) <= 120 and splits.notes["pool"] == 300
    # chat traffic keeps only messages whose carriers are all of those types, and never reaches the test split
    chat = [r for r in records if r["source"].startswith("chat_")]
    assert chat and len(chat) == splits.notes["chat_records"] and not any(r in splits.test for r in chat)
    assert {s["entity_type"] for r in records for s in r["spans"]} == {"EMAIL_ADDRESS", "PERSON"}
    assert len(task.labels(splits, cfg)) == 5


# ----------------------------------------------------------------------------- metrics helpers


def test_validation_f1_scores_entities_on_labelled_tokens_only():
    task = get_task("pii")
    # O=0, B-AGE=1, I-AGE=2, B-PERSON=3, I-PERSON=4; -100 marks specials and later subwords
    gold = np.array([[-100, 3, 4, 0, 1, -100], [-100, 3, -100, 0, 3, 4]])
    perfect = np.eye(5)[np.where(gold == IGNORE_INDEX, 2, gold)]  # junk at ignored positions must not count
    assert task.validation_metrics(perfect, gold)["micro_f1"] == 1.0
    worse = perfect.copy()
    worse[1, 5] = np.eye(5)[0]  # PERSON "B I" cut to "B": one boundary error
    metrics = task.validation_metrics(worse, gold)
    expected = entity_metrics(
        [bio_entities(g[g != -100]) for g in gold], [bio_entities(p.argmax(-1)[g != -100]) for p, g in zip(worse, gold)]
    )
    assert metrics["micro_f1"] == pytest.approx(expected["micro"]["f1"]) and metrics["micro_f1"] < 1.0
    assert metrics["token_accuracy"] == pytest.approx(7 / 8)


def test_bio_entities_follow_the_bio_label_layout():
    assert bio_entities(np.array([0, 3, 4, 4, 1, 3, 0, 2])) == [
        {"entity_type": "1", "start": 1, "end": 4, "text": "xxx", "confidence": 1.0},
        {"entity_type": "0", "start": 4, "end": 5, "text": "x", "confidence": 1.0},
        {"entity_type": "1", "start": 5, "end": 6, "text": "x", "confidence": 1.0},
        {"entity_type": "0", "start": 7, "end": 8, "text": "x", "confidence": 1.0},
    ]


def test_confusion_matrix_puts_missed_and_spurious_in_the_none_row_and_column():
    labels, m = confusion_matrix_with_none(
        {"PERSON": {"PERSON": 2, "missed": 1}, "PHONE_NUMBER": {"DATE_TIME": 1}, "DATE_TIME": {"spurious": 3}}
    )
    assert labels == ["DATE_TIME", "PERSON", "PHONE_NUMBER", "(none)"]
    assert m == [[0, 0, 0, 0], [0, 2, 0, 1], [1, 0, 0, 0], [3, 0, 0, 0]]


def test_context_noise_changes_training_sentences_only_and_every_type_keeps_a_training_template(tmp_path):
    task = get_task("pii")
    plain = task.load_splits(tiny_pii_cfg(tmp_path, tmp_path, context_noise=0.0))
    noisy = task.load_splits(tiny_pii_cfg(tmp_path, tmp_path, context_noise=0.5))
    assert noisy.validation == plain.validation and noisy.test == plain.test
    assert len(noisy.train) == len(plain.train) and noisy.train != plain.train
    train_types = {sp["entity_type"] for r in plain.train for sp in r["spans"]}
    assert {sp["entity_type"] for r in plain.validation + plain.test for sp in r["spans"]} <= train_types
    with pytest.raises(ValueError, match="context_noise"):
        tiny_pii_cfg(tmp_path, tmp_path, context_noise=2.0).validate()


def test_pii_label_maps_carry_upstream_gos_keys_beside_the_earlier_ones():
    files = get_task("pii").label_files(["O", "B-PERSON", "I-PERSON"])
    assert set(files) == {"label_mapping.json", "pii_type_mapping.json"}
    for mapping in files.values():
        assert mapping["label_to_idx"] == mapping["label_to_id"] == {"O": 0, "B-PERSON": 1, "I-PERSON": 2}
        assert mapping["idx_to_label"] == mapping["id_to_label"] == {"0": "O", "1": "B-PERSON", "2": "I-PERSON"}
    intent = get_task("intent").label_files(["law", "math"])
    assert intent["category_mapping.json"] == {
        "category_to_idx": {"law": 0, "math": 1},
        "idx_to_category": {"0": "law", "1": "math"},
    }


def test_hand_written_training_messages_join_the_training_split_only_and_repeat(tmp_path):
    from loraroute.data.pii_natural import training_messages

    natural = {r["text"] for r in training_messages()}
    task = PIITask()
    cfg = tiny_pii_cfg(tmp_path, tmp_path, chat_samples=0, lookalike_samples=0)
    splits = {n: task.load_splits(dataclasses.replace(cfg, natural_repeats=n)) for n in (0, 2)}
    assert splits[2].validation == splits[0].validation and splits[2].test == splits[0].test
    added = splits[2].train[len(splits[0].train) :]
    assert splits[2].train[: len(splits[0].train)] == splits[0].train
    assert len(added) == 2 * len(natural) and {r["text"] for r in added} == natural
    assert not natural & {r["text"] for r in splits[0].train + splits[0].validation + splits[0].test}
    assert splits[2].notes["natural_training_messages"] == len(natural)
    # a hub or local dataset trains on itself alone
    assert task.natural_training(dataclasses.replace(cfg, data="x.jsonl", natural_repeats=2)) == []


@pytest.mark.slow
def test_training_calibrates_the_threshold_on_the_natural_validation_set_and_predict_uses_it(pii_runs):
    out = pii_runs("bert").artifact_dir
    stored = json.loads((out / "thresholds.json").read_text())
    assert stored["target_has_pii_recall"] == 0.98 and stored["set"] == "eval_sets/pii_natural_validation.jsonl"
    # A tiny random model finds no identifying entity in many messages: the gate falls to 0 and says so.
    assert stored["target_reached"] == (stored["validation_has_pii_recall"] >= 0.98)
    assert stored["target_reached"] or stored["has_pii_threshold"] == 0.0
    report = json.loads((out / "eval_report.json").read_text())
    assert report["threshold"] == stored
    for part in ("natural_test", "natural_blind", "natural_blind2", "natural_validation"):
        assert {"overlap_f1", "exact_f1", "has_pii", "per_type", "model_only"} <= set(report[part])
    assert report["natural_validation"]["has_pii"]["recall"] == stored["validation_has_pii_recall"]
    assert report["data_notes"]["chat_records"] == 60  # chat_samples=40 + lookalike_samples=20
    assert 0.0 <= stored["threshold"] <= stored["has_pii_threshold"]
    predictor = Predictor.load(out)
    texts = [r["text"] for r in load_natural_set("validation")[:30]]
    every = predictor.predict(texts, threshold=0.0, gate=False)
    default = predictor.predict(texts)
    gate, threshold = stored["has_pii_threshold"], stored["threshold"]
    expected = [
        [e for e in a["entities"] if e["confidence"] >= threshold] if PIITask.strongest(a["entities"]) >= gate else []
        for a in every
    ]
    assert default == [{"has_pii": bool(kept), "entities": kept} for kept in expected]
    # an explicit threshold replaces the entity threshold; the gate still decides which messages carry PII
    gated = [a["entities"] if PIITask.strongest(a["entities"]) >= gate else [] for a in every]
    assert predictor.predict(texts, threshold=0.0) == [{"has_pii": bool(g), "entities": g} for g in gated]
    assert PIITask().stored_threshold(predictor.meta) == threshold


def test_calibration_picks_the_highest_threshold_that_keeps_the_recall_target():
    def ents(*confidences):
        return [
            {"entity_type": "PERSON", "start": i, "end": i + 1, "text": "x", "confidence": c}
            for i, c in enumerate(confidences)
        ]

    gold = [[{"entity_type": "PERSON", "start": 0, "end": 1}]] * 4 + [[]] * 2
    predicted = [ents(0.9, 0.2), ents(0.8), ents(0.6), ents(0.3), ents(0.7), ents(0.1)]
    task = PIITask()
    # strongest entity per PII message: 0.9, 0.8, 0.6, 0.3 -> recall 0.75 needs the third, 0.6
    t = task.calibrate(gold, predicted, 0.75)
    assert t["has_pii_threshold"] == 0.6 and t["validation_has_pii_recall"] == 0.75
    assert t["validation_false_alarm_rate"] == 0.5  # the no-PII message at 0.7 is flagged, the one at 0.1 is not
    # in flagged messages the 0.2 entity is spurious (gold has one entity at 0): the best grid value is above it
    assert 0.2 < t["threshold"] <= 0.6 and t["validation_overlap_f1"] == pytest.approx(
        task.span_scores(gold, predicted, t["threshold"], 0.6)["overlap_f1"]
    )
    assert task.calibrate(gold, predicted, 1.0)["has_pii_threshold"] == 0.3
    assert t["target_reached"]
    missed = [[]] + predicted[1:]  # the first PII message now has no entity: recall 1.0 is out of reach
    unreachable = task.calibrate(gold, missed, 1.0)
    assert unreachable["has_pii_threshold"] == 0.0 and not unreachable["target_reached"]
    assert unreachable["validation_has_pii_recall"] == 0.75
    with pytest.raises(DataError, match="no message with PII"):
        task.calibrate([[]], [ents(0.5)], 0.95)


def test_the_gate_drops_a_message_whose_strongest_entity_is_below_it():
    weak = [{"entity_type": "AGE", "start": 0, "end": 2, "text": "40", "confidence": 0.6}]
    strong = weak + [{"entity_type": "PERSON", "start": 3, "end": 6, "text": "Ann", "confidence": 0.95}]
    assert PIITask.decide(weak, 0.5, gate=0.9) == []
    assert PIITask.decide(strong, 0.5, gate=0.9) == strong  # a flagged message keeps its weaker entities
    assert PIITask.decide(strong, 0.7, gate=0.9) == strong[1:]
    assert PIITask.decide(weak, 0.5) == weak  # no gate: the threshold alone
    # the gate reads identifying entities only: a sure date, age, title or nationality alone is not PII
    quasi = [
        {"entity_type": t, "start": 0, "end": 2, "text": "x", "confidence": 0.99}
        for t in ("DATE_TIME", "AGE", "TITLE", "NRP")
    ]
    assert PIITask.strongest(quasi) == 0.0 and PIITask.decide(quasi, 0.5, gate=0.9) == []
    assert PIITask.decide(quasi + strong[1:], 0.5, gate=0.9) == quasi + strong[1:]
