"""Tokenize, batch, run and unpad: the one path from texts to per-text logits for every runtime (PyTorch, ONNX
Runtime, candle), so they see identical batches and verify compares like with like.

Token tasks read a text longer than ``max_length`` in overlapping windows stitched back into one token sequence.
A :class:`TextEncoder` tokenizes each text once into those windows; a sequence task reads the first window, which is
the truncated text. Models with the same tokenizer and ``max_length`` share one encoder (``share_encoders``), so a
request that asks intent, PII and security of a text tokenizes it once, not three times.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from itertools import takewhile
from typing import Any

import numpy as np
import torch


def batched_logits(
    model, tokenizer, texts: list[str], max_length: int, batch_size: int = 32, return_offsets: bool = False
) -> tuple[list[np.ndarray], list[dict]]:
    """Logits per text (unpadded), batching texts of similar length together, in the input order."""
    model.eval()
    encoder = TextEncoder(tokenizer, max_length)
    return run_batches(torch_forward(model), encoder, texts, batch_size, return_offsets, "pt")


def torch_forward(model):
    """``forward(encoding) -> logits`` for a PyTorch model: on the model's device, without autograd, as fp32."""
    device = next(model.parameters()).device

    def forward(enc) -> np.ndarray:
        with torch.inference_mode():
            return model(**{k: v.to(device) for k, v in enc.items()}).logits.float().cpu().numpy()

    return forward


