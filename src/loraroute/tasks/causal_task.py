"""Shared machinery for generative tasks: a causal LM answers in text, trained on the answer tokens only.

A generative task says how a record becomes a chat prompt and a target (:meth:`CausalLMTask.messages`); this
module turns that into completion-only training features and batched greedy generation, the hooks
:class:`~loraroute.tasks.base.GenerativeTask` asks for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from loraroute.config import TrainConfig, option
from loraroute.data.sources import DataError
from loraroute.tasks.base import GenerativeTask
from loraroute.tasks.causal_lm import CompletionCollator, format_chat, generate_batched, tokenize_completion

log = logging.getLogger("loraroute")


@dataclass
class CausalConfig(TrainConfig):
    """Defaults for LoRA on a causal LM: a small batch and a learning rate suited to a pretrained LM head."""

    model: str = option(
        "smollm2",
        "Base causal LM: an alias (smollm2 = embedded SmolLM2-135M-Instruct, qwen3-0.6b), a hub id or a local "
        "directory of any Llama/Qwen2/Qwen3/Mistral-family model. The hub default upstream uses is Qwen/Qwen3-0.6B.",
    )
    max_length: int = option(
        384, "Maximum tokens per prompt + answer; prompts lose tokens from the left, answers never."
    )
    epochs: float = option(1.0, "Training epochs.")
    batch_size: int = option(8, "Examples per device per step.")
    learning_rate: float = option(5e-4, "Peak learning rate of the LoRA matrices.")
    early_stopping_patience: int = option(0, "Stop after this many evaluations without improvement (0 disables).")
    eval_size: int = option(100, "Held-out questions scored by generation (small keeps a CPU run to minutes).")
    max_new_tokens: int | None = option(None, "Generation budget per answer (default: the task's own).")
    generation_batch_size: int = option(16, "Prompts per generation batch (left-padded).")

    def validate(self) -> None:
        super().validate()
        problems = []
        if self.eval_size <= 0:
            problems.append("eval_size must be positive")
        if self.max_new_tokens is not None and self.max_new_tokens <= 0:
            problems.append("max_new_tokens must be positive")
        if self.generation_batch_size <= 0:
            problems.append("generation_batch_size must be positive")
        if problems:
            raise ValueError("Invalid configuration: " + "; ".join(problems))


class CausalLMTask(GenerativeTask):
    config_class = CausalConfig
    default_max_new_tokens = 16

    # --- what a task says -----------------------------------------------------------------------------------
    def messages(self, record: dict, cfg: TrainConfig) -> tuple[str | None, str, str | None]:
        """``(system, user, target)`` for a record; ``target`` is None when the record has no answer."""
        raise NotImplementedError

    def max_new_tokens(self, cfg: CausalConfig) -> int:
        return cfg.max_new_tokens or self.default_max_new_tokens

    # --- training ---------------------------------------------------------------------------------------------
    def prompt(self, tokenizer, record: dict, cfg: TrainConfig) -> str:
        system, user, _ = self.messages(record, cfg)
        return format_chat(tokenizer, system, user, None, enable_thinking=False)[0]

    def encode(self, records, tokenizer, label2id, cfg):
        import datasets

        features: dict[str, list] = {"input_ids": [], "attention_mask": [], "labels": [], "length": []}
        dropped = 0
        for record in records:
            system, user, target = self.messages(record, cfg)
            if target is None:
                raise DataError(f"{record.get('_where', record.get('source', 'record'))}: no answer to train on")
            prompt, full = format_chat(tokenizer, system, user, target, enable_thinking=False)
            try:
                feat = tokenize_completion(tokenizer, prompt, full[len(prompt) :], cfg.max_length)
            except ValueError:
                dropped += 1  # the answer alone exceeds max_length; cutting it would teach a truncated answer
                continue
            for key in ("input_ids", "attention_mask", "labels"):
                features[key].append(feat[key])
            features["length"].append(len(feat["input_ids"]))
        if dropped:
            log.warning(
                "%d of %d examples dropped: answer longer than max_length=%d", dropped, len(records), cfg.max_length
            )
        if not features["input_ids"]:
            raise DataError(f"no example fits max_length={cfg.max_length}")
        return datasets.Dataset.from_dict(features)

    def collator(self, tokenizer):
        return CompletionCollator(tokenizer, pad_to_multiple_of=8)

    # --- answers ----------------------------------------------------------------------------------------------
    def generate(self, model, tokenizer, records: list[dict], cfg: CausalConfig) -> list[str]:
        prompts = [self.prompt(tokenizer, r, cfg) for r in records]
        return generate_batched(
            model, tokenizer, prompts, self.max_new_tokens(cfg), batch_size=cfg.generation_batch_size
        )
