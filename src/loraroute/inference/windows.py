"""Tokenize, batch, run and unpad: the one path from texts to per-text logits for every runtime (PyTorch, ONNX
Runtime, candle), so they see identical batches and verify compares like with like.

Token tasks read a text longer than ``max_length`` in overlapping windows stitched back into one token sequence.
"""

from __future__ import annotations

from itertools import takewhile
from typing import Any

import numpy as np
import torch


def batched_logits(
    model, tokenizer, texts: list[str], max_length: int, batch_size: int = 32, return_offsets: bool = False
) -> tuple[list[np.ndarray], list[dict]]:
    """Logits per text (unpadded), batching texts of similar length together, in the input order."""
    model.eval()
    return run_batches(torch_forward(model), tokenizer, texts, max_length, batch_size, return_offsets, "pt")


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


def run_batches(
    forward,
    tokenizer,
    texts: list[str],
    max_length: int,
    batch_size: int = 32,
    return_offsets: bool = False,
    tensors: str = "pt",
) -> tuple[list[np.ndarray], list[dict]]:
    """Tokenize, batch and unpad around any ``forward(encoding) -> logits array`` (PyTorch, ONNX Runtime).

    One function for every runtime, so the runtimes see identical batches and verify compares like with like.
    With ``return_offsets`` (token classification) a text longer than ``max_length`` tokens is read in overlapping
    windows (:func:`window_stride`) stitched back into one sequence, so PII at the end of a long prompt is seen;
    its encoding's ``windows`` says how many. Sequence tasks truncate.
    """
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    logits: list[Any] = [None] * len(texts)
    encodings: list[Any] = [None] * len(texts)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        windowed = {"return_overflowing_tokens": True, "stride": window_stride(max_length)} if return_offsets else {}
        enc = tokenizer(
            [texts[i] for i in idx],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors=tensors,
            return_offsets_mapping=return_offsets,
            **windowed,
        )
        offsets = enc.pop("offset_mapping", None)
        owner = enc.pop("overflow_to_sample_mapping", None)
        out = np.asarray(forward(enc))
        mask = np.asarray(enc["attention_mask"]).astype(bool)
        if out.ndim == 3:  # token classification: keep real tokens only, windows of one text stitched
            owner = list(range(len(idx))) if owner is None else [int(o) for o in owner]
            pieces: dict[int, list] = {}
            for row, text_row in enumerate(owner):
                pieces.setdefault(text_row, []).append(
                    (
                        out[row][mask[row]],
                        [w for w, m in zip(enc.word_ids(row), mask[row]) if m],
                        np.asarray(offsets[row])[mask[row]].tolist()
                        if offsets is not None
                        else [None] * int(mask[row].sum()),
                        np.asarray(enc["input_ids"][row])[mask[row]].tolist(),
                    )
                )
            for text_row, i in enumerate(idx):
                rows, word_ids, offs = _stitch(pieces[text_row])
                logits[i] = rows
                encodings[i] = {
                    "word_ids": word_ids,
                    "offsets": offs if offsets is not None else None,
                    "windows": len(pieces[text_row]),
                }
        else:
            for row, i in enumerate(idx):
                logits[i] = out[row]
                encodings[i] = {}
    return logits, encodings
