"""Causal-LM plumbing shared by the category classifier and the MC solvers.

* :func:`format_chat` renders prompt / full text with the tokenizer's own chat template.
* :func:`tokenize_completion` + :class:`CompletionCollator` build completion-only
  training batches: ``labels`` are ``-100`` on the prompt and on padding, so the
  loss covers only the answer and its end-of-turn token.  (Upstream used
  ``DataCollatorForLanguageModeling``, which recomputes ``labels`` from
  ``input_ids`` and so trained on the prompt too; the collator here never
  touches the labels it is given.)
* :func:`generate_batched` runs greedy, left-padded batched generation.
* :func:`parse_category` / :func:`extract_choice` (in :mod:`causal_parsing`) turn
  generations into labels, returning ``None`` rather than guessing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

# Parsing lives in causal_parsing; re-exported here so callers have one import for causal-LM plumbing.
from loraroute.tasks.causal_parsing import (  # noqa: F401
    MC_LETTERS,
    extract_choice,
    parse_category,
    strip_think,
)

IGNORE_INDEX = -100

# --------------------------------------------------------------------------- chat formatting


def _template_variables(tokenizer) -> set[str] | None:
    """Undeclared variables of the tokenizer's chat template (None if unknown)."""
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        return None
    if isinstance(template, dict):
        template = template.get("default") or "\n".join(template.values())
    try:
        import jinja2
        from jinja2 import meta

        return set(meta.find_undeclared_variables(jinja2.Environment().parse(template)))
    except Exception:  # unusual syntax (custom extensions): fall back to a substring test
        return {name for name in ("enable_thinking",) if name in template}


def template_accepts(tokenizer, variable: str) -> bool:
    """True when the chat template reads *variable* (e.g. Qwen3's ``enable_thinking``)."""
    return variable in (_template_variables(tokenizer) or set())


