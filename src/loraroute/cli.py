"""The ``loraroute`` command: parse, call one library function, print. Options come from the config dataclasses."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from dataclasses import MISSING, fields
from pathlib import Path

from tqdm.contrib.logging import logging_redirect_tqdm

from loraroute._version import __version__
from loraroute.config import ConfigError, Settings, field_type, parse_overrides, resolve_config

EXIT_STATUS = (
    "Exit status: 0 success; 1 a run that failed (training or evaluation error, out of memory, a download that "
    "failed, verify beyond tolerance, a failed run of train-all); 2 bad usage, found before any model is loaded: "
    "an unknown option, setting or task, a malformed or out-of-range value, a path named on the command line that "
    "does not exist (--config, --input, --recipes, --data as a file, a model or models DIR), or data rows that are "
    "malformed (the message names file, line and field)."
)


# How a help text says its default itself ("(default: ...)", "Default: ...", "0 by default", "(unset: ...)"), so
# add_config_options does not print it a second time.
STATES_DEFAULT = re.compile(r"\(default\b|\bdefault:|\bby default\b|\(unset:", re.IGNORECASE)


def add_config_options(parser: argparse.ArgumentParser, cls: type[Settings], skip: tuple[str, ...] = ()) -> None:
    """One ``--option`` per dataclass field, with the field's help; unset options leave the config alone.

    The default is appended to the help unless the help already says it in words. argparse's ``%(default)s`` cannot
    do it: the options' argparse default is SUPPRESS, so that only options given on the command line reach the
    config and override the YAML recipe."""
    for f in fields(cls):
        if f.name in skip:
            continue
        tp, _ = field_type(cls, f.name)
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        if isinstance(default, list):
            default = " ".join(map(str, default)) or "[]"
        text = f.metadata.get("help", "")
        if not STATES_DEFAULT.search(text):
            text = f"{text} (default: {default})"
        kwargs = {"dest": f.name, "default": argparse.SUPPRESS, "help": text.replace("%", "%%")}
        flag = "--" + f.name.replace("_", "-")
        if tp is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        elif getattr(tp, "__origin__", None) is list:
            parser.add_argument(flag, nargs="+", metavar="NAME", **kwargs)
        else:
            parser.add_argument(flag, type=tp, choices=f.metadata.get("choices"), **kwargs)


def given_options(args: argparse.Namespace, cls: type[Settings]) -> dict:
    """The config options given on the command line: add_config_options leaves the others out of ``args``."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names}


def config_from_args(cls: type[Settings], args: argparse.Namespace, **fixed) -> Settings:
    """Defaults < --config YAML < --options < key=value overrides < what the command fixes (``fixed``)."""
    return resolve_config(
        cls,
        yaml_path=getattr(args, "config", None),
        options=given_options(args, cls),
        overrides=getattr(args, "overrides", None),
        fixed=fixed,
        where="command line",
    )


