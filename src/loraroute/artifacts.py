"""Model directories: naming, atomic writes, merged model + adapter/, label maps, lora_config.json, model card.

Layout (what vLLM semantic-router's loaders read sits at the top level)::

    lora_{task}_{arch}_r{rank}_model/
      config.json (id2label/label2id)  model.safetensors  tokenizer.json (+ tokenizer files)
      label_mapping.json (+ the task's second name)  lora_config.json  training_config.yaml
      eval_report.json  eval_report.md  *.png  README.md
      adapter/  adapter_config.json  adapter_model.safetensors (LoRA + trained head)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from loraroute import __version__
from loraroute.config import TrainConfig
from loraroute.models.registry import arch_name, head_modules

LORA_CONFIG = "lora_config.json"
TRAINING_CONFIG = "training_config.yaml"
ADAPTER_DIR = "adapter"
THRESHOLDS = "thresholds.json"


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


@contextlib.contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``final``; on success it replaces ``final`` in one rename.

    An interrupted run leaves at most a hidden ``.tmp-*`` directory and never a half-written model; an earlier
    model of the same name stays intact until the new one is complete.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    # mkdtemp makes the directory owner-only (0700); a model is read by servers running as other users, so give
    # it the permissions an ordinary mkdir would (0777 less the umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    try:
        yield tmp
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


def save_model_artifact(out: Path, peft_model, tokenizer, task, labels: list[str], cfg: TrainConfig,
                        resolved_base: str):
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
    else:
        peft_model.save_pretrained(out, safe_serialization=True)
        merged = peft_model
    tokenizer.save_pretrained(out)
    for name, mapping in task.artifact_files(labels, cfg).items():
        write_json(out / name, mapping)
    write_json(out / LORA_CONFIG, {
        "task": task.name,
        "base_model": cfg.model,
        "base_model_path": resolved_base,
        "model_type": merged.get_base_model().config.model_type if not task.save_merged
        else merged.config.model_type,
        "rank": lora.r,
        "alpha": lora.lora_alpha,
        "dropout": lora.lora_dropout,
        "target_modules": sorted(lora.target_modules),
        "modules_to_save": sorted(set(lora.modules_to_save or []) & set(head_modules(merged)))
        if task.save_merged else sorted(lora.modules_to_save or []),
        "max_length": cfg.max_length,
        "num_labels": len(labels),
        "task_settings": task.extra_metadata(cfg),
        "loraroute_version": __version__,
    })
    cfg.to_yaml(out / TRAINING_CONFIG, header=(
        f"Resolved configuration of this run. Reproduce it with:\n"
        f"  loraroute train {task.name} --config {artifact_name(task.artifact_prefix, cfg)}/{TRAINING_CONFIG}"))
    return merged


def write_model_card(out: Path, task, cfg: TrainConfig, report: dict, headline: dict[str, float]) -> None:
    lines = [
        f"# {Path(out).name}",
        "",
        f"A LoRA-tuned **{task.name}** model made by loraroute {__version__} from `{cfg.model}` "
        f"(rank {cfg.rank}, alpha {cfg.lora_alpha}).",
        "",
        ("The top level holds the merged model (load it with transformers or vLLM semantic-router); `adapter/` holds "
         "the PEFT adapter with the trained head." if task.save_merged else
         f"The top level holds the PEFT adapter and tokenizer; load it on top of `{cfg.model}`.")
        + " `eval_report.md` has the full evaluation on the held-out test split.",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {k} | {v:.4f} |" for k, v in headline.items()],
        "",
        f"Data: `{cfg.data or 'offline default'}`; split sizes {report.get('split_sizes')}.",
        "",
        "Reproduce: `loraroute train " + task.name + " --config training_config.yaml`",
    ]
    (Path(out) / "README.md").write_text("\n".join(lines) + "\n")