def format_chat(
    tokenizer, system: str | None, user: str, assistant: str | None = None, enable_thinking: bool = False
) -> tuple[str, str | None]:
    """Render ``(prompt_text, full_text)`` with the tokenizer's chat template.

    ``prompt_text`` ends with the generation prompt (``add_generation_prompt``);
    ``full_text`` is the conversation including the assistant turn (``None``
    when *assistant* is ``None``) and always starts with ``prompt_text``.
    ``enable_thinking`` is passed only when the template uses it (Qwen3), where
    ``False`` makes the prompt end with an empty ``<think></think>`` block.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("tokenizer has no chat_template")
    messages = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": user})
    extra = {"enable_thinking": enable_thinking} if template_accepts(tokenizer, "enable_thinking") else {}
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **extra)
    if assistant is None:
        return prompt, None
    full = tokenizer.apply_chat_template(
        messages + [{"role": "assistant", "content": assistant}], tokenize=False, add_generation_prompt=False, **extra
    )
    if not full.startswith(prompt):
        raise ValueError(
            "chat template output is not prefix-stable: the rendered conversation does not "
            f"start with the generation prompt\nprompt={prompt!r}\nfull={full!r}"
        )
    return prompt, full


# --------------------------------------------------------------------------- tokenisation / collation


def _special_ids(tokenizer) -> set[int]:
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    return {i for i in ids if i is not None}


def tokenize_completion(tokenizer, prompt_text: str, completion_text: str, max_length: int) -> dict[str, list[int]]:
    """Tokenise a prompt/completion pair for completion-only training.

    Prompt and completion are tokenised separately (``add_special_tokens=False``:
    chat templates already contain their markers) so the boundary is exact.
    ``labels`` are ``-100`` on every prompt token and equal ``input_ids`` on the
    completion.  The completion keeps its end-of-turn token; whitespace the
    template puts *after* a final special token (ChatML's ``"<|im_end|>\\n"``) is
    dropped, and EOS is appended when the completion does not end in a special
    token.  Too long inputs lose prompt tokens from the left; the completion is
    never cut (``ValueError`` if it alone exceeds ``max_length``).
    """
    specials = _special_ids(tokenizer)
    stripped = completion_text.rstrip()
    if stripped != completion_text:
        tail_ids = tokenizer(stripped, add_special_tokens=False)["input_ids"]
        if tail_ids and tail_ids[-1] in specials:
            completion_text = stripped
    prompt_ids = list(tokenizer(prompt_text, add_special_tokens=False)["input_ids"])
    completion_ids = list(tokenizer(completion_text, add_special_tokens=False)["input_ids"])
    eos = tokenizer.eos_token_id
    if eos is not None and (not completion_ids or completion_ids[-1] not in specials | {eos}):
        completion_ids.append(eos)
    if len(completion_ids) > max_length:
        raise ValueError(
            f"completion alone has {len(completion_ids)} tokens > max_length={max_length}; refusing to cut the answer"
        )
    room = max_length - len(completion_ids)
    if len(prompt_ids) > room:
        prompt_ids = prompt_ids[len(prompt_ids) - room :] if room > 0 else []
    input_ids = prompt_ids + completion_ids
    return {
        "input_ids": input_ids,
        "attention_mask": [1] * len(input_ids),
        "labels": [IGNORE_INDEX] * len(prompt_ids) + completion_ids,
    }


def _as_list(x) -> list[int]:
    return x.tolist() if hasattr(x, "tolist") else list(x)


class CompletionCollator:
    """Right-pad completion-only features into tensors without recomputing labels.

    ``input_ids`` are padded with the pad id (EOS when the tokenizer has no pad
    token), ``attention_mask`` with 0 and ``labels`` with -100.  The labels of
    each feature are copied as given, so prompt masking survives even when the
    pad id equals EOS (as in SmolLM2, where pad = ``<|im_end|>``).
    """

    def __init__(self, tokenizer, pad_to_multiple_of: int | None = None):
        self.tokenizer = tokenizer
        self.pad_to_multiple_of = pad_to_multiple_of
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id
        if pad is None:
            raise ValueError("tokenizer has neither pad nor eos token")
        self.pad_token_id = int(pad)

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        if not features:
            raise ValueError("empty batch")
        rows = []
        for f in features:
            if "labels" not in f:
                raise KeyError("CompletionCollator needs 'labels' in every feature (use tokenize_completion)")
            ids, labels = _as_list(f["input_ids"]), _as_list(f["labels"])
            mask = _as_list(f["attention_mask"]) if "attention_mask" in f else [1] * len(ids)
            if not len(ids) == len(labels) == len(mask):
                raise ValueError("input_ids, attention_mask and labels must have equal length")
            rows.append((ids, mask, labels))
        width = max(len(r[0]) for r in rows)
        m = self.pad_to_multiple_of
        if m:
            width = -(-width // m) * m
        batch = {"input_ids": [], "attention_mask": [], "labels": []}
        for ids, mask, labels in rows:
            n = width - len(ids)
            batch["input_ids"].append(ids + [self.pad_token_id] * n)
            batch["attention_mask"].append(mask + [0] * n)
            batch["labels"].append(labels + [IGNORE_INDEX] * n)
        return {k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()}


# --------------------------------------------------------------------------- generation


def generate_batched(
    model, tokenizer, prompts: Sequence[str], max_new_tokens: int, batch_size: int = 8, add_special_tokens: bool = False
) -> list[str]:
    """Greedy generation for already-formatted *prompts*; returns the completions only.

    Prompts are left-padded (the tokenizer's ``padding_side`` is restored
    afterwards), grouped by length to limit padding, and returned in input
    order, decoded with special tokens skipped and surrounding whitespace
    stripped.  ``add_special_tokens`` defaults to False because chat-template
    prompts already contain BOS/markers.
    """
    import torch

    prompts = list(prompts)
    if not prompts:
        return []
    old_side, old_pad = tokenizer.padding_side, tokenizer.pad_token
    was_training = model.training
    try:
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        pad_id = tokenizer.pad_token_id
        device = next(model.parameters()).device
        model.eval()
        lengths = [len(tokenizer(p, add_special_tokens=add_special_tokens)["input_ids"]) for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
        out: list[str | None] = [None] * len(prompts)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer(
                [prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=add_special_tokens
            ).to(device)
            with torch.no_grad():
                gen = model.generate(
                    input_ids=enc["input_ids"],
                    attention_mask=enc["attention_mask"],
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    num_beams=1,
                    pad_token_id=pad_id,
                )
            new = gen[:, enc["input_ids"].shape[1] :]
            for i, text in zip(idx, tokenizer.batch_decode(new, skip_special_tokens=True)):
                out[i] = text.strip()
        return out  # type: ignore[return-value]
    finally:
        tokenizer.padding_side = old_side
        if old_pad is None:
            tokenizer.pad_token = None
        if was_training:
            model.train()


# --------------------------------------------------------------------------- MC formatting


def format_mc_question(question: str, options: Sequence[str], cot: bool = True) -> str:
    """User message for a multiple-choice question with lettered options ``A) ...``."""
    if not options:
        raise ValueError("no options")
    if len(options) > len(MC_LETTERS):
        raise ValueError(f"at most {len(MC_LETTERS)} options supported, got {len(options)}")
    lines = [f"Question: {question.strip()}", "Options:"]
    lines += [f"{MC_LETTERS[i]}) {str(opt).strip()}" for i, opt in enumerate(options)]
    if cot:
        instruction = (
            'Think step by step, then finish with "The answer is (X)" where X is the letter of the correct option.'
        )
    else:
        instruction = 'Reply with "The answer is (X)" where X is the letter of the correct option.'
    return "\n".join(lines) + "\n\n" + instruction


_TRAILING_ANSWER = re.compile(
    r"(?is)\s*(?:so|therefore|thus|hence)?,?\s*the\s+(?:correct\s+)?answer\s+is\s*"
    r"\(?([A-J])\)?\s*\.?\s*$"
)
_MMLU_PRO_COT_PREFIX = re.compile(r"^\s*(?:A|Answer):\s+(?=Let['’]s think)", re.I)


def format_mc_target(reasoning: str | None, letter: str) -> str:
    """Training target: optional reasoning, then exactly ``The answer is (X)``.

    A trailing "the answer is (X)" already in *reasoning* (MMLU-Pro CoT ends
    with one) is removed to avoid repeating it; if it names a different letter
    a ``ValueError`` is raised.  MMLU-Pro's ``"A: Let's think step by step."``
    prefix loses its ``"A: "``.
    """
    clean = str(letter).strip().strip("()").upper()
    if len(clean) != 1 or clean not in MC_LETTERS:
        raise ValueError(f"answer letter must be one of {MC_LETTERS}, got {letter!r}")
    final = f"The answer is ({clean})"
    if not reasoning or not reasoning.strip():
        return final
    body = _MMLU_PRO_COT_PREFIX.sub("", reasoning.strip())
    m = _TRAILING_ANSWER.search(body)
    if m:
        if m.group(1).upper() != clean:
            raise ValueError(f"reasoning concludes ({m.group(1)}) but the label is ({clean})")
        body = body[: m.start()].rstrip()
    return f"{body}\n\n{final}" if body else final