def build_parser() -> argparse.ArgumentParser:
    from loraroute.tasks import get_task, task_names

    parser = argparse.ArgumentParser(
        prog="loraroute",
        description="Train, verify and serve the LoRA models an LLM request router needs.",
        epilog=EXIT_STATUS,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="Log debug messages.")
    parser.add_argument(
        "--version", action="version", version=f"loraroute {__version__}", help="Print the version and exit."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser(
        "train",
        help="Train one task's LoRA model, evaluate it and write its model directory.",
        description="Train one task. Settings: defaults < --config YAML < --options < key=value.",
    )
    tasks = train.add_subparsers(dest="task", required=True, metavar="TASK")
    for name in task_names():
        task = get_task(name)
        p = tasks.add_parser(name, help=(task.__doc__ or name).strip().splitlines()[0])
        p.add_argument("--config", help="YAML recipe to start from (see recipes/).")
        add_config_options(p, task.config_class, skip=("task",))
        p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="Overrides applied last, e.g. rank=8.")

    predict = sub.add_parser("predict", help="Run a trained model on texts or a JSONL file.")
    predict.add_argument(
        "--model",
        required=True,
        metavar="DIR_OR_REPO",
        help="Model directory written by `loraroute train`, or a Hugging Face Hub repo id "
        "(owner/name), downloaded into the Hugging Face cache.",
    )
    predict.add_argument("--revision", help="Hub branch, tag or commit of --model (default: main).")
    predict.add_argument("texts", nargs="*", help="Texts to classify.")
    predict.add_argument("--input", help='JSONL file of {"text": ...} lines.')
    predict.add_argument("--output", help="Where to write JSONL results (default: stdout).")
    predict.add_argument(
        "--use-adapter",
        action="store_true",
        help="Load base model + adapter/ instead of the merged model (same answers).",
    )
    predict.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="Decision threshold (jailbreak: P(jailbreak), replacing the calibrated one; intent: an answer less "
        "confident than this becomes 'other', replacing the stored fallback_threshold; pii: minimum entity "
        "confidence, replacing the calibrated one).",
    )
    predict.add_argument("--no-probabilities", action="store_true", help="Leave per-label probabilities out.")
    predict.add_argument(
        "--patterns",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="PII: use (or, with --no-patterns, skip) Presidio's recognizers for cards, IBANs, "
        "e-mails, IPs, SSNs, licences, phones and URLs (default: the model's stored setting).",
    )
    predict.add_argument(
        "--explain",
        action="store_true",
        help="Jailbreak: add an 'explanation' line per answer: the score, the threshold and, when a decoded span "
        "decided, its encoding, position and decoded text.",
    )
    predict.add_argument(
        "--rescan",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Jailbreak: also score the decoded readings of encoded spans (base64, hex, Morse, ...), or with "
        "--no-rescan read the text only (default: the model's stored setting).",
    )

    all_runs = sub.add_parser(
        "train-all",
        help="Train every encoder task x base model, check each model, write summary.{md,json}.",
        description="Train tasks x models one after another, sized to this machine. A failed run is recorded and "
        "the loop goes on; the exit status is 1 if any run failed.",
    )
    all_runs.add_argument("--tasks", nargs="+", metavar="TASK", help="Tasks to train (default: every encoder task).")
    all_runs.add_argument(
        "--models",
        nargs="+",
        metavar="MODEL",
        default=None,
        help="Base models: aliases, hub ids or local directories (default: minilm, embedded).",
    )
    all_runs.add_argument("--epochs", type=float, help="Training epochs for every run.")
    all_runs.add_argument("--samples", type=int, help="max_samples for every run.")
    all_runs.add_argument("--rank", type=int, help="LoRA rank (alpha = 2 x rank unless --alpha).")
    all_runs.add_argument("--alpha", type=int, help="LoRA alpha.")
    all_runs.add_argument(
        "--quick",
        action="store_true",
        help="Smoke run: 600 samples and one epoch per run unless --samples/--epochs say otherwise.",
    )
    all_runs.add_argument(
        "--output-dir",
        default="models",
        help="Where model directories and the summary go (checkpoints and run logs go beside it, "
        "in ../.loraroute-checkpoints/<its name>/).",
    )
    all_runs.add_argument(
        "--recipes", metavar="DIR", help="Start each run from DIR/{task}_{model}.yaml when that recipe exists."
    )
    all_runs.add_argument(
        "--no-fit",
        dest="fit",
        action="store_false",
        help="Keep the configured batch size instead of sizing it to free memory.",
    )
    all_runs.add_argument("--no-verify", dest="verify", action="store_false", help="Skip `verify` after each run.")
    all_runs.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="Config keys applied to every run, e.g. max_length=64."
    )

    clean = sub.add_parser(
        "clean",
        help="Remove what failed or killed runs left: .tmp-*/.old-* directories and orphaned checkpoints.",
        description="Removes from DIR the .tmp-*/.old-* directories of runs that are no longer alive, and from "
        "DIR/../.loraroute-checkpoints/<DIR name>/ the checkpoints and logs of finished or dead runs "
        "(also DIR/.checkpoints/, where an older loraroute kept them). A leftover with no recorded pid "
        "counts as orphaned after an hour without changes. A live run's files are never touched.",
    )
    clean.add_argument("--models-dir", default="models", metavar="DIR", help="Models directory (default: models).")
    clean.add_argument("--dry-run", action="store_true", help="Print what would be removed; remove nothing.")

    from loraroute.serve.config import ServeConfig

    discover = sub.add_parser("discover", help="Show which model directories `serve` would load, and why.")
    discover.add_argument("models_dir", metavar="DIR", help="Directory holding lora_* model directories.")
    discover.add_argument("--json", action="store_true", help="Print the report as JSON instead of a table.")
    serve = sub.add_parser("serve", help="Serve intent, PII and jailbreak models over HTTP (/api/v1/classify/batch).")
    add_config_options(serve, ServeConfig)

    export = sub.add_parser("export", help="Export a model directory to a serving format.")
    formats = export.add_subparsers(dest="format", required=True, metavar="FORMAT")
    onnx = formats.add_parser("onnx", help="Write DIR/onnx/model.onnx (dynamic batch and sequence axes).")
    onnx.add_argument("model_dir", metavar="DIR", help="Model directory written by `loraroute train`.")
    onnx.add_argument("--int8", action="store_true", help="Also write an int8 model.int8.onnx (the fast backend).")
    onnx.add_argument(
        "--int8-scheme",
        default="auto",
        choices=("auto", "dynamic", "blockwise"),
        help="dynamic: ORT's quantize_dynamic, the fastest; blockwise: 8-bit MatMulNBits with activations "
        "quantised per block of 32, the most faithful; auto (default): dynamic where it passes verify's int8 "
        "tolerances, else blockwise (export/quantize.py has the measurements).",
    )
    verify = sub.add_parser(
        "verify",
        help="Check a model directory's contract and that every runtime agrees.",
        description="Runs built-in probes (every label) through base+adapter, merged, ONNX fp32 "
        "and int8 (if exported); exit status 1 beyond tolerance.",
    )
    # dest "model", not "model_dir": a hub id is not a local directory (main()'s missing-path check reads model_dir)
    verify.add_argument(
        "model",
        metavar="DIR_OR_REPO",
        help="Model directory written by `loraroute train`, or a Hub repo id (owner/name), verified "
        "in the Hugging Face cache without writing verify_report.json there.",
    )
    verify.add_argument("--input", help='JSONL file of {"text": ...} lines added to the built-in probes.')
    verify.add_argument("--json", action="store_true", help="Print the report as JSON instead of a table.")

    from loraroute.tasks.solver import SPECIALISTS, SolverConfig

    specialists = sub.add_parser(
        "train-specialists",
        help="Train the six MMLU-Pro specialist solvers and print baseline vs trained accuracy.",
        description="Each specialist gets its own settings (rank, learning rate, epochs, lengths) from the table in "
        "loraroute.tasks.solver; options given here apply to every specialist.",
    )
    specialists.add_argument(
        "--specialists",
        nargs="+",
        metavar="NAME",
        choices=list(SPECIALISTS),
        help="Which specialists (default: all six).",
    )
    specialists.add_argument("--config", help="YAML settings applied to every specialist.")
    add_config_options(specialists, SolverConfig, skip=("task", "specialist", "name"))
    specialists.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="Overrides applied last.")

    push = sub.add_parser(
        "push",
        help="Upload a model directory to the Hugging Face Hub.",
        description="Creates the repo if it does not exist and uploads the directory in one commit, leaving out "
        "hidden files (.tmp-* of an interrupted export), verify_report.json and pickle weights. "
        "README.md, if it is loraroute's own card, gets the repo id in its usage lines first. The token "
        "is huggingface_hub's: HF_TOKEN, else the one `hf auth login` saved.",
    )
    push.add_argument("model_dir", metavar="DIR", help="Model directory written by `loraroute train`.")
    push.add_argument("repo_id", metavar="REPO_ID", help="Hub repo id, owner/name.")
    push.add_argument(
        "--private", action="store_true", help="Create the repo private (an existing repo keeps its visibility)."
    )
    push.add_argument("--revision", help="Branch to commit to, created if missing (default: main).")
    push.add_argument("--message", help="Commit message.")
    pull = sub.add_parser(
        "pull",
        help="Download a Hub model into a models directory, under its lora_* name, for `serve`.",
        description="serve and vLLM semantic-router read a models directory; pull places a hub model there as "
        "DIR/<lora_* name> (the repo's name if it is one, else the name its model card records).",
    )
    pull.add_argument("repo_id", metavar="REPO_ID", help="Hub repo id, owner/name.")
    pull.add_argument("--models-dir", default="models", metavar="DIR", help="Models directory (default: models).")
    pull.add_argument("--name", help="Directory name to use instead (serving needs a lora_* prefix).")
    pull.add_argument("--revision", help="Branch, tag or commit (default: main).")
    return parser


