"""The layer rule of docs/architecture.md, read from the source: no module imports from a layer above its own.

Every import counts, including those inside functions (a lazy import is still a dependency) and those under
``TYPE_CHECKING``: a type from a higher layer in a signature means the lower module knows about the higher one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "loraroute"

# Low to high. A module belongs to the first entry its dotted name (below ``loraroute.``) starts with.
LAYERS: list[tuple[str, ...]] = [
    ("config", "extras", "_version", "files"),
    ("models", "data", "metrics"),
    ("artifacts", "checkpoints", "progress", "resources"),
    ("inference",),
    ("tasks",),
    ("training", "export", "model_card", "hub"),
    ("serve", "train_all", "api"),
    ("cli", ""),  # "": the package root, loraroute/__init__.py, the facade
]


def layer_of(module: str) -> int:
    name = module.removeprefix("loraroute").removeprefix(".")
    for level, parts in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in parts if p):
            return level
    if name == "":
        return len(LAYERS) - 1
    raise AssertionError(f"loraroute.{name} is in no layer: add it to LAYERS and to docs/architecture.md")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, module) for every loraroute module that ``source`` (the text of ``module``) imports, relative
    imports resolved."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            if base == "loraroute":  # `from loraroute import x`: x is a module, or a name of the facade
                found += [(node.lineno, f"loraroute.{a.name}" if is_module(a.name) else base) for a in node.names]
            else:
                found.append((node.lineno, base))
    return [(line, name) for line, name in found if name == "loraroute" or name.startswith("loraroute.")]


def is_module(name: str) -> bool:
    return (SRC / name).is_dir() or (SRC / f"{name}.py").is_file()


def upward_imports(path: Path) -> list[str]:
    module = module_name(path)
    own = layer_of(module)
    return [
        f"{path.relative_to(SRC.parent)}:{line} imports {name} (layer {layer_of(name)} > {own})"
        for line, name in imports(path.read_text(), module, path.name == "__init__.py")
        if layer_of(name) > own
    ]


SOURCES = sorted(SRC.rglob("*.py"))


def test_every_module_has_a_layer():
    for path in SOURCES:
        layer_of(module_name(path))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_imports_from_a_layer_above_its_own(path):
    upward = upward_imports(path)
    assert not upward, "\n".join(upward)


def test_the_checker_sees_lazy_relative_and_facade_imports():
    source = (
        "from loraroute.config import TrainConfig\n"
        "def f():\n"
        "    from loraroute.tasks import get_task\n"  # lazy, and upward from data
        "from ..serve import api\n"  # relative: loraroute.serve
        "from loraroute import __version__\n"  # a name of the facade
        "import numpy\n"
    )
    found = imports(source, "loraroute.data.sources")
    assert sorted(found) == [(1, "loraroute.config"), (3, "loraroute.tasks"), (4, "loraroute.serve"), (5, "loraroute")]
    own = layer_of("loraroute.data.sources")
    assert sorted(name for _, name in found if layer_of(name) > own) == [
        "loraroute",
        "loraroute.serve",
        "loraroute.tasks",
    ]
    assert layer_of("loraroute.cli") == layer_of("loraroute") == len(LAYERS) - 1
    with pytest.raises(AssertionError, match="in no layer"):
        layer_of("loraroute.nowhere")
