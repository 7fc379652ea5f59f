"""Writing files and directories that others read: through a temporary sibling, then one rename; readable by all.

A reader never meets a half-written file or model, an earlier version stays intact until the new one is complete,
and the result is 0644 (files) and 0755 (directories) whatever the umask: the router that loads a model often runs
as another user. Temporary names are ``.tmp-<name>-<pid>-*`` so that a later run can tell a killed run's leftovers
from a live run's work (``loraroute.checkpoints.leftovers`` parses them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


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


def _make_parents(path: Path) -> None:
    """Create ``path``'s missing parent directories, 0755: under a 077 umask they would hide what goes in them."""
    missing = [p for p in path.parents if not p.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    for directory in missing:
        os.chmod(directory, 0o755)


@contextlib.contextmanager
def atomic_directory(final: Path, keep_existing: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Yield a temporary sibling of ``final``; on success it replaces ``final`` in one rename, readable by all.

    An interrupted run leaves at most a hidden ``.tmp-<name>-<pid>-*`` directory and never a half-written model.
    ``keep_existing(final)``, asked once the new directory is complete, keeps a ``final`` that another process
    finished meanwhile (the new one is discarded) rather than swapping it under that process's readers.
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
    if keep_existing is not None and final.exists() and keep_existing(final):
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old = None
    if final.exists():
        old = final.parent / f".old-{final.name}-{os.getpid()}"
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling path of ``target`` to write; on success it replaces ``target``, mode 0644.

    On failure the temporary file goes and an earlier ``target`` stays as it was. The temporary name keeps
    ``target``'s suffix, for writers that choose a format by it.
    """
    target = Path(target)
    _make_parents(target)
    fd, name = tempfile.mkstemp(prefix=f".tmp-{target.name}-{os.getpid()}-", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        make_world_readable(tmp)  # mkstemp makes 0600
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
