"""`accelerate launch` runs the same training command across processes (gloo on CPU).

accelerate 1.x sends `--cpu` with `--num_processes 2` to its single-process launcher (multi-CPU there needs an MPI
hostfile); `--multi_gpu` starts the processes through torchrun, and on a machine without GPUs the Trainer joins them
with gloo on the CPU. The test checks that two ranks really trained, not just that the command exited 0.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from loraroute.inference import Predictor


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes_trains_a_working_model(tiny_encoder, intent_file, tmp_path):
    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable))
    assert accelerate, "accelerate is a dependency; its launcher must be installed"
    cmd = [
        accelerate,
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "loraroute.cli",
        "train",
        "intent",
        "--model",
        str(tiny_encoder("bert")),
        "--data",
        str(intent_file),
        "--output-dir",
        str(tmp_path),
        "--name",
        "ddp",
        "--epochs",
        "3",
        "--batch-size",
        "8",
        "--precision",
        "fp32",
        "rank=4",
        "max_length=32",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    model_dir = tmp_path / "ddp"
    labels = json.loads((model_dir / "config.json").read_text())["id2label"]
    assert sorted(labels.values()) == ["biology", "law", "math"]
    answers = Predictor.load(model_dir).predict(["question: integral theorem", "question: court appeal"])
    assert all(a["label"] in {"biology", "law", "math"} for a in answers)
    report = json.loads((model_dir / "eval_report.json").read_text())
    assert report["training"]["world_size"] == 2
    assert report["test"]["num_examples"] > 0
