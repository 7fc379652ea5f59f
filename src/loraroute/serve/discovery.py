"""Finding the models to serve in a directory, by upstream's (vLLM semantic-router) rules.

- A model directory is recognised by its name prefix: ``lora_intent_classifier`` (intent), ``lora_pii_detector``
  (pii) and ``lora_jailbreak_classifier`` (security).
- Its architecture is read from the name (``lora_intent_classifier_{arch}_r{rank}_model``) and ranked
  bert > roberta > modernbert > others (others alphabetically).
- The first architecture with a complete, valid set (all three tasks) wins; failing that each task takes its own
  best valid directory.
- A directory is valid when ``loraroute.artifacts.ModelDir.problems`` finds no problem: first that the files a loader
  needs are present and readable and hold the task the name says, then the rest of upstream's loaders' contract.

Every directory seen ends up in the report with the reason it was chosen or not, so a wrong pick can be explained.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from loraroute.artifacts import ModelDir
from loraroute.export.candle import upstream_loadability
from loraroute.tasks import served_tasks, task_of

# serving task -> (artifact prefix, training task name stored in lora_config.json), from the tasks themselves
PREFIXES: dict[str, tuple[str, str]] = {
    name: (task.artifact_prefix, task.name) for name, task in served_tasks().items()
}
SERVE_TASKS = tuple(PREFIXES)
# Upstream's buckets (model_discovery.go, detectArchitectureFromPath): a name is "roberta" or "modernbert" only when
# it says so, and everything else (MiniLM included) is "bert"; the first complete bucket in this order is used.
UPSTREAM_BUCKETS = (
    ("bert", ("bert-base-uncased",)),
    ("roberta", ("roberta-base",)),
    ("modernbert", ("modernbert-base", "mmbert32k")),
)
FAMILY_PRIORITY = ("bert", "roberta", "modernbert")
_NAME = re.compile(r"^(?P<arch>.*?)(?:_r(?P<rank>\d+))?$")

Checker = Callable[[Path, str], list[str]]


@dataclass
class Candidate:
    path: Path
    task: str | None  # serving task (intent | pii | security), None for a decoy
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
        return {
            "name": self.path.name,
            "path": str(self.path),
            "task": self.task,
            "arch": self.arch,
            "rank": self.rank,
            "status": self.status,
            "reason": self.reason,
        }


@dataclass
class Discovery:
    models_dir: Path
    candidates: list[Candidate] = field(default_factory=list)
    chosen: dict[str, Path] = field(default_factory=dict)
    rule: str = ""
    upstream: dict = field(default_factory=dict)  # what upstream's own discovery would pick here (upstream_view)

    def table(self) -> str:
        from loraroute.metrics.reports import markdown_table

        rows = [[c.path.name, c.task or "-", c.arch or "-", c.status, c.reason] for c in self.candidates]
        head = f"Models in {self.models_dir}: {self.rule}"
        tail = f"\n\nvLLM semantic-router: {self.upstream['summary']}" if self.upstream else ""
        if not rows:
            return head + "\n(no directories)" + tail
        return head + "\n\n" + markdown_table(["directory", "task", "arch", "status", "why"], rows) + tail

    def to_dict(self, paths: bool = True) -> dict:
        """``paths=False`` gives directory names only (what the server shows its clients)."""
        where = (lambda p: str(p)) if paths else (lambda p: Path(p).name)
        candidates = [c.to_dict() for c in self.candidates]
        if not paths:
            for c in candidates:
                c.pop("path")
        out = {
            "rule": self.rule,
            "chosen": {task: where(path) for task, path in self.chosen.items()},
            "candidates": candidates,
            "upstream": self.upstream,
        }
        return {"models_dir": str(self.models_dir), **out} if paths else out


def parse_name(name: str) -> tuple[str | None, str, int]:
    """(serving task, arch, rank) from a directory name; task None when no known prefix starts it."""
    for task, (prefix, _) in PREFIXES.items():
        if name.startswith(prefix):
            rest = name[len(prefix) :].removesuffix("_model").removeprefix("_")
            match = _NAME.match(rest)
            arch = (match.group("arch") if match else "") or "unknown"
            rank = int(match.group("rank")) if match and match.group("rank") else 0
            return task, arch, rank
    return None, "", 0


def contract_problems(path: Path, task: str) -> list[str]:
    """``ModelDir.problems`` of a directory named for serving task ``task``, its cheap file checks first."""
    try:
        return ModelDir(path).problems(task_of, PREFIXES[task][1])
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
    found.upstream = upstream_view(models_dir, found.chosen)
    return found


def upstream_bucket(name: str) -> str:
    lowered = name.lower()
    return next((bucket for bucket, marks in UPSTREAM_BUCKETS if any(m in lowered for m in marks)), "bert")


def _walk(directory: Path):
    """Directories below ``directory`` in Go's filepath.Walk order: depth first, entries in lexical order, each
    directory before its contents, links not followed."""
    for child in sorted((p for p in directory.iterdir() if p.is_dir() and not p.is_symlink()), key=lambda p: p.name):
        yield child
        yield from _walk(child)


def upstream_view(models_dir: Path, chosen: dict[str, Path]) -> dict:
    """What upstream's discovery picks in ``models_dir``: it walks the whole tree in lexical order, hidden
    directories included, takes the first ``lora_*`` directory per (bucket, task), and uses LoRA models only when
    one bucket holds all three tasks. ``agrees`` says whether that is the set loraroute serves."""
    first: dict[str, dict[str, Path]] = {bucket: {} for bucket, _ in UPSTREAM_BUCKETS}
    for path in _walk(models_dir):
        task, _, _ = parse_name(path.name.lower())
        if task is not None:
            first[upstream_bucket(path.name)].setdefault(task, path)
    bucket = next((b for b, picks in first.items() if len(picks) == len(SERVE_TASKS)), None)
    picks = first[bucket] if bucket else {}
    agrees = bucket is not None and all(picks[t] == chosen.get(t) for t in SERVE_TASKS)
    if bucket is None:
        partial = {b: sorted(p) for b, p in first.items() if p}
        summary = (
            "no complete set of intent, pii and security in one architecture bucket, so upstream loads no "
            f"LoRA model (found: {partial or 'nothing'})"
        )
    elif not agrees:
        summary = (
            f"complete {bucket!r} set, but upstream would load "
            + ", ".join(f"{t}={picks[t].relative_to(models_dir)}" for t in SERVE_TASKS)
            + ", not the directories chosen above"
        )
    else:
        summary = f"complete {bucket!r} set; upstream loads the same three directories"
    verdicts = {t: upstream_loadability(p) for t, p in picks.items()}
    unreadable = {t: reasons for t, (ok, reasons) in verdicts.items() if not ok}
    if unreadable:
        summary += "; but its loaders cannot read " + "; ".join(
            f"{picks[t].name} ({', '.join(reasons)})" for t, reasons in unreadable.items()
        )
    return {
        "complete": bucket is not None,
        "bucket": bucket,
        "agrees": agrees,
        "loadable": not unreadable,
        "summary": summary,
        "picks": {t: str(p.relative_to(models_dir)) for t, p in picks.items()},
    }
