"""Finding the models to serve in a directory, by upstream's (vLLM semantic-router) rules.

- A model directory is recognised by its name prefix: ``lora_intent_classifier`` (intent), ``lora_pii_detector``
  (pii) and ``lora_jailbreak_classifier`` (security).
- Its architecture is read from the name (``lora_intent_classifier_{arch}_r{rank}_model``) and ranked
  bert > roberta > modernbert > others (others alphabetically).
- The first architecture with a complete, valid set (all three tasks) wins; failing that each task takes its own
  best valid directory.
- A directory is valid when the files a loader needs are present and readable and, once the export module exists,
  ``loraroute.export.verify.check_contract`` finds no problem.

Every directory seen ends up in the report with the reason it was chosen or not, so a wrong pick can be explained.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# serving task -> (artifact prefix, training task name stored in lora_config.json)
PREFIXES: dict[str, tuple[str, str]] = {
    "intent": ("lora_intent_classifier", "intent"),
    "pii": ("lora_pii_detector", "pii"),
    "security": ("lora_jailbreak_classifier", "jailbreak"),
}
SERVE_TASKS = tuple(PREFIXES)
FAMILY_PRIORITY = ("bert", "roberta", "modernbert")
_NAME = re.compile(r"^(?P<arch>.*?)(?:_r(?P<rank>\d+))?$")

Checker = Callable[[Path, str], list[str]]


@dataclass
class Candidate:
    path: Path
    task: str | None          # serving task (intent | pii | security), None for a decoy
    arch: str = ""
    rank: int = 0
    status: str = "rejected"  # chosen | rejected | not chosen
    reason: str = ""

    @property
    def family(self) -> str:
        """bert, roberta, modernbert or the arch itself. ``deberta``/``distilbert`` are not BERT for this rule."""
        arch = self.arch.lower()
        if "modernbert" in arch:
            return "modernbert"
        if "roberta" in arch:
            return "roberta"
        if arch.startswith("bert"):
            return "bert"
        return arch

    def sort_key(self) -> tuple:
        fam = self.family
        rank = FAMILY_PRIORITY.index(fam) if fam in FAMILY_PRIORITY else len(FAMILY_PRIORITY)
        return (rank, self.arch, -self.rank, self.path.name)

    def to_dict(self) -> dict:
        return {"name": self.path.name, "path": str(self.path), "task": self.task, "arch": self.arch,
                "rank": self.rank, "status": self.status, "reason": self.reason}


@dataclass
class Discovery:
    models_dir: Path
    candidates: list[Candidate] = field(default_factory=list)
    chosen: dict[str, Path] = field(default_factory=dict)
    rule: str = ""

    def table(self) -> str:
        from loraroute.evaluate import markdown_table  # lazily: evaluate pulls in scikit-learn (seconds)

        rows = [[c.path.name, c.task or "-", c.arch or "-", c.status, c.reason] for c in self.candidates]
        head = f"Models in {self.models_dir}: {self.rule}"
        if not rows:
            return head + "\n(no directories)"
        return head + "\n\n" + markdown_table(["directory", "task", "arch", "status", "why"], rows)

    def to_dict(self) -> dict:
        return {"models_dir": str(self.models_dir), "rule": self.rule,
                "chosen": {task: str(path) for task, path in self.chosen.items()},
                "candidates": [c.to_dict() for c in self.candidates]}


def parse_name(name: str) -> tuple[str | None, str, int]:
    """(serving task, arch, rank) from a directory name; task None when no known prefix starts it."""
    for task, (prefix, _) in PREFIXES.items():
        if name.startswith(prefix):
            rest = name[len(prefix):].removesuffix("_model").removeprefix("_")
            match = _NAME.match(rest)
            arch = (match.group("arch") if match else "") or "unknown"
            rank = int(match.group("rank")) if match and match.group("rank") else 0
            return task, arch, rank
    return None, "", 0


def file_problems(path: Path, task: str) -> list[str]:
    """What a loader would trip over: missing weights, tokenizer or label map, or another task's model."""
    problems = []
    config_path = path / "config.json"
    if not config_path.is_file():
        problems.append("config.json missing")
    else:
        try:
            config = json.loads(config_path.read_text())
            if len(config.get("id2label") or {}) < 2:
                problems.append("config.json has no id2label with two or more labels")
        except (OSError, ValueError) as exc:
            problems.append(f"config.json unreadable ({exc})")
    if not any(path.glob("*.safetensors")) and not (path / "onnx" / "model.onnx").is_file():
        problems.append("no model weights (*.safetensors or onnx/model.onnx)")
    if not any((path / name).is_file() for name in ("tokenizer.json", "vocab.txt", "vocab.json")):
        problems.append("no tokenizer (tokenizer.json, vocab.txt or vocab.json)")
    lora = path / "lora_config.json"
    if lora.is_file():
        try:
            stored = json.loads(lora.read_text()).get("task")
        except (OSError, ValueError) as exc:
            problems.append(f"lora_config.json unreadable ({exc})")
        else:
            expected = PREFIXES[task][1]
            if stored and stored != expected:
                problems.append(f"lora_config.json says task {stored!r}, the name says {expected!r}")
    return problems


