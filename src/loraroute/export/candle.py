"""What upstream's candle loaders can read from a model directory, and candle as verify's runtime (e).

vLLM semantic-router serves these models with candle-binding (Rust, Hugging Face candle). It reads ``config.json``
(labels from ``id2label``; ``model_type == "modernbert"`` takes the ModernBERT path, anything else the BERT path),
``tokenizer.json``, ``model.safetensors`` (F32, as ``VarBuilder::from_mmaped_safetensors(.., DType::F32, ..)``) and
``lora_config.json``. It has no RoBERTa, DeBERTa, DistilBERT or ELECTRA path: those model types are read as BERT and
fail on their tensor names. The rules below are those loaders' rules, as read from upstream's and candle's source:

- BERT path: every tensor named ``bert.*`` or ``classifier.*`` (``BertModel::load(vb.pp("bert"))``, then
  ``bert.pooler.dense`` for sequence heads, then ``classifier``); config.json carries every field candle's
  ``bert::Config`` deserialises without a default, ``hidden_act`` one of gelu / gelu_approximate / relu.
- ModernBERT path: every tensor named ``model.*``, ``head.*`` or ``classifier.*`` (what transformers saves for
  ``ModernBert*Classification``, and what ``ModernBert::load`` and the head/classifier loaders ask for); config.json
  carries every field candle's ``modernbert::Config`` requires (transformers 5 writes ``norm_eps``,
  ``rope_parameters`` and ``layer_types`` instead of four of them, so such a config does not parse upstream).
- Both: ``classifier.weight`` is ``(len(id2label), hidden_size)`` with ``id2label`` of at least 2 labels, and every
  file candle reads is readable by other users (the router usually runs as another user than the trainer).

Runtime (e) runs candle's own BERT (``candle.models.bert`` from the ``candle-nn`` wheel) on the merged weights, plus
the classifier head upstream applies: pooler (dense + tanh on [CLS]) then the classifier for sequence tasks, the
classifier over every token's hidden state for token tasks. That binding has no ModernBERT, so (e) runs for
``model_type == "bert"`` (MiniLM included) only.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import numpy as np

from loraroute.artifacts import LORA_CONFIG, ModelDir, read_json
from loraroute.inference.predictor import BasePredictor
from loraroute.models.loading import load_tokenizer, refuse_pickle_only
from loraroute.tasks import task_of

INSTALL_HINT = "pip install 'loraroute[candle]' (the candle-nn==0.4.2 wheel, imported as `candle`)"
CANDLE_READS = ("config.json", "tokenizer.json", "model.safetensors", LORA_CONFIG)
# Encoders loraroute trains that candle-binding has no path for (they would be read as BERT).
NO_UPSTREAM_PATH = {
    "roberta": "RoBERTa",
    "xlm-roberta": "XLM-RoBERTa",
    "deberta": "DeBERTa",
    "deberta-v2": "DeBERTa-v2",
    "distilbert": "DistilBERT",
    "electra": "ELECTRA",
}
TENSOR_PREFIXES = {"bert": ("bert.", "classifier."), "modernbert": ("model.", "head.", "classifier.")}
REQUIRED_TENSORS = {
    "bert": ("bert.embeddings.word_embeddings.weight", "classifier.weight", "classifier.bias"),
    "modernbert": (
        "model.embeddings.tok_embeddings.weight",
        "model.final_norm.weight",
        "head.dense.weight",
        "head.norm.weight",
        "classifier.weight",
        "classifier.bias",
    ),
}
# Fields of candle-transformers' serde Config structs that have no default: a config.json without one fails to parse.
REQUIRED_CONFIG = {
    "bert": (
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "hidden_act",
        "hidden_dropout_prob",
        "max_position_embeddings",
        "type_vocab_size",
        "initializer_range",
        "layer_norm_eps",
        "pad_token_id",
    ),
    "modernbert": (
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "max_position_embeddings",
        "layer_norm_eps",
        "pad_token_id",
        "global_attn_every_n_layers",
        "global_rope_theta",
        "local_attention",
        "local_rope_theta",
    ),
}
BERT_ACTIVATIONS = ("gelu", "gelu_approximate", "relu")  # candle's bert::HiddenAct


# --- what upstream can read ----------------------------------------------------------------------------------
def _mode_reasons(model_dir: Path) -> list[str]:
    reasons = []
    mode = stat.S_IMODE(model_dir.stat().st_mode)
    if mode & 0o005 != 0o005:
        reasons.append(
            f"{model_dir.name}/: directory mode {mode:04o}, other users cannot list and enter it (chmod o+rx)"
        )
    for name in CANDLE_READS:
        path = model_dir / name
        if not path.exists():
            reasons.append(f"{name}: missing")
        elif not path.stat().st_mode & 0o004:
            reasons.append(
                f"{name}: mode {stat.S_IMODE(path.stat().st_mode):04o}, not readable by other users "
                f"(upstream's router usually runs as another user; chmod o+r)"
            )
    return reasons


def _tensor_reasons(weights: Path, path: str, config: dict, n_labels: int | None) -> list[str]:
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="np") as f:
            header = {k: (f.get_slice(k).get_dtype(), f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 -- safe_open has keys() but no __iter__
    except Exception as exc:  # a truncated or foreign file: safetensors raises its own error types
        return [f"model.safetensors: unreadable ({exc})"]
    reasons = []
    not_f32 = sorted(k for k, (dtype, _) in header.items() if dtype != "F32")
    if not_f32:
        reasons.append(
            f"model.safetensors: {len(not_f32)} tensor(s) are not F32 ({not_f32[0]} is "
            f"{header[not_f32[0]][0]}); the merged model upstream loads is F32"
        )
    prefixes = TENSOR_PREFIXES[path]
    foreign = sorted(k for k in header if not k.startswith(prefixes))
    if foreign:
        allowed = ", ".join(p + "*" for p in prefixes)
        reasons.append(
            f"model.safetensors: {len(foreign)} tensor name(s) outside {allowed} (e.g. {foreign[0]}); "
            f"upstream's {path} path looks tensors up by those names"
        )
    required = list(REQUIRED_TENSORS[path])
    if path == "bert" and any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or []):
        required.append("bert.pooler.dense.weight")  # upstream applies the pooler itself before the classifier
    missing = [k for k in required if k not in header]
    if missing:
        reasons.append(f"model.safetensors: missing {', '.join(missing)}")
    if "classifier.weight" in header and n_labels is not None:
        expected = [n_labels, config.get("hidden_size")]
        if list(header["classifier.weight"][1]) != expected:
            reasons.append(
                f"model.safetensors: classifier.weight is {list(header['classifier.weight'][1])}, "
                f"upstream builds it as [len(id2label), hidden_size] = {expected}"
            )
    return reasons


def _config_reasons(config: dict, path: str) -> tuple[list[str], int | None]:
    reasons = []
    id2label = config.get("id2label")
    n_labels = len(id2label) if isinstance(id2label, dict) else None
    if n_labels is None or n_labels < 2:
        reasons.append(f"config.json: id2label has {n_labels or 0} label(s); upstream's classifiers need >= 2")
    missing = [k for k in REQUIRED_CONFIG[path] if config.get(k) is None]
    if missing:
        reasons.append(f"config.json: missing {', '.join(missing)}, which candle's {path} Config requires")
    if path == "bert":
        if config.get("hidden_act") is not None and config["hidden_act"] not in BERT_ACTIVATIONS:
            reasons.append(
                f"config.json: hidden_act {config['hidden_act']!r} is not one candle's BERT runs "
                f"({', '.join(BERT_ACTIVATIONS)})"
            )
        if config.get("position_embedding_type", "absolute") != "absolute":
            reasons.append(
                f"config.json: position_embedding_type {config['position_embedding_type']!r}; candle's "
                f"BERT has absolute positions only"
            )
    return reasons, n_labels


def _encoder_prefix(model_dir: Path, model_type: str | None) -> str:
    """The encoder's tensor-name prefix as saved (xlm-roberta saves roberta.*, deberta-v2 deberta.*)."""
    from collections import Counter

    from safetensors import safe_open

    try:
        with safe_open(str(ModelDir(model_dir).weights), framework="np") as f:
            firsts = Counter(k.split(".")[0] for k in f.keys())  # noqa: SIM118 -- safe_open has keys() but no __iter__
        return firsts.most_common(1)[0][0]
    except Exception:  # no or an unreadable file: name the model type instead
        return str(model_type)


