"""A hub repo id wherever a model directory goes: ``resolve`` a local path or an ``owner/name`` into a directory.

huggingface_hub does the talking, with its own token lookup (``HF_TOKEN``, else the token ``hf auth login`` saved)
and cache (``HF_HOME``, ``HF_HUB_OFFLINE``). Pushing and pulling into a models directory is ``loraroute.hub``'s.
"""

from __future__ import annotations

import re
from pathlib import Path

# owner/name as the Hub spells repo ids (a local path has more parts, or starts with . / ~)
REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
# What loraroute reads from a model repository, at the top level and in adapter/: safetensors weights, config,
# tokenizer and label maps (json, vocab.txt, merges.txt, *.model, chat templates), settings, the card and reports.
# Pickle weights are never fetched (they would not be loaded either), nor plots and logs.
MODEL_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "*.yaml", "*.md"]
ONNX_FILES = ["onnx/*.onnx"]
# A model directory written by loraroute has one of these: artifacts.LORA_CONFIG, or a merged model's config. Spelled
# out here because models/ sits below artifacts; tests/models/test_hub.py keeps the two names equal.
MODEL_MARKERS = ("lora_config.json", "config.json")


def is_repo_id(ref: str) -> bool:
    return bool(REPO_ID.fullmatch(ref)) and ".." not in ref


def resolve(path_or_id: str | Path, onnx: bool = False, revision: str | None = None, what: str = "model") -> Path:
    """A model directory from a local path or a hub repo id.

    An existing directory is used as it is. Otherwise an ``owner/name`` string is fetched with ``snapshot_download``
    (only :data:`MODEL_FILES`, and :data:`ONNX_FILES` with ``onnx``) into the Hugging Face cache, whose path is
    returned; a ``Path`` is always local. ``what`` names the argument in errors.
    """
    ref = str(path_or_id)
    path = Path(ref).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise FileNotFoundError(f"{what} {ref}: not a directory")
    if isinstance(path_or_id, Path) or not is_repo_id(ref):
        raise FileNotFoundError(f"{what} {ref}: no such model directory (and not a hub repo id, owner/name)")
    return download(ref, onnx=onnx, revision=revision, what=what)


def download(repo_id: str, onnx: bool = False, revision: str | None = None, what: str = "model") -> Path:
    """``snapshot_download`` of a model repository's loraroute files into the Hugging Face cache."""
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    patterns = MODEL_FILES + (ONNX_FILES if onnx else [])
    try:
        snapshot = Path(huggingface_hub.snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
    except RepositoryNotFoundError:
        raise FileNotFoundError(
            f"{what} {repo_id}: no such local directory, and no such repository on the Hugging "
            "Face Hub (or it is private: set HF_TOKEN)"
        ) from None
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise RuntimeError(
            f"{what} {repo_id}: no such local directory, and fetching it from the Hugging Face Hub failed: {exc}"
        ) from None
    if not any((snapshot / marker).exists() for marker in MODEL_MARKERS):
        raise ValueError(
            f"{what} {repo_id}: the repository has no {' or '.join(MODEL_MARKERS)}; not a model "
            "directory written by loraroute"
        )
    return snapshot
