"""Model directories (:class:`ModelDir`): naming, merged model + adapter/, label maps, lora_config.json, and the
contract upstream's loaders hold them to. Written with ``loraroute.files.atomic_directory``.

Layout (what vLLM semantic-router's loaders read sits at the top level)::

    lora_{task}_{arch}_r{rank}_model/
      config.json (id2label/label2id)  model.safetensors  tokenizer.json (+ tokenizer files)
      label_mapping.json (+ the task's second name)  lora_config.json  training_config.yaml
      eval_report.json  eval_report.md  *.png  README.md (model card: loraroute.model_card)
      adapter/  adapter_config.json  adapter_model.safetensors (LoRA + trained head)

Checkpoints and run logs go beside the models directory, never inside it: ``loraroute.checkpoints``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loraroute._version import __version__
from loraroute.config import TrainConfig
from loraroute.models.registry import arch_name, candle_config_fields, head_modules

CONFIG = "config.json"  # transformers' config, id2label included
LORA_CONFIG = "lora_config.json"
LABEL_MAPPING = "label_mapping.json"
THRESHOLDS = "thresholds.json"
TRAINING_CONFIG = "training_config.yaml"
WEIGHTS = "model.safetensors"
TOKENIZER = "tokenizer.json"
ADAPTER_DIR = "adapter"
ONNX_DIR = "onnx"
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
LORA_KEYS = ("task", "base_model", "rank", "alpha", "target_modules", "num_labels")

TaskOf = Callable[[Path, dict[str, Any]], Any]  # (model directory, its lora_config.json) -> its Task


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


def _file(name: str, doc: str | None = None) -> property:
    """A path under the model directory, as a read-only attribute."""
    return property(lambda self: self.path / name, doc=doc or f"``{name}`` in the model directory.")


@dataclass(frozen=True)
class ModelDir:
    """A model directory: where its files are (the layout above), its metadata, and what upstream's loaders need."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    config = _file(CONFIG)
    lora_config = _file(LORA_CONFIG)
    label_mapping = _file(LABEL_MAPPING)
    thresholds = _file(THRESHOLDS, "Calibrated decision thresholds (jailbreak, PII), read by predict and serve.")
    training_config = _file(TRAINING_CONFIG)
    weights = _file(WEIGHTS, "The merged model's weights.")
    tokenizer = _file(TOKENIZER)
    adapter = _file(ADAPTER_DIR, "The LoRA adapter and trained head beside a merged model.")
    onnx_fp32 = _file(f"{ONNX_DIR}/{FP32_FILE}")
    onnx_int8 = _file(f"{ONNX_DIR}/{INT8_FILE}")

    @property
    def adapter_only(self) -> bool:
        """No merged model, the adapter at the top instead (tasks with ``save_merged = False``: causal LMs)."""
        return not self.config.exists() and (self.path / "adapter_config.json").exists()

    def meta(self) -> dict[str, Any]:
        """lora_config.json plus the label list from config.json's id2label (and thresholds.json when there is one).

        "task" is there only when lora_config.json names it; otherwise the directory's name decides, which only the
        tasks know (``loraroute.tasks.task_of``): this module sits below them.
        """
        meta = read_json(self.lora_config) if self.lora_config.exists() else {}
        config = read_json(self.config) if self.config.exists() else {}
        id2label = config.get("id2label") or {}
        if not id2label and self.label_mapping.exists():  # adapter-only dirs have no config.json
            id2label = read_json(self.label_mapping).get("id2label") or {}
        meta["labels"] = [id2label[k] for k in sorted(id2label, key=int)]
        meta.setdefault("max_length", 512)
        if self.thresholds.exists():
            meta["thresholds"] = read_json(self.thresholds)
        return meta

    def problems(self, task_of: TaskOf, task_name: str | None = None) -> list[str]:
        """What upstream's loaders would trip over here: empty for a complete model.

        ``task_of`` finds the directory's task from its name and lora_config.json (``loraroute.tasks.task_of``: the
        tasks, which know their label files, sit above this module). ``task_name`` is the task the caller expects
        the directory to hold (discovery: the one its name says); then the cheap file checks come first and, when
        they find something, they are the answer, so discovery rejects a directory without reading its weights.
        """
        from loraroute.models.loading import refuse_pickle_only  # here: it imports transformers

        if not self.path.is_dir():
            return [f"{self.path}: no such model directory"]
        if task_name is not None and (problems := self._file_problems(task_name)):
            return problems
        try:
            refuse_pickle_only(self.path)
        except ValueError as exc:
            return [str(exc)]
        problems = []
        config = _read(self.config, problems)
        lora = _read(self.lora_config, problems)
        tokenizer = _read(self.tokenizer, problems)
        if tokenizer is not None and not isinstance(tokenizer, dict):
            problems.append("tokenizer.json: not a tokenizers JSON object")
        labels = _config_labels(config, problems) if config is not None else None
        if not self.weights.exists():
            problems.append("model.safetensors: missing (the merged model)")
        elif labels is not None:
            problems += _head_problems(self.weights, labels)
        if lora is not None:
            missing = [k for k in LORA_KEYS if k not in lora]
            if missing:
                problems.append(f"{LORA_CONFIG}: missing key(s) {', '.join(missing)}")
            if labels is not None and "num_labels" in lora and lora["num_labels"] != len(labels):
                problems.append(
                    f"{LORA_CONFIG}: num_labels is {lora['num_labels']}, config.json id2label has {len(labels)}"
                )
        task = None
        try:
            task = task_of(self.path, lora or {})
        except ValueError as exc:
            problems.append(f"{LORA_CONFIG}: {exc}")
        if task is not None and labels is not None:
            problems += _label_file_problems(self.path, task, labels)
        return problems

    def _file_problems(self, task_name: str) -> list[str]:
        """What a loader would trip over first: missing weights, tokenizer or label map, or another task's model."""
        problems = []
        if not self.config.is_file():
            problems.append("config.json missing")
        else:
            try:
                config = json.loads(self.config.read_text())
                if len(config.get("id2label") or {}) < 2:
                    problems.append("config.json has no id2label with two or more labels")
            except (OSError, ValueError) as exc:
                problems.append(f"config.json unreadable ({exc})")
        if not any(self.path.glob("*.safetensors")) and not self.onnx_fp32.is_file():
            problems.append("no model weights (*.safetensors or onnx/model.onnx)")
        if not any((self.path / name).is_file() for name in (TOKENIZER, "vocab.txt", "vocab.json")):
            problems.append("no tokenizer (tokenizer.json, vocab.txt or vocab.json)")
        if self.lora_config.is_file():
            try:
                stored = json.loads(self.lora_config.read_text()).get("task")
            except (OSError, ValueError) as exc:
                problems.append(f"lora_config.json unreadable ({exc})")
            else:
                if stored and stored != task_name:
                    problems.append(f"lora_config.json says task {stored!r}, the name says {task_name!r}")
        return problems