def cmd_train(args) -> int:
    from loraroute.resources import with_oom_retry
    from loraroute.tasks import get_task
    from loraroute.training import train_task

    task = get_task(args.task)
    cfg = config_from_args(task.config_class, args, task=task.name)
    with logging_redirect_tqdm():
        result = with_oom_retry(lambda c: train_task(task, c), cfg)
    if result.artifact_dir is None:
        return 0
    print()
    print(task.summary(result.report))
    print(f"\nTraining: {result.train_seconds:.0f} s, {result.train_samples_per_second:.1f} samples/s")
    print(f"Model directory: {result.artifact_dir}")
    return 0


def cmd_predict(args) -> int:
    from loraroute.data.sources import read_local, text_label_records
    from loraroute.inference import Predictor

    if bool(args.texts) == bool(args.input):
        raise ConfigError("predict: give either TEXT arguments or --input FILE, not both or neither")
    predictor = Predictor.load(args.model, use_adapter=args.use_adapter, revision=args.revision)
    options = {"return_probabilities": not args.no_probabilities}
    if args.threshold is not None:
        options["threshold"] = args.threshold
    if args.patterns is not None:
        options["patterns"] = args.patterns
    jailbreak_only = {"explain": args.explain or None, "rescan": args.rescan}
    for name, value in jailbreak_only.items():
        if value is not None:
            if predictor.task.name != "jailbreak":
                raise ConfigError(
                    f"predict: --{name} is for jailbreak models; {args.model} is a {predictor.task.name} model"
                )
            options[name] = value
    if args.input:
        rows = read_local(Path(args.input))
        texts = [r["text"] for r in text_label_records(rows, "text", None, args.input)]
    else:
        rows, texts = [{"text": t} for t in args.texts], args.texts
    results = predictor.predict(texts, **options)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115 -- or stdout
    try:
        for row, result in zip(rows, results):
            row = {k: v for k, v in row.items() if k != "_where"}
            out.write(json.dumps({**row, **result}, ensure_ascii=False) + "\n")
    finally:
        if args.output:
            out.close()
    return 0


