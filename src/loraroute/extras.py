"""Optional extras (pyproject.toml): the core trains, evaluates and predicts; serving, ONNX, GGUF bases and plots each
need an extra. A command that needs a missing one stops with the pip command that installs it; a plot is skipped."""

from __future__ import annotations

import importlib.util
import logging

log = logging.getLogger(__name__)


class MissingExtra(ImportError, RuntimeError):
    """An optional dependency is not installed. A RuntimeError too, so the CLI prints it as an error line."""


def missing_modules(*modules: str) -> list[str]:
    """The top-level ``modules`` that cannot be imported (found by spec only: nothing is imported)."""
    out = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a parent that fails to import, or a None left in sys.modules
            found = False
        if not found:
            out.append(name)
    return out


def require_extra(extra: str, what: str, *modules: str) -> None:
    """Raise :class:`MissingExtra` naming ``pip install 'loraroute[extra]'`` when any of ``modules`` is missing."""
    absent = missing_modules(*modules)
    if absent:
        raise MissingExtra(
            f"{what} needs the '{extra}' extra: pip install 'loraroute[{extra}]' (missing: {', '.join(absent)})"
        )


def pyplot(what):
    """matplotlib's pyplot on the Agg backend, or None (logged: ``what`` is not drawn) when matplotlib is missing."""
    if missing_modules("matplotlib"):
        log.info("%s not drawn: plots need the 'plots' extra (pip install 'loraroute[plots]')", what)
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
