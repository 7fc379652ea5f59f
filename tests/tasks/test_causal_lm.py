"""Tests for loraroute.tasks.causal_lm on a tiny in-test tokenizer and tiny random models."""

from __future__ import annotations

import pytest
import torch

from loraroute.tasks.causal_lm import (
    IGNORE_INDEX,
    CompletionCollator,
    extract_choice,
    format_chat,
    format_mc_question,
    format_mc_target,
    generate_batched,
    parse_category,
    strip_think,
    template_accepts,
    tokenize_completion,
)
from tests.conftest import build_chat_tokenizer, tiny_causal_model

# Mimics Qwen3: an empty think block in the generation prompt when enable_thinking is false,
# and in front of the final assistant turn.
QWEN_LIKE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' and loop.last %}"
    "{{ '<|im_start|>assistant\n<think>\n\n</think>\n\n' + message['content'] + '<|im_end|>\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% if enable_thinking is defined and enable_thinking is false %}{{ '<think>\n\n</think>\n\n' }}{% endif %}"
    "{% endif %}"
)
CATEGORIES = [
    "biology",
    "business",
    "chemistry",
    "computer science",
    "economics",
    "engineering",
    "health",
    "history",
    "law",
    "math",
    "other",
    "philosophy",
    "physics",
    "psychology",
]


_build_tokenizer = build_chat_tokenizer
_tiny_model = tiny_causal_model


@pytest.fixture(scope="module")
def tok():
    return _build_tokenizer()


def _example(tok, user, answer, system="You route questions.", max_length=128):
    prompt, full = format_chat(tok, system, user, answer)
    return tokenize_completion(tok, prompt, full[len(prompt) :], max_length)


# --------------------------------------------------------------------------- chat formatting


def test_format_chat_prompt_is_prefix_of_full_text(tok):
    prompt, full = format_chat(tok, "Be brief.", "What is 2+2?", "4")
    assert full.startswith(prompt)
    assert prompt.endswith("<|im_start|>assistant\n")
    assert full[len(prompt) :] == "4<|im_end|>\n"
    assert "<|im_start|>system\nBe brief.<|im_end|>" in prompt


def test_format_chat_without_assistant_or_system(tok):
    prompt, full = format_chat(tok, None, "Hi", None)
    assert full is None
    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_format_chat_passes_enable_thinking_only_when_template_uses_it(tok):
    qwen = _build_tokenizer(QWEN_LIKE)
    assert template_accepts(qwen, "enable_thinking") and not template_accepts(tok, "enable_thinking")
    prompt, full = format_chat(qwen, None, "Which field?", "biology", enable_thinking=False)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert full.startswith(prompt) and full[len(prompt) :] == "biology<|im_end|>\n"
    thinking_prompt, _ = format_chat(qwen, None, "Which field?", None, enable_thinking=True)
    assert thinking_prompt.endswith("<|im_start|>assistant\n")


# --------------------------------------------------------------------------- masking / collation


