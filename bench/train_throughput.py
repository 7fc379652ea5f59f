"""Training throughput: the seed's recipe vs loraroute's defaults, same model, same data, same machine, one run.

    python bench/train_throughput.py --train-samples 2000 --epochs 1

(a) seed recipe, as upstream's script does it: HF Trainer + PEFT, fp32, every example padded to the longest in the
    dataset (capped at 512 tokens), LoRA dropout 0.1, the checkpoint's own dropout, batch 8, random order.
(b) loraroute defaults: `train.train_task` with its TrainConfig defaults (dynamic padding, length-grouped batches,
    bf16 autocast where supported, no dropout, batch 32, max_length 128).
Both train on the same stratified subset of the offline MMLU intent data and are scored on the same test split.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def seed_recipe(splits, labels, model_ref: str, epochs: float, out: Path) -> tuple[float, float]:
    import datasets
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import Trainer, TrainingArguments, set_seed

    from loraroute.models.loading import load_base_model, load_tokenizer

    set_seed(42)
    tok = load_tokenizer(model_ref)
    label2id = {label: i for i, label in enumerate(labels)}
    longest = max(len(ids) for ids in tok([r["text"] for r in splits.train])["input_ids"])
    length = min(512, longest)

    def encode(records):
        enc = tok([r["text"] for r in records], truncation=True, max_length=length, padding="max_length")
        return datasets.Dataset.from_dict({**enc, "labels": [label2id[r["label"]] for r in records]})

    model = load_base_model(model_ref, "sequence", labels)  # checkpoint dropout (0.1) kept, as upstream
    model = get_peft_model(
        model,
        LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=16,
            lora_alpha=32,
            lora_dropout=0.1,
            target_modules=["query", "key", "value", "dense"],
        ),
    )
    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=8,
        num_train_epochs=epochs,
        learning_rate=3e-4,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        logging_steps=50,
        disable_tqdm=False,
    )
    trainer = Trainer(model=model, args=args, train_dataset=encode(splits.train))
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    test = encode(splits.test)
    preds = trainer.predict(test).predictions
    accuracy = float((np.asarray(preds).argmax(-1) == np.asarray(test["labels"])).mean())
    return len(splits.train) * epochs / seconds, accuracy


def loraroute_defaults(splits, model_ref: str, epochs: float, out: Path) -> tuple[float, float, str]:
    from loraroute.tasks.intent import IntentConfig, IntentTask
    from loraroute.training import train_task

    class FixedSplits(IntentTask):  # same examples as the seed recipe, not a fresh split
        def load_splits(self, cfg):
            return splits

    # max_length 128, TrainConfig's default, as measured; intent's own default is 64
    cfg = IntentConfig(model=model_ref, epochs=epochs, output_dir=str(out), early_stopping_patience=0, max_length=128)
    start = time.perf_counter()
    result = train_task(FixedSplits(), cfg)
    seconds = result.train_seconds or (time.perf_counter() - start)
    return len(splits.train) * epochs / seconds, result.report["test"]["accuracy"], cfg.precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--train-samples", type=int, default=2000)
    parser.add_argument("--test-samples", type=int, default=1000)
    parser.add_argument("--epochs", type=float, default=1.0)
    args = parser.parse_args()

    from loraroute.data.mmlu import mmlu_intent_records
    from loraroute.data.splits import split_records, stratified_sample

    total = args.train_samples + args.test_samples
    records = stratified_sample(mmlu_intent_records(), int(total / 0.9), seed=0)
    splits = split_records(records, 0.1, args.test_samples / len(records), seed=0)
    splits.train = splits.train[: args.train_samples]
    labels = sorted({r["label"] for r in records})

    with tempfile.TemporaryDirectory() as tmp:
        ours_sps, ours_acc, precision = loraroute_defaults(splits, args.model, args.epochs, Path(tmp) / "ours")
        seed_sps, seed_acc = seed_recipe(splits, labels, args.model, args.epochs, Path(tmp) / "seed")

    print(
        f"\nmachine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}; {len(splits.train)} train / {len(splits.test)} test examples, "
        f"{args.epochs:g} epoch(s), model {args.model}"
    )
    print("| recipe | samples/s | test accuracy |")
    print("|---|---|---|")
    print(f"| seed (fp32, pad to longest<=512, dropout 0.1, batch 8) | {seed_sps:.2f} | {seed_acc:.4f} |")
    print(f"| loraroute defaults (precision {precision}) | {ours_sps:.2f} | {ours_acc:.4f} |")
    print(f"| ratio | {ours_sps / seed_sps:.1f}x | {100 * (ours_acc - seed_acc):+.1f} points |")


if __name__ == "__main__":
    main()
