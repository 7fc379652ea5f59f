"""Model directories on the Hugging Face Hub: push one, pull one into a models directory.

huggingface_hub does the talking, with its own token lookup (``HF_TOKEN``, else the token ``hf auth login`` saved)
and cache (``HF_HOME``, ``HF_HUB_OFFLINE``). Using a repo id as a model directory is ``loraroute.models.hub``'s
(inference needs it, and sits below the tasks and model cards this module reads).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path

from loraroute.artifacts import LORA_CONFIG, ModelDir, artifact_name, read_json
from loraroute.files import atomic_directory
from loraroute.model_card import CARD
from loraroute.models.hub import download, is_repo_id

log = logging.getLogger("loraroute")

# Never pushed: hidden files (an interrupted ONNX export's onnx/.tmp-*.onnx, .cache/), verify_report.json (it
# records this machine's path and runtimes; `loraroute verify REPO_ID` checks the pushed copy) and pickle weights.
PUSH_IGNORE = [".*", "*/.*", "verify_report.json", "*.bin", "*.pt", "*.pth", "*.h5", "*.msgpack", "*.ckpt*"]


def check_models_dir(models_dir: str | Path) -> None:
    """A models directory must be local; a hub id there gets the `loraroute pull` hint."""
    ref = str(models_dir)
    if not Path(ref).expanduser().is_dir() and is_repo_id(ref):
        raise FileNotFoundError(
            f"--models-dir {ref}: no such directory. serve reads a models directory; to serve a "
            f"model from the Hub, first run: loraroute pull {ref} --models-dir models"
        )


def model_name(repo_id: str, snapshot: Path) -> str:
    """The lora_* directory name a pulled model gets: the repo's name if it is one, else the name its model card
    records, else the one training would give it (from lora_config.json and training_config.yaml)."""
    from loraroute.tasks import task_for_artifact

    def known(name: str | None) -> bool:
        try:
            return bool(name) and "/" not in name and not name.startswith(".") and bool(task_for_artifact(name))
        except ValueError:
            return False

    candidates = [repo_id.split("/")[1]]
    if (snapshot / CARD).exists():
        from huggingface_hub import ModelCard

        with contextlib.suppress(ValueError):  # a card whose YAML header does not parse: the other rules decide
            candidates.append(ModelCard.load(snapshot / CARD).data.model_name)
    for name in candidates:
        if known(name):
            return name
    from loraroute.tasks import get_task

    files = ModelDir(snapshot)
    meta = read_json(files.lora_config) if files.lora_config.exists() else {}
    if "task" in meta and files.training_config.exists():
        task = get_task(meta["task"])
        cfg = task.config_class.from_yaml(files.training_config)
        return artifact_name(task.artifact_prefix, cfg)
    raise ValueError(f"{repo_id}: cannot tell which lora_* name the model should have; give one with --name")


def pull(repo_id: str, models_dir: str | Path = "models", name: str | None = None, revision: str | None = None) -> Path:
    """Download a hub model into ``models_dir/<its lora_* name>`` (ONNX files included), where ``serve`` and
    vLLM semantic-router's discovery find it. Written atomically and readable by all, like a trained model."""
    if not is_repo_id(repo_id):
        raise ValueError(f"{repo_id}: not a hub repo id (owner/name)")
    snapshot = download(repo_id, onnx=True, revision=revision)
    name = name or model_name(repo_id, snapshot)
    if "/" in name or name.startswith("."):
        raise ValueError(f"--name {name}: must be a plain directory name (hidden names are never served)")
    final = Path(models_dir) / name
    with atomic_directory(final) as tmp:
        # The cache holds symbolic links into its blob store: copy the files they point to.
        shutil.copytree(snapshot, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".*"))
    return final


def _refresh_card(model_dir: Path, repo_id: str) -> None:
    """Rewrite README.md with ``repo_id`` in its usage lines if it is loraroute's own, unedited card (or an older
    loraroute's card without Hub metadata); a card someone edited is left as it is."""
    from huggingface_hub import ModelCard

    from loraroute.model_card import model_card
    from loraroute.tasks import get_task

    card_path = model_dir / CARD
    try:
        meta = read_json(ModelDir(model_dir).lora_config)
        task = get_task(meta["task"])
        cfg = task.config_class.from_yaml(ModelDir(model_dir).training_config)
        report = read_json(model_dir / "eval_report.json")
    except (FileNotFoundError, ValueError, KeyError) as exc:
        log.info("%s: kept as it is (cannot rebuild the card: %s)", card_path, exc)
        return
    current = card_path.read_text(encoding="utf-8") if card_path.exists() else ""
    wanted = str(model_card(task, cfg, report, model_dir.name, repo_id))
    if current.strip() == wanted.strip():
        return
    untouched = str(model_card(task, cfg, report, model_dir.name))
    try:
        has_metadata = bool(ModelCard(current).data.to_dict()) if current else False
    except ValueError:  # a YAML header the Hub would refuse too
        has_metadata = False
    if has_metadata and current.strip() != untouched.strip():
        log.info("%s: edited since training (or made by another loraroute version), pushed as it is", card_path)
        return
    Path(card_path).write_text(wanted, encoding="utf-8")
    log.info("%s: %s with the repo id %s", card_path, "rewritten" if current else "written", repo_id)


def push(
    model_dir: str | Path,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | None = None,
) -> str:
    """Upload a model directory to the Hub repo ``repo_id`` (created if missing; ``private`` only applies then);
    ``revision`` names a branch, created if missing. Leaves out :data:`PUSH_IGNORE`. Returns the repo URL."""
    from huggingface_hub import HfApi

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: no such model directory")
    if not ModelDir(model_dir).lora_config.exists():
        raise ValueError(f"{model_dir}: no {LORA_CONFIG}; not a model directory written by loraroute")
    if not is_repo_id(repo_id):
        raise ValueError(f"{repo_id}: not a hub repo id (owner/name)")
    _refresh_card(model_dir, repo_id)
    api = HfApi(token=token)  # None: HF_TOKEN or the saved login, as huggingface_hub decides
    url = api.create_repo(repo_id, private=private or None, repo_type="model", exist_ok=True)
    if revision:
        api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
    api.upload_folder(
        repo_id=repo_id,
        folder_path=str(model_dir),
        repo_type="model",
        revision=revision,
        commit_message=commit_message or f"Upload {model_dir.name} with loraroute",
        ignore_patterns=PUSH_IGNORE,
    )
    return str(url)