def cmd_train_specialists(args) -> int:
    from loraroute.tasks.solver import SolverConfig
    from loraroute.train_all import specialist_configs, specialists_table, train_specialists

    configs = specialist_configs(
        given_options(args, SolverConfig), args.specialists, yaml_path=args.config, overrides=args.overrides
    )
    with logging_redirect_tqdm():
        rows = train_specialists(configs)
    print("\n" + specialists_table(rows))
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def cmd_discover(args) -> int:
    from loraroute.serve.discovery import discover

    found = discover(args.models_dir)
    print(json.dumps(found.to_dict(), indent=2) if args.json else found.table())
    return 0 if found.chosen else 1


def cmd_serve(args) -> int:
    from loraroute.extras import require_extra

    require_extra("serve", "`loraroute serve`", "fastapi", "uvicorn", "pydantic", "prometheus_client")
    from loraroute.serve.api import serve
    from loraroute.serve.config import ServeConfig

    # main()'s usage_problems already refused a models directory that is a hub id, with the `pull` hint
    serve(config_from_args(ServeConfig, args))
    return 0


def cmd_train_all(args) -> int:
    from loraroute.train_all import summary_markdown, train_all

    flags = {"epochs": args.epochs, "max_samples": args.samples, "rank": args.rank, "alpha": args.alpha}
    # Options < key=value overrides, as for every command; each run's resolver checks the keys
    settings = {k: v for k, v in flags.items() if v is not None} | parse_overrides(args.overrides or [])
    with logging_redirect_tqdm():
        records = train_all(
            args.tasks,
            args.models,
            args.output_dir,
            settings,
            quick=args.quick,
            recipes=args.recipes,
            fit=args.fit,
            verify=args.verify,
        )
    print()
    print(summary_markdown(records))
    print(f"\nSummary: {Path(args.output_dir) / 'summary.md'}, {Path(args.output_dir) / 'summary.json'}")
    return 0 if all(r.status == "ok" for r in records) else 1