def _read(path: Path, problems: list[str]) -> Any:
    if not path.exists():
        problems.append(f"{path.name}: missing")
        return None
    try:
        return read_json(path)
    except ValueError as exc:
        problems.append(str(exc))
        return None


def _config_labels(config: dict, problems: list[str]) -> list[str] | None:
    """config.json's labels in id order, or None (with the reason in ``problems``) when they cannot be read."""
    if not isinstance(config.get("architectures"), list) or not config["architectures"]:
        problems.append("config.json: 'architectures' missing or empty (transformers cannot pick a model class)")
    id2label = config.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        problems.append("config.json: 'id2label' missing or empty")
    elif sorted(int(k) for k in id2label) != list(range(len(id2label))):
        problems.append(f"config.json: id2label keys are not 0..{len(id2label) - 1}")
    else:
        return [id2label[k] for k in sorted(id2label, key=int)]
    return None


def head_size(weights: Path) -> tuple[str, int] | None:
    """(tensor name, number of outputs) of the final classifier layer in a safetensors file, read from its header."""
    from safetensors import safe_open

    with safe_open(str(weights), framework="np") as f:
        shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}  # noqa: SIM118 -- safe_open has keys() but no __iter__
    for name in ("classifier.out_proj.weight", "classifier.weight", "score.weight"):
        if name in shapes and len(shapes[name]) == 2:
            return name, int(shapes[name][0])
    return None


