"""Model directories: naming, atomic writes, merged model + adapter/, label maps, lora_config.json.

Layout (what vLLM semantic-router's loaders read sits at the top level)::

    lora_{task}_{arch}_r{rank}_model/
      config.json (id2label/label2id)  model.safetensors  tokenizer.json (+ tokenizer files)
      label_mapping.json (+ the task's second name)  lora_config.json  training_config.yaml
      eval_report.json  eval_report.md  *.png  README.md (model card: loraroute.model_card)
      adapter/  adapter_config.json  adapter_model.safetensors (LoRA + trained head)

Checkpoints and run logs go beside the models directory, never inside it (see :func:`checkpoint_root`); failed runs'
leftovers (``.tmp-*``, ``.old-*``, orphaned checkpoints) are found by :func:`leftovers` and removed by :func:`clean`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loraroute._version import __version__
from loraroute.config import TrainConfig
from loraroute.models.registry import arch_name, candle_config_fields, head_modules

LORA_CONFIG = "lora_config.json"
TRAINING_CONFIG = "training_config.yaml"
ADAPTER_DIR = "adapter"
THRESHOLDS = "thresholds.json"
CHECKPOINTS = ".loraroute-checkpoints"
RUN_PID = "run.pid"  # in a checkpoint directory while its run is alive
LEGACY_CHECKPOINTS = ".checkpoints"  # where checkpoints were kept before: inside the models directory
# A leftover without a recorded pid (made by an older loraroute) counts as orphaned once nothing in it changed for
# this long: a live run writes its checkpoints or model files far more often.
IDLE_SECONDS = 3600


def artifact_name(prefix: str, cfg: TrainConfig) -> str:
    return cfg.name or f"{prefix}_{arch_name(cfg.model)}_r{cfg.rank}_model"


def write_json(path: Path, data: Any) -> None:
    Path(path).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: missing") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None


def read_meta(path: Path) -> dict[str, Any]:
    """lora_config.json plus the label list from config.json's id2label.

    "task" is there only when lora_config.json names it; otherwise the directory's name decides, which only the
    tasks know (``loraroute.tasks.task_of``): this module sits below them.
    """
    path = Path(path)
    meta = read_json(path / LORA_CONFIG) if (path / LORA_CONFIG).exists() else {}
    config = read_json(path / "config.json") if (path / "config.json").exists() else {}
    id2label = config.get("id2label") or {}
    if not id2label and (path / "label_mapping.json").exists():  # adapter-only dirs have no config.json
        id2label = read_json(path / "label_mapping.json").get("id2label") or {}
    meta["labels"] = [id2label[k] for k in sorted(id2label, key=int)]
    meta.setdefault("max_length", 512)
    if (path / THRESHOLDS).exists():  # calibrated decision thresholds (jailbreak), read by predict and serve
        meta["thresholds"] = read_json(path / THRESHOLDS)
    return meta


def make_world_readable(path: Path) -> None:
    """Files 0644 and directories 0755 at and under ``path``, whatever the umask.

    safetensors' ``save_file`` and mkdtemp/mkstemp create owner-only files (0600/0700), and the router that loads a
    model often runs as another user. Symbolic links are left alone (chmod would change their target).
    """
    path = Path(path)
    if path.is_symlink():
        return
    if not path.is_dir():
        os.chmod(path, 0o644)
        return
    os.chmod(path, 0o755)
    for root, dirs, files in os.walk(path):
        for name, mode in [(d, 0o755) for d in dirs] + [(f, 0o644) for f in files]:
            if not os.path.islink(os.path.join(root, name)):
                os.chmod(os.path.join(root, name), mode)


@contextlib.contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``final``; on success it replaces ``final`` in one rename, readable by all.

    An interrupted run leaves at most a hidden ``.tmp-<name>-<pid>-*`` directory and never a half-written model; an
    earlier model of the same name stays intact until the new one is complete. The pid in the name lets a later run
    tell a killed run's leftovers from a live run's work (:func:`leftovers`).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-{os.getpid()}-", dir=final.parent))
    try:
        yield tmp
        make_world_readable(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if final.exists():
        old = final.parent / f".old-{final.name}-{os.getpid()}"
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --- checkpoints and leftovers --------------------------------------------------------------------------------
def checkpoint_root(models_dir: str | Path) -> Path:
    """Checkpoints of models written to ``models_dir``: ``<its parent>/.loraroute-checkpoints/<its name>/``.

    Not inside ``models_dir``: upstream's discovery walks the models tree recursively, hidden directories included,
    and takes the first ``lora_*`` directory in lexical order, which could be a half-trained checkpoint.
    """
    models = Path(os.path.abspath(models_dir))  # abspath, not resolve: the sibling of the path the user gave
    return models.parent / CHECKPOINTS / models.name


def checkpoint_dir(cfg: TrainConfig, name: str) -> Path:
    # "ckpt-": even a walk from the models directory's parent never meets a lora_* name here.
    return checkpoint_root(cfg.output_dir) / f"ckpt-{name}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _tree_bytes(path: Path) -> int:
    return sum(os.lstat(os.path.join(root, f)).st_size for root, _, files in os.walk(path) for f in files)


def _idle_seconds(path: Path) -> float:
    newest = max(
        [os.lstat(os.path.join(root, n)).st_mtime for root, dirs, files in os.walk(path) for n in dirs + files]
        + [os.lstat(path).st_mtime]
    )
    return time.time() - newest


def _orphaned(path: Path, pid: int | None) -> str | None:
    """Why ``path`` belongs to no live run, or None while it may (a live pid, or no pid and recent writes)."""
    if pid is not None:
        return None if pid_alive(pid) else f"run {pid} is gone"
    idle = _idle_seconds(path)
    return f"no pid recorded, unchanged for {idle / 3600:.1f} h" if idle > IDLE_SECONDS else None


# .tmp-<name>-<pid>-<mkdtemp suffix, which never holds a "-">; .old-<name>-<pid>; .tmp-<name>-<suffix> (no pid: made
# by an older loraroute)
_LEFTOVER = re.compile(
    r"\.tmp-(?P<name>.+)-(?P<pid>\d+)-[a-z0-9_]+|\.old-(?P<oname>.+)-(?P<opid>\d+)"
    r"|\.tmp-(?P<lname>.+)-[a-z0-9_]+"
)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def leftovers(models_dir: str | Path, name: str | None = None) -> list[tuple[Path, str]]:
    """(path, why) of what no live run owns: ``.tmp-*``/``.old-*`` directories in ``models_dir`` (only model
    ``name``'s when given) and, when ``name`` is None, checkpoint directories of its models (also the
    ``.checkpoints/`` an older loraroute kept inside it)."""
    models = Path(models_dir)
    found: list[tuple[Path, str]] = []
    for path in sorted([*models.glob(".tmp-*"), *models.glob(".old-*")]):
        m = _LEFTOVER.fullmatch(path.name)
        if not m or not path.is_dir() or name not in (None, m["name"] or m["oname"] or m["lname"]):
            continue
        pid = m["pid"] or m["opid"]
        why = _orphaned(path, int(pid) if pid else None)
        if why:
            found.append((path, why))
    if name is not None:
        return found
    for path in sorted(checkpoint_root(models).glob("ckpt-*")):
        # train_task writes run.pid when it starts and removes it when it ends, well or badly
        why = _orphaned(path, _read_pid(path / RUN_PID)) if (path / RUN_PID).exists() else "its run ended"
        if why:
            done = (models / path.name[len("ckpt-") :]).is_dir()
            found.append((path, f"{why}; {'model finished' if done else 'no model'}"))
    for path in sorted((models / LEGACY_CHECKPOINTS).glob("*")):
        why = _orphaned(path, None)
        if why:
            found.append((path, f"{why}; inside the models directory, where discovery may take it for a model"))
    return found


def remove_tree(path: Path) -> None:
    """Remove ``path`` and the checkpoint folders that it leaves empty (never a models directory)."""
    shutil.rmtree(path, ignore_errors=True)
    for parent in list(Path(path).parents)[:2]:
        if CHECKPOINTS in parent.parts or parent.name == LEGACY_CHECKPOINTS:
            with contextlib.suppress(OSError):  # not empty: another model's checkpoints are there
                parent.rmdir()


def clean(models_dir: str | Path, dry_run: bool = False, name: str | None = None) -> list[tuple[Path, str, int]]:
    """Remove :func:`leftovers` (unless ``dry_run``); returns (path, why, bytes) for each."""
    removed = []
    for path, why in leftovers(models_dir, name):
        size = _tree_bytes(path)
        if not dry_run:
            remove_tree(path)
        removed.append((path, why, size))
    return removed


def save_model_artifact(
    out: Path, peft_model, tokenizer, task, labels: list[str], cfg: TrainConfig, resolved_base: str
):
    """Write adapter/ then the merged model into ``out``; returns the merged model (for evaluation).

    A task with ``save_merged = False`` (causal LMs) gets the adapter at the top level instead, where upstream's
    LoRA readers look, and the unmerged PEFT model is returned (so evaluation can switch the adapter off).
    """
    out = Path(out)
    lora = peft_model.peft_config["default"]
    if task.save_merged:
        peft_model.save_pretrained(out / ADAPTER_DIR, safe_serialization=True)
        tokenizer.save_pretrained(out / ADAPTER_DIR)
        merged = peft_model.merge_and_unload()
        merged.save_pretrained(out, safe_serialization=True)
        config = read_json(out / "config.json")
        if extra := candle_config_fields(config):  # upstream's candle parses these names only
            write_json(out / "config.json", {**config, **extra})
    else:
        peft_model.save_pretrained(out, safe_serialization=True)
        merged = peft_model
    tokenizer.save_pretrained(out)
    for name, mapping in task.artifact_files(labels, cfg).items():
        write_json(out / name, mapping)
    write_json(
        out / LORA_CONFIG,
        {
            "task": task.name,
            "base_model": cfg.model,
            "base_model_path": resolved_base,
            "model_type": merged.get_base_model().config.model_type
            if not task.save_merged
            else merged.config.model_type,
            "rank": lora.r,
            "alpha": lora.lora_alpha,
            "dropout": lora.lora_dropout,
            "target_modules": sorted(lora.target_modules),
            "modules_to_save": sorted(set(lora.modules_to_save or []) & set(head_modules(merged)))
            if task.save_merged
            else sorted(lora.modules_to_save or []),
            "max_length": cfg.max_length,
            "num_labels": len(labels),
            "task_settings": task.extra_metadata(cfg),
            "loraroute_version": __version__,
        },
    )
    cfg.to_yaml(
        out / TRAINING_CONFIG,
        header=(
            f"Resolved configuration of this run. Reproduce it with:\n"
            f"  loraroute train {task.name} --config {artifact_name(task.artifact_prefix, cfg)}/{TRAINING_CONFIG}"
        ),
    )
    return merged