def cmd_clean(args) -> int:
    from loraroute.checkpoints import clean

    removed = clean(args.models_dir, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for path, why, size in removed:
        print(f"{verb} {path} ({why}): {size / 1e6:.1f} MB")
    total = sum(size for _, _, size in removed)
    print(f"{len(removed)} leftover(s), {total} bytes ({total / 1e6:.1f} MB) {'to free' if args.dry_run else 'freed'}")
    return 0


def cmd_export(args) -> int:
    from loraroute.artifacts import INT8_FILE
    from loraroute.export.onnx import export_onnx
    from loraroute.export.quantize import Int8Settings, int8_record

    path = export_onnx(args.model_dir, int8=args.int8, int8_settings=Int8Settings(scheme=args.int8_scheme))
    print(f"ONNX model: {path}")
    if args.int8:
        int8 = path.with_name(INT8_FILE)
        print(f"int8 model: {int8} (scheme {int8_record(int8)['scheme']})")
    return 0


def cmd_verify(args) -> int:
    from loraroute.data.sources import read_local, text_label_records
    from loraroute.export.verify import format_report, verify_model
    from loraroute.models.hub import resolve

    extra = None
    if args.input:
        extra = [r["text"] for r in text_label_records(read_local(Path(args.input)), "text", None, args.input)]
    model_dir = resolve(args.model, onnx=True)
    local = Path(args.model).expanduser().is_dir()  # a hub download lives in the Hub cache: no report written there
    report = verify_model(model_dir, extra_texts=extra, write=local)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0 if report["passed"] else 1


def cmd_push(args) -> int:
    from loraroute.hub import push

    url = push(args.model_dir, args.repo_id, private=args.private, revision=args.revision, commit_message=args.message)
    print(f"Pushed {args.model_dir} to {url}" + (f" (branch {args.revision})" if args.revision else ""))
    return 0


def cmd_pull(args) -> int:
    from loraroute.hub import pull

    print(f"Model directory: {pull(args.repo_id, args.models_dir, name=args.name, revision=args.revision)}")
    return 0


COMMANDS = {
    "train": cmd_train,
    "train-all": cmd_train_all,
    "train-specialists": cmd_train_specialists,
    "predict": cmd_predict,
    "clean": cmd_clean,
    "export": cmd_export,
    "verify": cmd_verify,
    "discover": cmd_discover,
    "serve": cmd_serve,
    "push": cmd_push,
    "pull": cmd_pull,
}


# Paths a command reads, by argparse dest: (kind, message). A models directory is checked where it is read
# (discover, serve), not where it is swept or created (clean, pull).
INPUT_PATHS = {
    "config": ("file", "no such file (--config)"),
    "input": ("file", "no such file (--input)"),
    "recipes": ("directory", "no such directory (--recipes)"),
    "model_dir": ("directory", "no such model directory"),
    "models_dir": ("directory", "no such models directory"),
}
READS_MODELS_DIR = ("discover", "serve")


def usage_problems(args: argparse.Namespace) -> list[str]:
    """What argparse cannot see is wrong with the command line: paths it names that the command would read and that
    do not exist, and unknown task names (train-all --tasks). Checked before any work."""
    from loraroute.data.sources import LOCAL_SUFFIXES
    from loraroute.tasks import task_names

    problems = []
    unknown = [t for t in getattr(args, "tasks", None) or [] if t not in task_names()]
    if unknown:
        problems.append(f"unknown task(s) {', '.join(unknown)} (--tasks); choose from {', '.join(task_names())}")
    for dest, (kind, message) in INPUT_PATHS.items():
        value = getattr(args, dest, None)
        if not value or (dest == "models_dir" and args.command not in READS_MODELS_DIR):
            continue
        if dest == "models_dir":
            from loraroute.hub import check_models_dir

            try:  # a hub id here gets the `loraroute pull` hint
                check_models_dir(value)
            except FileNotFoundError as exc:
                problems.append(str(exc))
                continue
        if not (Path(value).is_file() if kind == "file" else Path(value).is_dir()):
            problems.append(f"{value}: {message}")
    data = getattr(args, "data", None)  # a hub id or a local file: read_rows' rule says which
    if (
        data
        and not Path(data).expanduser().exists()
        and (Path(data).suffix in LOCAL_SUFFIXES or data.startswith((".", "/", "~")))
    ):
        problems.append(f"{data}: no such file (--data)")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Run one command; the exit status is 0, 1 for a run that failed, 2 for bad usage (see EXIT_STATUS)."""
    from loraroute.data.sources import DataError

    args = build_parser().parse_args(argv)  # argparse exits 2 itself on an unknown option or a bad value
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    problems = usage_problems(args)
    if problems:
        print("\n".join(f"error: {p}" for p in problems), file=sys.stderr)
        return 2
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, DataError) as exc:  # settings, or data rows, that are wrong: raised before any training
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
