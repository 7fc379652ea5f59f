"""Causal-LM plumbing shared by the category classifier and the MC solvers.

* :func:`format_chat` renders prompt / full text with the tokenizer's own chat template.
* :func:`tokenize_completion` + :class:`CompletionCollator` build completion-only
  training batches: ``labels`` are ``-100`` on the prompt and on padding, so the
  loss covers only the answer and its end-of-turn token.  (Upstream used
  ``DataCollatorForLanguageModeling``, which recomputes ``labels`` from
  ``input_ids`` and so trained on the prompt too; the collator here never
  touches the labels it is given.)
* :func:`generate_batched` runs greedy, left-padded batched generation.
* :func:`parse_category` / :func:`extract_choice` turn generations into labels,
  returning ``None`` rather than guessing.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Sequence

IGNORE_INDEX = -100
MC_LETTERS = "ABCDEFGHIJ"  # MMLU-Pro has up to 10 options

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


def format_chat(tokenizer, system: str | None, user: str, assistant: str | None = None,
                enable_thinking: bool = False) -> tuple[str, str | None]:
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
    full = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": assistant}],
                                         tokenize=False, add_generation_prompt=False, **extra)
    if not full.startswith(prompt):
        raise ValueError("chat template output is not prefix-stable: the rendered conversation does not "
                         f"start with the generation prompt\nprompt={prompt!r}\nfull={full!r}")
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
        raise ValueError(f"completion alone has {len(completion_ids)} tokens > max_length={max_length}; "
                         "refusing to cut the answer")
    room = max_length - len(completion_ids)
    if len(prompt_ids) > room:
        prompt_ids = prompt_ids[len(prompt_ids) - room:] if room > 0 else []
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


def generate_batched(model, tokenizer, prompts: Sequence[str], max_new_tokens: int, batch_size: int = 8,
                     add_special_tokens: bool = False) -> list[str]:
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
            idx = order[start:start + batch_size]
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True,
                            add_special_tokens=add_special_tokens).to(device)
            with torch.no_grad():
                gen = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                                     max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                     pad_token_id=pad_id)
            new = gen[:, enc["input_ids"].shape[1]:]
            for i, text in zip(idx, tokenizer.batch_decode(new, skip_special_tokens=True)):
                out[i] = text.strip()
        return out  # type: ignore[return-value]
    finally:
        tokenizer.padding_side = old_side
        if old_pad is None:
            tokenizer.pad_token = None
        if was_training:
            model.train()


# --------------------------------------------------------------------------- output parsing

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.S | re.I)
_THINK_OPEN = re.compile(r"<think>.*\Z", re.S | re.I)
_THINK_CLOSE = re.compile(r"</think>", re.I)


def strip_think(text: str) -> str:
    """Remove ``<think>...</think>`` blocks, an unclosed ``<think>`` tail, and
    anything before an orphan ``</think>`` (prompt-opened thinking)."""
    text = _THINK_BLOCK.sub(" ", text or "")
    text = _THINK_OPEN.sub(" ", text)
    parts = _THINK_CLOSE.split(text)
    return parts[-1].strip()


def _norm_label(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower().replace("_", " ").replace("-", " ")
    text = re.sub(r"[^\w\s]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def parse_category(text: str, categories: Sequence[str]) -> str | None:
    """Map a generated label to one of *categories* (returned in its given spelling).

    Handles think blocks, case, punctuation, ``"Category: Biology."``,
    ``"computer_science"``/``"computer-science"`` and extra words ("The category
    is computer science").  The earliest category mentioned on the first
    non-empty line wins (ties: the longest name); if that line names none, the
    earliest anywhere; ``None`` if no category occurs.
    """
    patterns = []
    for cat in categories:
        norm = _norm_label(cat)
        if norm:
            patterns.append((cat, re.compile(r"(?<![a-z0-9])" + re.escape(norm) + r"(?![a-z0-9])"), len(norm)))
    body = strip_think(text)
    lines = [ln for ln in body.splitlines() if _norm_label(ln)]
    for scope in (lines[:1], lines):
        hay = _norm_label(" \n ".join(scope))
        best = None
        for cat, pat, length in patterns:
            m = pat.search(hay)
            if m and (best is None or (m.start(), -length) < (best[0], -best[1])):
                best = (m.start(), length, cat)
        if best:
            return best[2]
    return None


def _norm_option(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[*_`$]", "", text)
    text = re.sub(r"\s+", " ", text).strip()
    return text.strip(" .;:!,\"'")


_ANSWER_PHRASE = (r"(?i:\b(?:final\s+answer|correct\s+answer|best\s+answer|answer|correct\s+(?:option|choice))\b)"
                  r"(?i:\s*(?:is|would\s+be|should\s+be|must\s+be|will\s+be)(?:\s+(?:therefore|thus|clearly))?"
                  r"\s*[:=\-–]?|\s*[:=])")
_ANSWER_STMT = re.compile(_ANSWER_PHRASE)
_LETTER_AFTER = re.compile(r"\s*(?i:(?:option|choice|letter)\s*)?"
                           r"(?:\(([A-Ja-j])\)|\[([A-Ja-j])\]|([A-J])(?![A-Za-z0-9'’])"
                           r"|([a-j])(?=\s*[.)]?[ \t]*(?:\n|$)))")  # lower-case only when it ends the line
_MORE_LETTERS = re.compile(r"^[)\].]?\s*(?i:or|and|/|,|&)\s*(?i:option\s*)?\(?([A-Ja-j])\)?(?![A-Za-z0-9])")
_ENGLISH_AFTER_AI = re.compile(r"\s+[a-z]")
_CONNECTIVES = re.compile(r"\s+(?:because|since|as|which|for|with|given|due|—)\b")
_BOLD = re.compile(r"\*\*\s*\(?([A-Ja-j])\)?[.):]?\s*\*\*|\\boxed\{\s*\(?([A-Ja-j])\)?\s*\}")
_OPTION_LINE = re.compile(r"^\s*(?:\(([A-Ja-j])\)|([A-J])([.):]))\s+(\S.*)$")
_LETTER_LINE = re.compile(r"^\s*\(?([A-Ja-j])\)?[.):]?\s*$")


def _clean_line(line: str) -> str:
    return re.sub(r"^[#>\s*\-•]+|[*\s]+$", "", line.replace("**", "")).strip()


def _option_index(text: str, options: Sequence[str]) -> int | None:
    """Index of the option whose normalised text equals *text* (unique), else None."""
    t = _norm_option(text)
    if not t:
        return None
    hits = [i for i, o in enumerate(options) if _norm_option(o) == t]
    return hits[0] if len(hits) == 1 else None


def extract_choice(text: str, options: Sequence[str]) -> str | None:
    """Extract the chosen option letter (``"A"``..``"J"``) from an MC generation.

    Tried in order, after removing think blocks:

    1. the LAST answer statement ("The answer is (C)", "answer: C",
       "Final answer: **B**", "the correct option is (d)"); its letter, or its
       text if that equals an option.  If that statement is malformed,
       out of range or names several letters, the result is ``None``;
    2. bold / boxed letters (``**C**``, ``\\boxed{C}``), if they all agree;
    3. the final non-empty line: ``"C"``, ``"(c)"``, ``"C) text"`` (rejected when
       the output lists several options or the text names another option);
    4. the whole output or its final line equal to one option's text.

    Returns ``None`` when nothing matches or the output is ambiguous.
    """
    n = len(options)
    if n > len(MC_LETTERS):
        raise ValueError(f"at most {len(MC_LETTERS)} options supported, got {n}")
    allowed = MC_LETTERS[: n or len(MC_LETTERS)]

    def ok(letter: str | None) -> str | None:
        if letter is None:
            return None
        letter = letter.upper()
        return letter if letter in allowed else None

    body = strip_think(text)
    if not body:
        return None
    plain = re.sub(r"\\boxed\{([^{}]*)\}|\\text\{([^{}]*)\}", lambda m: m.group(1) or m.group(2) or "", body)
    plain = plain.replace("**", "").replace("$", "")

    # 1. last answer statement
    stmts = list(_ANSWER_STMT.finditer(plain))
    if stmts:
        rest = plain[stmts[-1].end():]
        m = _LETTER_AFTER.match(rest)
        if m:
            letter = m.group(1) or m.group(2) or m.group(3) or m.group(4)
            after = rest[m.end():]
            if m.group(3) and letter in "AI" and _ENGLISH_AFTER_AI.match(after) and not _CONNECTIVES.match(after):
                return None  # "the answer is A lot more ..." is English, not a letter
            more = _MORE_LETTERS.match(after)
            if more and more.group(1).upper() != letter.upper():
                return None  # "(A) or (B)"
            return ok(letter)
        first_line = rest.strip().splitlines()[0] if rest.strip() else ""
        idx = _option_index(first_line, options) if options else None
        return allowed[idx] if idx is not None else None

    # 2. bold / boxed letters
    bold = {(a or b).upper() for a, b in _BOLD.findall(body)}
    if len(bold) > 1:
        return None
    if bold:
        return ok(bold.pop())

    # 3. final line
    lines = [_clean_line(ln) for ln in plain.splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        return None
    last = lines[-1]
    m = _LETTER_LINE.match(last)
    if m:
        return ok(m.group(1))
    m = _OPTION_LINE.match(last)
    if m:
        listed = {(mm.group(1) or mm.group(2)).upper() for mm in map(_OPTION_LINE.match, lines) if mm}
        if len(listed) > 1:
            return None  # the output echoes the option list
        letter = (m.group(1) or m.group(2)).upper()
        idx = _option_index(m.group(4), options) if options else None
        if idx is not None and allowed[idx] != letter:
            return None  # "C) <text of option B>"
        if m.group(3) == "." and idx is None:
            return None  # "A. Einstein ..." may be prose; "X." needs the option's own text
        return ok(letter)

    # 4. option text
    for candidate in (plain, last):
        idx = _option_index(candidate, options) if options else None
        if idx is not None:
            return allowed[idx]
    return None


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
        instruction = ('Think step by step, then finish with "The answer is (X)" '
                       "where X is the letter of the correct option.")
    else:
        instruction = 'Reply with "The answer is (X)" where X is the letter of the correct option.'
    return "\n".join(lines) + "\n\n" + instruction


_TRAILING_ANSWER = re.compile(r"(?is)\s*(?:so|therefore|thus|hence)?,?\s*the\s+(?:correct\s+)?answer\s+is\s*"
                              r"\(?([A-J])\)?\s*\.?\s*$")
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