def test_tokenize_completion_labels_only_answer_and_end_of_turn(tok):
    feat = _example(tok, "Which enzyme unwinds DNA?", "biology")
    labelled = [t for t in feat["labels"] if t != IGNORE_INDEX]
    assert tok.decode(labelled) == "biology<|im_end|>"  # trailing "\n" after the end-of-turn is dropped
    n_prompt = len(feat["input_ids"]) - len(labelled)
    assert feat["labels"][:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert feat["input_ids"][n_prompt:] == labelled
    assert feat["attention_mask"] == [1] * len(feat["input_ids"])


def test_tokenize_completion_appends_eos_to_raw_completion(tok):
    feat = tokenize_completion(tok, "Question: law or history?\nAnswer: ", "law", 64)
    assert feat["input_ids"][-1] == tok.eos_token_id and feat["labels"][-1] == tok.eos_token_id


def test_tokenize_completion_truncates_prompt_from_left_never_the_answer(tok):
    prompt, full = format_chat(tok, "x " * 200, "What is 2+2?", "The answer is (B)")
    feat = tokenize_completion(tok, prompt, full[len(prompt) :], max_length=40)
    assert len(feat["input_ids"]) == 40
    labelled = [t for t in feat["labels"] if t != IGNORE_INDEX]
    assert tok.decode(labelled) == "The answer is (B)<|im_end|>"
    assert tok.decode(feat["input_ids"]).endswith("<|im_start|>assistant\nThe answer is (B)<|im_end|>")
    with pytest.raises(ValueError, match="refusing to cut the answer"):
        tokenize_completion(tok, prompt, full[len(prompt) :], max_length=3)


def test_collator_pads_right_and_keeps_prompt_masked_on_real_batch(tok):
    feats = [
        _example(tok, "Which enzyme unwinds DNA during replication?", "biology"),
        _example(tok, "Define GDP.", "economics"),
        _example(tok, "Sort a list in O(n log n).", "computer science"),
    ]
    batch = CompletionCollator(tok, pad_to_multiple_of=8)(feats)
    width = batch["input_ids"].shape[1]
    assert width % 8 == 0 and width >= max(len(f["input_ids"]) for f in feats)
    for row, f in enumerate(feats):
        n = len(f["input_ids"])
        n_prompt = sum(1 for t in f["labels"] if t == IGNORE_INDEX)
        labels = batch["labels"][row].tolist()
        ids = batch["input_ids"][row].tolist()
        # -100 exactly on prompt and padding; the answer tokens carry their ids
        assert [i for i, t in enumerate(labels) if t == IGNORE_INDEX] == list(range(n_prompt)) + list(range(n, width))
        assert labels[n_prompt:n] == ids[n_prompt:n] == f["input_ids"][n_prompt:]
        assert ids[n:] == [tok.pad_token_id] * (width - n)
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (width - n)
    answers = [tok.decode([t for t in r if t != IGNORE_INDEX]) for r in batch["labels"].tolist()]
    assert answers == ["biology<|im_end|>", "economics<|im_end|>", "computer science<|im_end|>"]


def test_collator_keeps_eos_label_when_pad_equals_eos():
    tok = _build_tokenizer()
    tok.pad_token = tok.eos_token  # SmolLM2's GGUF tokenizer: pad = <|im_end|>
    feats = [_example(tok, "Short?", "law"), _example(tok, "A much longer question about history?", "history")]
    batch = CompletionCollator(tok)(feats)
    n = len(feats[0]["input_ids"])
    assert batch["labels"][0, n - 1].item() == tok.eos_token_id  # the real end-of-turn stays labelled
    assert (batch["labels"][0, n:] == IGNORE_INDEX).all()  # pad (same id) does not


def test_collator_requires_labels(tok):
    with pytest.raises(KeyError):
        CompletionCollator(tok)([{"input_ids": [1, 2, 3]}])


@pytest.mark.parametrize("kind", ["qwen3", "llama"])
def test_one_lora_step_lowers_completion_loss(kind, tok):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = _tiny_model(kind, tok)
    feats = [
        _example(tok, "Which enzyme unwinds DNA?", "biology"),
        _example(tok, "What is a contract?", "law"),
        _example(tok, "Derivative of x squared?", "math"),
    ]
    batch = CompletionCollator(tok)(feats)
    lora = LoraConfig(
        r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
    )
    model = get_peft_model(model, lora)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    base_before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}

    model.train()
    out = model(**batch)
    # the loss covers the completion tokens only
    logits = out.logits[:, :-1].float()
    target = batch["labels"][:, 1:]
    manual = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=IGNORE_INDEX
    )
    assert torch.allclose(out.loss, manual, atol=1e-5)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    out.loss.backward()
    opt.step()
    with torch.no_grad():
        after = model(**batch).loss
    assert after.item() < out.loss.item()
    for n, p in model.named_parameters():
        if n in base_before:
            assert torch.equal(p, base_before[n])


def test_generate_batched_left_pads_and_returns_one_completion_per_prompt(tok):
    model = _tiny_model("llama", tok, initializer_range=0.5)  # large init: outputs differ per prompt
    prompts = [
        format_chat(tok, None, q)[0]
        for q in ["Hi", "Which enzyme unwinds DNA during replication in biology?", "Define GDP.", "Law?", "x"]
    ]
    tok.padding_side = "right"
    batched = generate_batched(model, tok, prompts, max_new_tokens=5, batch_size=2)
    assert tok.padding_side == "right"
    assert len(batched) == len(prompts) and all(isinstance(t, str) for t in batched)
    assert len(set(batched)) > 1
    single = [generate_batched(model, tok, [p], max_new_tokens=5, batch_size=1)[0] for p in prompts]
    assert batched == single  # left padding + attention mask do not change greedy outputs


