"""Checkpoints and leftovers: where a run keeps its checkpoints and log (beside the models directory, never inside
it), and how a later run tells a killed run's leftovers (``.tmp-*``, ``.old-*``, orphaned checkpoints) from a live
run's work: :func:`leftovers` finds them, :func:`clean` removes them."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from pathlib import Path

from loraroute.config import TrainConfig

CHECKPOINTS = ".loraroute-checkpoints"
RUN_PID = "run.pid"  # in a checkpoint directory while its run is alive
LEGACY_CHECKPOINTS = ".checkpoints"  # where checkpoints were kept before: inside the models directory
# A leftover without a recorded pid (made by an older loraroute) counts as orphaned once nothing in it changed for
# this long: a live run writes its checkpoints or model files far more often.
IDLE_SECONDS = 3600


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
