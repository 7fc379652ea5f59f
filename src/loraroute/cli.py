"""The ``loraroute`` command: parse, call one library function, print. Options come from the config dataclasses."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import MISSING, fields
from pathlib import Path

from loraroute.config import TrainConfig, field_type, parse_overrides


def add_config_options(parser: argparse.ArgumentParser, cls: type[TrainConfig], skip: tuple[str, ...] = ()) -> None:
    """One ``--option`` per dataclass field, with the field's help; unset options leave the config alone."""
    for f in fields(cls):
        if f.name in skip:
            continue
        tp, _ = field_type(cls, f.name)
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        kwargs = {"dest": f.name, "default": argparse.SUPPRESS,
                  "help": f"{f.metadata.get('help', '')} (default: {default})"}
        flag = "--" + f.name.replace("_", "-")
        if tp is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        elif getattr(tp, "__origin__", None) is list:
            parser.add_argument(flag, nargs="+", metavar="NAME", **kwargs)
        else:
            parser.add_argument(flag, type=tp, choices=f.metadata.get("choices"), **kwargs)


def resolve_config(cls: type[TrainConfig], args: argparse.Namespace, task: str) -> TrainConfig:
    """Defaults < --config YAML < --options < key=value overrides."""
    values: dict = {}
    if getattr(args, "config", None):
        values = cls.from_yaml(args.config).to_dict()
    names = {f.name for f in fields(cls)}
    values.update({k: v for k, v in vars(args).items() if k in names})
    values.update(parse_overrides(getattr(args, "overrides", []) or []))
    values["task"] = task
    return cls.from_dict(values, where=args.config or "command line")


def build_parser() -> argparse.ArgumentParser:
    from loraroute.tasks import get_task, task_names

    parser = argparse.ArgumentParser(
        prog="loraroute", description="Train, verify and serve the LoRA models an LLM request router needs.")
    parser.add_argument("-v", "--verbose", action="store_true", help="Log debug messages.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser("train", help="Train one task's LoRA model, evaluate it and write its model directory.",
                           description="Train one task. Settings: defaults < --config YAML < --options < key=value.")
    tasks = train.add_subparsers(dest="task", required=True, metavar="TASK")
    for name in task_names():
        task = get_task(name)
        p = tasks.add_parser(name, help=(task.__doc__ or name).strip().splitlines()[0],
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        p.add_argument("--config", help="YAML recipe to start from (see recipes/).")
        add_config_options(p, task.config_class, skip=("task",))
        p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="Overrides applied last, e.g. rank=8.")

    predict = sub.add_parser("predict", help="Run a trained model on texts or a JSONL file.")
    predict.add_argument("--model", required=True, help="Model directory written by `loraroute train`.")
    predict.add_argument("texts", nargs="*", help="Texts to classify.")
    predict.add_argument("--input", help='JSONL file of {"text": ...} lines.')
    predict.add_argument("--output", help="Where to write JSONL results (default: stdout).")
    predict.add_argument("--use-adapter", action="store_true",
                         help="Load base model + adapter/ instead of the merged model (same answers).")
    predict.add_argument("--threshold", type=float, default=None,
                         help="Decision threshold (jailbreak: overrides the calibrated one; intent: low-confidence "
                              "fallback; pii: minimum entity confidence).")
    predict.add_argument("--no-probabilities", action="store_true", help="Leave per-label probabilities out.")
    return parser


def cmd_train(args) -> int:
    from loraroute.evaluate import summary_table
    from loraroute.tasks import get_task
    from loraroute.train import headline_metrics, train_task

    task = get_task(args.task)
    cfg = resolve_config(task.config_class, args, task.name)
    result = train_task(task, cfg)
    if result.artifact_dir is None:
        return 0
    print()
    print(f"Test split ({result.report.get('split_sizes', {}).get('test', '?')} examples):")
    print(summary_table(headline_metrics(result.report)))
    if "natural" in result.report:
        print("\nNatural-prompt set:")
        print(summary_table({k: v for k, v in result.report["natural"].items() if isinstance(v, float)}))
    print(f"\nTraining: {result.train_seconds:.0f} s, {result.train_samples_per_second:.1f} samples/s")
    print(f"Model directory: {result.artifact_dir}")
    return 0


def cmd_predict(args) -> int:
    from loraroute.data.sources import read_local, text_label_records
    from loraroute.predict import Predictor

    if bool(args.texts) == bool(args.input):
        raise SystemExit("predict: give either TEXT arguments or --input FILE, not both or neither")
    predictor = Predictor.load(args.model, use_adapter=args.use_adapter)
    options = {"return_probabilities": not args.no_probabilities}
    if args.threshold is not None:
        options["threshold"] = args.threshold
    if args.input:
        rows = read_local(Path(args.input))
        texts = [r["text"] for r in text_label_records(rows, "text", None, args.input)]
    else:
        rows, texts = [{"text": t} for t in args.texts], args.texts
    results = predictor.predict(texts, **options)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        for row, result in zip(rows, results):
            row = {k: v for k, v in row.items() if k != "_where"}
            out.write(json.dumps({**row, **result}, ensure_ascii=False) + "\n")
    finally:
        if args.output:
            out.close()
    return 0


COMMANDS = {"train": cmd_train, "predict": cmd_predict}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return COMMANDS[args.command](args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