def contract_problems(path: Path, task: str) -> list[str]:
    """File checks, then the export module's contract check where that module is installed."""
    problems = file_problems(path, task)
    if problems:
        return problems
    try:
        from loraroute.export.verify import check_contract
    except ImportError:  # the export module is optional for serving; file checks still apply
        return []
    try:
        return list(check_contract(path))
    except Exception as exc:  # a checker that crashes on a directory means the directory is unusable
        return [f"contract check failed: {type(exc).__name__}: {exc}"]


def discover(models_dir: str | Path, check: Checker = contract_problems) -> Discovery:
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        raise FileNotFoundError(f"{models_dir}: no such models directory")
    found = Discovery(models_dir)
    for path in sorted(p for p in models_dir.iterdir() if p.is_dir()):
        task, arch, rank = parse_name(path.name)
        cand = Candidate(path, task, arch, rank)
        if path.name.startswith("."):
            cand.reason = "hidden directory (temporary, checkpoint or replaced model)"
        elif task is None:
            cand.reason = "no known prefix (" + ", ".join(p for p, _ in PREFIXES.values()) + ")"
        else:
            cand.status, cand.reason = "not chosen", "pending"
        found.candidates.append(cand)

    pending = sorted((c for c in found.candidates if c.status == "not chosen"), key=Candidate.sort_key)
    verdicts: dict[Path, list[str]] = {}

    def valid(c: Candidate) -> bool:
        if c.path not in verdicts:
            verdicts[c.path] = check(c.path, c.task)
            if verdicts[c.path]:
                c.status, c.reason = "rejected", "; ".join(verdicts[c.path])
        return not verdicts[c.path]

    for arch in dict.fromkeys(c.arch for c in pending):  # archs in priority order
        picks = {}
        for task in SERVE_TASKS:
            picks[task] = next((c for c in pending if c.arch == arch and c.task == task and valid(c)), None)
        if all(picks.values()):
            found.rule = f"architecture {arch!r} has a complete valid set"
            for task, c in picks.items():
                c.status, c.reason = "chosen", f"complete set for {arch}"
                found.chosen[task] = c.path
            break
    else:
        found.rule = "no architecture has a complete valid set: best valid directory per task"
        for task in SERVE_TASKS:
            c = next((c for c in pending if c.task == task and valid(c)), None)
            if c is not None:
                c.status, c.reason = "chosen", f"best valid {task} model (priority bert > roberta > modernbert)"
                found.chosen[task] = c.path

    for c in pending:
        if c.status == "not chosen":
            winner = found.chosen.get(c.task)
            c.reason = f"lower priority than {winner.name}" if winner else "not needed"
    missing = [t for t in SERVE_TASKS if t not in found.chosen]
    if missing:
        found.rule += f"; no valid model for {', '.join(missing)}"
    return found