def upstream_report(model_dir: str | Path) -> dict[str, Any]:
    """``{"loadable", "path", "model_type", "reasons"}``: whether upstream's candle loaders can read ``model_dir``.

    ``path`` is the candle-binding path that reads this model type ("bert" or "modernbert"), or None where there is
    none: then the first reason says so, and the directory may still be a valid loraroute model."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return {"loadable": False, "path": None, "model_type": None, "reasons": [f"{model_dir}: no such directory"]}
    reasons = _mode_reasons(model_dir)
    files = ModelDir(model_dir)
    try:
        config = read_json(files.config)
    except (FileNotFoundError, ValueError) as exc:
        config = None
        if not any(r.startswith("config.json") for r in reasons):
            reasons.append(str(exc))
    model_type = config.get("model_type") if isinstance(config, dict) else None
    path = model_type if model_type in TENSOR_PREFIXES else None
    if isinstance(config, dict) and path is None:
        family = NO_UPSTREAM_PATH.get(model_type, repr(model_type))
        reasons.insert(
            0,
            f"candle-binding has no {family} path; model_type {model_type!r} would be read as BERT "
            f"and fail on tensor names {_encoder_prefix(model_dir, model_type)}.*",
        )
    elif path is not None:
        config_reasons, n_labels = _config_reasons(config, path)
        reasons += config_reasons
        if files.weights.exists():
            reasons += _tensor_reasons(files.weights, path, config, n_labels)
    return {"loadable": not reasons, "path": path, "model_type": model_type, "reasons": reasons}


def upstream_loadability(model_dir: str | Path) -> tuple[bool, list[str]]:
    """(whether upstream's candle loaders can read ``model_dir``, the reasons they cannot)."""
    report = upstream_report(model_dir)
    return report["loadable"], report["reasons"]


# --- runtime (e) ---------------------------------------------------------------------------------------------
def candle_skip_reason(model_dir: str | Path) -> str | None:
    """Why runtime (e) cannot run on ``model_dir`` (None when it can)."""
    try:
        import candle  # noqa: F401
    except ImportError:
        return f"candle is not installed: {INSTALL_HINT}"
    try:
        model_type = read_json(ModelDir(model_dir).config).get("model_type")
    except (FileNotFoundError, ValueError) as exc:
        return str(exc)
    if model_type == "bert":
        return None
    if model_type == "modernbert":
        return (
            "candle-nn's Python binding has no ModernBERT; upstream's ModernBERT path is checked by its file rules only"
        )
    return f"model_type {model_type!r} has no candle-binding path, so there is no upstream runtime to compare"


class CandlePredictor(BasePredictor):
    """The merged BERT under candle, with Predictor's interface (``logits``, ``predict``)."""

    def __init__(self, bert, classifier, tokenizer, meta: dict[str, Any], task, batch_size: int = 32):
        super().__init__(tokenizer, meta, task, batch_size)
        self.bert, self.classifier = bert, classifier

    @classmethod
    def load(cls, path: str | Path) -> CandlePredictor:
        import candle
        from candle.models.bert import BertModel, Config
        from candle.nn import Linear

        path = Path(path)
        refuse_pickle_only(path)
        files = ModelDir(path)
        meta = files.meta()
        task = task_of(path, meta)
        config = read_json(files.config)
        if config.get("model_type") != "bert":
            raise ValueError(f"{path}: model_type {config.get('model_type')!r}; candle runs BERT only")
        # candle.models.bert maps every activation but "gelu" (erf, as candle-binding's Gelu) to relu.
        if config.get("hidden_act", "gelu") not in ("gelu", "relu"):
            raise ValueError(f"{path}: hidden_act {config['hidden_act']!r} is not one candle-nn's Python BERT runs")
        cfg = Config(**{k: config[k] for k in Config.__dataclass_fields__ if config.get(k) is not None})
        # Cast as upstream's VarBuilder(DType::F32) does, so (e) sees what upstream computes with.
        tensors = {
            k: v if str(v.dtype) == "F32" else v.to_dtype(candle.f32)
            for k, v in candle.utils.load_safetensors(str(files.weights)).items()
        }
        bert = BertModel(cfg, add_pooling_layer=task.kind != "token")  # token heads read hidden states, not the pooler
        state = {k[len("bert.") :]: v for k, v in tensors.items() if k.startswith("bert.")}
        # A buffer transformers does not save; candle's forward builds its own positions and never reads it.
        state.setdefault("embeddings.position_ids", bert.embeddings.position_ids)
        bert.load_state_dict(state, strict=True)  # raises RuntimeError naming missing and unexpected tensors
        if "classifier.weight" not in tensors:
            raise ValueError(f"{path}: model.safetensors has no classifier.weight")
        classifier = Linear(cfg.hidden_size, tensors["classifier.weight"].shape[0])
        classifier.weight, classifier.bias = tensors["classifier.weight"], tensors.get("classifier.bias")
        return cls(bert, classifier, load_tokenizer(str(path)), meta, task)

    def _forward(self, enc) -> np.ndarray:
        import candle

        ids = np.asarray(enc["input_ids"])
        types = np.asarray(enc["token_type_ids"]) if "token_type_ids" in enc else np.zeros_like(ids)
        mask = np.asarray(enc["attention_mask"]).astype(bool)
        token = self.task.kind == "token"
        out = np.zeros(
            (*ids.shape, self.classifier.out_features) if token else (len(ids), self.classifier.out_features),
            dtype=np.float32,
        )
        # One text (or window) at a time and unpadded, as upstream's classify_text runs: with no padding there is
        # no attention mask to get wrong. Padded positions stay 0 here and run_batches drops them.
        for row in range(len(ids)):
            real = mask[row]
            hidden, pooled = self.bert.forward(
                candle.Tensor([ids[row][real].tolist()]), candle.Tensor([types[row][real].tolist()])
            )
            logits = self.classifier.forward(hidden if token else pooled)
            if token:
                out[row, real] = np.asarray(logits.values(), dtype=np.float32)[0]
            else:
                out[row] = np.asarray(logits.values(), dtype=np.float32)[0]
        return out