def _head_problems(weights: Path, labels: list[str]) -> list[str]:
    try:
        head = head_size(weights)
    except Exception as exc:  # a truncated or foreign file: safetensors raises its own error types
        return [f"model.safetensors: unreadable ({exc})"]
    if head is None:
        return ["model.safetensors: no classifier head (classifier.weight / classifier.out_proj.weight)"]
    if head[1] != len(labels):
        return [
            f"config.json: id2label has {len(labels)} labels but model.safetensors' {head[0]} has {head[1]} outputs"
        ]
    return []


def _label_file_problems(path: Path, task, labels: list[str]) -> list[str]:
    problems: list[str] = []
    for name, expected in task.label_files(labels).items():
        mapping = _read(path / name, problems)
        if mapping is None:
            continue
        keys = list(expected)  # the task's key names, and any second pair it writes beside them (label_map_also)
        if not isinstance(mapping, dict) or set(mapping) != set(keys):
            found = sorted(mapping) if isinstance(mapping, dict) else type(mapping).__name__
            named = ", ".join(repr(k) for k in keys[:-1]) + f" and {keys[-1]!r}"
            problems.append(f"{name}: expected keys {named} (what upstream's {task.name} loader reads), found {found}")
            continue
        for key in keys:
            got = mapping[key]
            if not isinstance(got, dict) or len(got) != len(labels):
                size = len(got) if isinstance(got, dict) else type(got).__name__
                problems.append(f"{name}: {key} has {size} entries, config.json id2label has {len(labels)}")
            elif {str(k): v for k, v in got.items()} != {str(k): v for k, v in expected[key].items()}:
                problems.append(f"{name}: {key} does not match config.json id2label")
    return problems


def save_model_artifact(
    out: Path, peft_model, tokenizer, task, labels: list[str], cfg: TrainConfig, resolved_base: str
):
    """Write adapter/ then the merged model into ``out``; returns the merged model (for evaluation).

    A task with ``save_merged = False`` (causal LMs) gets the adapter at the top level instead, where upstream's
    LoRA readers look, and the unmerged PEFT model is returned (so evaluation can switch the adapter off).
    """
    model_dir = ModelDir(out)
    out = model_dir.path
    lora = peft_model.peft_config["default"]
    if task.save_merged:
        peft_model.save_pretrained(model_dir.adapter, safe_serialization=True)
        tokenizer.save_pretrained(model_dir.adapter)
        merged = peft_model.merge_and_unload()
        merged.save_pretrained(out, safe_serialization=True)
        config = read_json(model_dir.config)
        if extra := candle_config_fields(config):  # upstream's candle parses these names only
            write_json(model_dir.config, {**config, **extra})
    else:
        peft_model.save_pretrained(out, safe_serialization=True)
        merged = peft_model
    tokenizer.save_pretrained(out)
    for name, mapping in task.artifact_files(labels, cfg).items():
        write_json(out / name, mapping)
    write_json(
        model_dir.lora_config,
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
        model_dir.training_config,
        header=(
            f"Resolved configuration of this run. Reproduce it with:\n"
            f"  loraroute train {task.name} --config {artifact_name(task.artifact_prefix, cfg)}/{TRAINING_CONFIG}"
        ),
    )
    return merged