# --------------------------------------------------------------------------- parsing

OPTS = ["4", "5", "6", "7"]
CHOICE_CASES = [
    ("The answer is (C)", "C"),
    ("Let's think step by step. 2+2 = 4, so not B. The answer is (A).", "A"),
    ("answer: C", "C"),
    ("Answer: d", "D"),
    ("The answer is a matter of definition.", None),  # lower-case "a" inside prose is English
    ("Answer: (d)", "D"),
    ("**C**", "C"),
    ("(c)", "C"),
    ("C) 6", "C"),
    ("Reasoning about each option...\nC", "C"),
    ("6", "C"),
    ("The answer is 7", "D"),
    ("The answer is (A). Wait, re-checking: the answer is (B)", "B"),
    ("<think>The answer is (A)</think>The answer is (D)", "D"),
    ("<think>Maybe the answer is (A) and then", None),  # unclosed think, nothing after it
    ("hmm</think>\nFinal answer: **B**", "B"),
    ("The answer is (A) or (B)", None),
    ("The answer is (F)", None),  # out of range for 4 options
    ("The answer is unclear.", None),
    ("A) 4\nB) 5\nC) 6\nD) 7", None),  # echoed option list
    ("I think **A** is wrong and **B** is right", None),  # conflicting bold letters
    ("", None),
    ("It depends on the context.", None),
    ("The correct option is (b).", "B"),
    ("The answer is A lot harder than it looks.", None),
    ("The answer is C because 2+2 = 6 in this base.", "C"),
    ("So the final answer is $\\boxed{D}$", "D"),
]


@pytest.mark.parametrize("text,expected", CHOICE_CASES)
def test_extract_choice_table(text, expected):
    assert extract_choice(text, OPTS) == expected


def test_extract_choice_supports_ten_options_and_rejects_more():
    opts = [str(i) for i in range(10)]
    assert extract_choice("The answer is (J)", opts) == "J"
    with pytest.raises(ValueError):
        extract_choice("The answer is (A)", [str(i) for i in range(11)])


CATEGORY_CASES = [
    ("biology", "biology"),
    ("Biology", "biology"),
    ("Category: Biology.", "biology"),
    ("The category is computer science", "computer science"),
    ("computer_science", "computer science"),
    ("Computer-Science!", "computer science"),
    ("**Physics**\nThis question is about motion, not chemistry.", "physics"),
    ("<think>It could be chemistry or biology...</think>\nlaw", "law"),
    ("<think>maybe history", None),
    ("I'm not sure.\nPerhaps philosophy, or psychology.", "philosophy"),
    ("Math or economics", "math"),
    ("This is about mathematics", None),
    ("", None),
    ("reasoning about health</think> Engineering", "engineering"),
]


@pytest.mark.parametrize("text,expected", CATEGORY_CASES)
def test_parse_category_table(text, expected):
    assert parse_category(text, CATEGORIES) == expected


def test_parse_category_returns_given_spelling():
    assert parse_category("computer science", ["Computer_Science", "Law"]) == "Computer_Science"


def test_strip_think_handles_closed_unclosed_and_orphan_blocks():
    assert strip_think("<think>a</think>b") == "b"
    assert strip_think("b<think>never closed") == "b"
    assert strip_think("opened in prompt</think>\nc") == "c"


# --------------------------------------------------------------------------- MC formatting


def test_format_mc_question_letters_options():
    text = format_mc_question("What is 2+2?", OPTS)
    assert "Question: What is 2+2?\nOptions:\nA) 4\nB) 5\nC) 6\nD) 7" in text
    assert "step by step" in text and "The answer is (X)" in text
    assert "step by step" not in format_mc_question("What is 2+2?", OPTS, cot=False)
    with pytest.raises(ValueError):
        format_mc_question("q", [str(i) for i in range(11)])


def test_format_mc_target_ends_with_answer_statement_once():
    assert format_mc_target(None, "c") == "The answer is (C)"
    target = format_mc_target("A: Let's think step by step. 2+2=4. The answer is (A).", "A")
    assert target == "Let's think step by step. 2+2=4.\n\nThe answer is (A)"
    assert target.count("The answer is") == 1
    assert extract_choice(target, OPTS) == "A"
    with pytest.raises(ValueError):
        format_mc_target("So the answer is (B).", "A")
    with pytest.raises(ValueError):
        format_mc_target("x", "K")
