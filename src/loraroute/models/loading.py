"""Loading base models and tokenizers (hub, local, embedded), attaching LoRA, and choosing precision."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    PreTrainedModel,
    set_seed,
)

from loraroute.models.registry import head_modules, lora_targets, resolve_model

AUTO_CLASSES = {
    "sequence": AutoModelForSequenceClassification,
    "token": AutoModelForTokenClassification,
    "causal": AutoModelForCausalLM,
}
PICKLE_WEIGHTS = ("pytorch_model.bin", "tf_model.h5", "model.ckpt.index", "flax_model.msgpack")


def _hub_hint(ref: str, exc: Exception) -> RuntimeError:
    return RuntimeError(
        f"Could not load {ref!r}: {exc}\nIf this is a hub id, the hub may be unreachable from here: download the "
        "model elsewhere and pass its local directory with --model PATH (the default, 'minilm', works offline)."
    )


def refuse_pickle_only(path: str | Path) -> None:
    """Weights load only from safetensors; a directory with pickle weights alone is refused, not unpickled."""
    path = Path(path)
    if not path.is_dir():
        return
    if any(path.glob("*.safetensors")):
        return
    pickles = [p.name for p in path.iterdir() if p.name in PICKLE_WEIGHTS or p.suffix in (".bin", ".pt", ".pth")]
    if pickles:
        raise ValueError(
            f"{path} holds only pickle weights ({', '.join(sorted(pickles))}); loraroute loads safetensors only, "
            "because unpickling can run arbitrary code. Convert them once in a trusted environment with "
            "model.save_pretrained(dir, safe_serialization=True)."
        )


def load_tokenizer(ref: str, **kwargs):
    path = resolve_model(ref)
    adapter_only = Path(path).is_dir() and not (Path(path) / "config.json").exists()  # causal LoRA model dirs
    config = None if adapter_only else _load_config(path, ref)
    if getattr(config, "model_type", None) in ("roberta", "xlm-roberta", "modernbert"):
        # Byte-level BPE needs a prefix space so words inside and at the start of a text tokenize alike.
        kwargs.setdefault("add_prefix_space", True)
    try:
        tok = AutoTokenizer.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise _hub_hint(ref, exc) from None
    if not tok.is_fast:
        raise ValueError(f"{ref}: loraroute needs a fast tokenizer (character offsets); none was found")
    return tok


def _load_config(path: str, ref: str):
    try:
        return AutoConfig.from_pretrained(path)
    except OSError as exc:
        raise _hub_hint(ref, exc) from None


def load_base_model(
    ref: str,
    kind: str,
    labels: list[str] | None = None,
    model_dropout: float | None = None,
    dtype: torch.dtype | None = None,
) -> PreTrainedModel:
    """Load ``ref`` with a fresh task head for ``labels`` (sequence/token kinds) or as a causal LM."""
    path = resolve_model(ref)
    refuse_pickle_only(path)
    config = _load_config(path, ref)
    if labels is not None:
        config.num_labels = len(labels)
        config.id2label = dict(enumerate(labels))
        config.label2id = {label: i for i, label in enumerate(labels)}
    if model_dropout is not None:
        for attr in (
            "hidden_dropout_prob",
            "attention_probs_dropout_prob",
            "classifier_dropout",
            "dropout",
            "attention_dropout",
            "seq_classif_dropout",
            "mlp_dropout",
            "embedding_dropout",
            "classifier_dropout_prob",
        ):
            if getattr(config, attr, None) is not None:
                setattr(config, attr, model_dropout)
    kwargs = {"config": config, "use_safetensors": True}
    if dtype is not None:
        kwargs["dtype"] = dtype
    try:
        return AUTO_CLASSES[kind].from_pretrained(path, **kwargs)
    except OSError as exc:
        raise _hub_hint(ref, exc) from None


def attach_lora(
    model: PreTrainedModel,
    kind: str,
    rank: int,
    alpha: int,
    dropout: float,
    target_modules: list[str] | None,
    seed: int,
):
    """Wrap ``model`` with LoRA. Seeds first: LoRA A matrices and any new head are drawn from the RNG."""
    from peft import LoraConfig, TaskType, get_peft_model

    set_seed(seed)
    task_type = {"sequence": TaskType.SEQ_CLS, "token": TaskType.TOKEN_CLS, "causal": TaskType.CAUSAL_LM}[kind]
    targets = lora_targets(model, target_modules)
    heads = head_modules(model) if kind != "causal" else []
    config = LoraConfig(
        task_type=task_type,
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets,
        modules_to_save=heads or None,
    )
    return get_peft_model(model, config)


def resolve_precision(precision: str) -> str:
    """'auto' -> 'bf16' where the hardware runs it natively (CUDA with bf16, or a CPU with AVX512-BF16/AMX)."""
    if precision != "auto":
        return precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if os.environ.get("LORAROUTE_FORCE_FP32"):
        return "fp32"
    cpu_bf16 = (
        getattr(torch.backends.mkldnn, "is_available", lambda: False)() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )
    return "bf16" if cpu_bf16 else "fp32"


def trainable_parameters(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