def window_stride(max_length: int) -> int:
    """Tokens two consecutive windows of a long text share: a quarter of the window, so a token near a cut still
    sees an eighth of a window of context on its short side (16 tokens at max_length 128)."""
    return max(1, max_length // 4)


def _overlap(before: list, after: list) -> int:
    """How many tokens ``after`` repeats from the end of ``before``: the longest suffix equal to a prefix, tokens
    compared by (word id, token id). Not by offsets: byte-level BPE gives a zero-width token a different offset
    at the start of a window than inside one."""
    for n in range(min(len(before), len(after)), 0, -1):
        if before[-n:] == after[:n]:
            return n
    return 0


def _stitch(windows: list[tuple[np.ndarray, list, list, list]]) -> tuple[np.ndarray, list, list]:
    """One text's overlapping windows ``(logits, word_ids, offsets, token_ids)`` joined into one token sequence.

    Each overlap is split in half: its first half comes from the earlier window (where those tokens have left
    context), its second half from the later one. The first window's leading and the last window's trailing special
    tokens are kept.
    """
    if len(windows) == 1:
        rows, word_ids, offsets, _ = windows[0]
        return rows, list(word_ids), list(offsets)
    as_tokens = [list(zip(*window)) for window in windows]  # (logits row, word id, offset, token id) per token
    body: list[tuple] = []
    for tokens in as_tokens:
        real = [t for t in tokens if t[1] is not None]
        overlap = _overlap([(t[1], t[3]) for t in body[-len(real) :]], [(t[1], t[3]) for t in real])
        body = body[: len(body) - overlap + overlap // 2] + real[overlap // 2 :]
    lead = list(takewhile(lambda t: t[1] is None, as_tokens[0]))
    trail = list(takewhile(lambda t: t[1] is None, reversed(as_tokens[-1])))[::-1]
    joined = lead + body + trail
    return np.stack([t[0] for t in joined]), [t[1] for t in joined], [t[2] for t in joined]


@dataclass(frozen=True)
class Window:
    """One tokenized window of a text, unpadded: what the model reads of it, and where each token came from."""

    input_ids: np.ndarray
    token_type_ids: np.ndarray
    offsets: list[tuple[int, int]]
    word_ids: list[int | None]


class TextEncoder:
    """A tokenizer at one ``max_length``: texts to windows (tokenized once per text, for every task that shares the
    encoder) and windows to padded model inputs, the same arrays the tokenizer's own padding gives.

    The last ``cache_size`` texts' windows are kept, so the tasks of one request (or one server batch), which ask
    about the same texts one after another or side by side, find them tokenized.
    """

    def __init__(self, tokenizer, max_length: int, cache_size: int = 1024):
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.cache_size = cache_size
        self.with_types = "token_type_ids" in tokenizer.model_input_names
        self._cache: OrderedDict[str, list[Window]] = OrderedDict()
        self._lock = threading.Lock()
        self._tokenizing = threading.Lock()

    @functools.cached_property
    def key(self) -> tuple[str, int]:
        """What two encoders must share to give the same windows (computed when first asked: it hashes the
        tokenizer's whole JSON, a few milliseconds that a predictor used alone never needs)."""
        return _fingerprint(self.tokenizer), self.max_length

    def windows(self, texts: list[str]) -> list[list[Window]]:
        """Per text, its windows (one unless the text is longer than ``max_length`` tokens)."""
        with self._lock:
            found = {t: self._cache[t] for t in texts if t in self._cache}
            for t in found:
                self._cache.move_to_end(t)
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            with self._tokenizing:  # one call at a time: the fast tokenizer's settings are shared mutable state
                enc = self._tokenize(missing)
            new: dict[str, list[Window]] = {t: [] for t in missing}
            types = enc.get("token_type_ids")
            for row, owner in enumerate(enc["overflow_to_sample_mapping"]):
                ids = np.asarray(enc["input_ids"][row], dtype=np.int64)
                new[missing[owner]].append(
                    Window(
                        ids,
                        np.asarray(types[row], dtype=np.int64) if types is not None else np.zeros_like(ids),
                        [tuple(o) for o in enc["offset_mapping"][row]],
                        enc.word_ids(row),
                    )
                )
            found.update(new)
            with self._lock:
                self._cache.update(new)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return [found[t] for t in texts]

    def _tokenize(self, texts: list[str]):
        return self.tokenizer(
            texts,
            truncation=True,
            max_length=self.max_length,
            return_overflowing_tokens=True,
            stride=window_stride(self.max_length),
            return_offsets_mapping=True,
            return_token_type_ids=self.with_types,
        )

    def pad(self, rows: list[Window], tensors: str = "np") -> dict[str, Any]:
        """The batch of ``rows`` as the tokenizer pads it (its pad id and side): ``input_ids``, ``attention_mask``
        and ``token_type_ids`` where the tokenizer emits them; numpy arrays, or torch tensors for ``"pt"``."""
        width = max(len(r.input_ids) for r in rows)
        ids = np.full((len(rows), width), self.tokenizer.pad_token_id or 0, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        types = np.full((len(rows), width), self.tokenizer.pad_token_type_id, dtype=np.int64)
        left = self.tokenizer.padding_side == "left"
        for i, r in enumerate(rows):
            cols = slice(width - len(r.input_ids), width) if left else slice(0, len(r.input_ids))
            ids[i, cols], mask[i, cols], types[i, cols] = r.input_ids, 1, r.token_type_ids
        batch = {"input_ids": ids, "attention_mask": mask}
        if self.with_types:
            batch["token_type_ids"] = types
        return {k: torch.from_numpy(v) for k, v in batch.items()} if tensors == "pt" else batch


def _fingerprint(tokenizer) -> str:
    """What makes two tokenizers give the same inputs: the whole backend (vocabulary, normaliser, pre-tokenizer,
    specials) and the padding settings."""
    h = hashlib.sha1(tokenizer.backend_tokenizer.to_str().encode())
    h.update(repr((tokenizer.padding_side, tokenizer.pad_token_id, tokenizer.model_input_names)).encode())
    return h.hexdigest()


def share_encoders(predictors) -> list[TextEncoder]:
    """Give predictors whose tokenizers and ``max_length`` match one :class:`TextEncoder`; returns the encoders
    that remain, one per distinct key."""
    shared: dict[tuple, TextEncoder] = {}
    for predictor in predictors:
        predictor.encoder = shared.setdefault(predictor.encoder.key, predictor.encoder)
    return list(shared.values())


# A model call costs about what this many more padded tokens would: ORT int8 MiniLM, one 12-token text 2.0 ms against
# 0.058 ms a token inside a batch of 32 (bench/quantize_variants.py), so (2.0 - 12 x 0.058) / 0.058 ~ 22.
CALL_COST_TOKENS = 24


def length_buckets(lengths: list[int], rows: list[int], batch_size: int) -> list[tuple[int, int]]:
    """Cut texts sorted by token count into batches of at most ``batch_size`` texts that pad the least: each batch
    costs ``CALL_COST_TOKENS`` plus its rows times its longest length, and the cuts minimise the sum (dynamic
    programming over the sorted order). Short prompts beside longer ones no longer all pad to the longest."""
    n = len(lengths)
    rows_before = [0]
    for r in rows:
        rows_before.append(rows_before[-1] + r)
    best, cut = [0.0] + [float("inf")] * n, [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(max(0, j - batch_size), j):
            cost = best[i] + CALL_COST_TOKENS + lengths[j - 1] * (rows_before[j] - rows_before[i])
            if cost < best[j]:
                best[j], cut[j] = cost, i
    out, j = [], n
    while j > 0:
        out.append((cut[j], j))
        j = cut[j]
    return out[::-1]


def run_batches(
    forward,
    encoder: TextEncoder,
    texts: list[str],
    batch_size: int = 32,
    windowed: bool = False,
    tensors: str = "pt",
) -> tuple[list[np.ndarray], list[dict]]:
    """Tokenize (through ``encoder``), batch and unpad around any ``forward(encoding) -> logits array``.

    One function for every runtime, so the runtimes see identical batches and verify compares like with like.
    Texts are sorted by token count and cut into batches of at most ``batch_size`` where padding costs more than
    another call (:func:`length_buckets`), so a batch pads only to its own longest.
    With ``windowed`` (token classification) a text longer than ``max_length`` tokens is read in overlapping windows
    (:func:`window_stride`) stitched back into one sequence, so PII at the end of a long prompt is seen; its
    encoding's ``windows`` says how many, with ``word_ids`` and ``offsets`` per token. Sequence tasks read the first
    window: the text truncated.
    """
    per_text = encoder.windows(texts)
    order = sorted(range(len(texts)), key=lambda i: len(per_text[i][0].input_ids))
    logits: list[Any] = [None] * len(texts)
    encodings: list[Any] = [None] * len(texts)
    lengths = [len(per_text[i][0].input_ids) for i in order]
    rows_of = [len(per_text[i]) if windowed else 1 for i in order]
    for start, stop in length_buckets(lengths, rows_of, batch_size):
        idx = order[start:stop]
        owner = [i for i in idx for _ in (per_text[i] if windowed else per_text[i][:1])]
        rows = [w for i in idx for w in (per_text[i] if windowed else per_text[i][:1])]
        out = np.asarray(forward(encoder.pad(rows, tensors)))
        if out.ndim == 3:  # token classification: keep real tokens only, windows of one text stitched
            left = encoder.tokenizer.padding_side == "left"
            pieces: dict[int, list] = {}
            for row, (i, w) in enumerate(zip(owner, rows)):
                n = len(w.input_ids)
                real = out[row][out.shape[1] - n :] if left else out[row][:n]
                pieces.setdefault(i, []).append((real, w.word_ids, w.offsets, w.input_ids.tolist()))
            for i in idx:
                stitched, word_ids, offs = _stitch(pieces[i])
                logits[i] = stitched
                encodings[i] = {"word_ids": word_ids, "offsets": offs, "windows": len(pieces[i])}
        else:
            for row, i in enumerate(idx):
                logits[i] = out[row]
                encodings[i] = {}
    return logits, encodings
