"""The Task protocol: every task is an encoder or a generative task, and only the served ones carry serving hooks."""

from __future__ import annotations

import inspect

import pytest

from loraroute.tasks import get_task, served_tasks, task_names
from loraroute.tasks.base import EncoderTask, GenerativeTask, ServedTask, Task
from loraroute.tasks.intent import LOW_CONFIDENCE_THRESHOLD, IntentConfig

SERVING_HOOKS = ("serve_raw", "batch_result", "single_response", "statistics", "stored_threshold")


@pytest.mark.parametrize("name", task_names())
def test_every_task_is_either_an_encoder_or_a_generative_task(name):
    task = get_task(name)
    assert isinstance(task, EncoderTask) != isinstance(task, GenerativeTask)
    assert task.kind == "causal" if isinstance(task, GenerativeTask) else task.kind in ("sequence", "token")


@pytest.mark.parametrize("name", task_names())
def test_only_encoder_tasks_turn_logits_into_answers(name):
    task = get_task(name)
    assert hasattr(task, "postprocess") == isinstance(task, EncoderTask)
    assert hasattr(task, "validation_metrics") == isinstance(task, EncoderTask)


def test_served_tasks_are_exactly_the_served_task_ones_in_serving_order():
    served = [get_task(name) for name in task_names() if isinstance(get_task(name), ServedTask)]
    assert [type(t) for t in served_tasks().values()] == [type(t) for t in served]
    assert list(served_tasks()) == ["intent", "pii", "security"]
    assert all(name == task.serve_name for name, task in served_tasks().items())


@pytest.mark.parametrize("name", task_names())
def test_serving_hooks_and_thresholds_exist_only_on_served_tasks(name):
    task = get_task(name)
    for attribute in (*SERVING_HOOKS, "serve_name", "default_threshold"):
        assert hasattr(task, attribute) == isinstance(task, ServedTask), attribute


@pytest.mark.parametrize("name", task_names())
def test_every_task_writes_its_own_report_markdown_and_evaluates_without_a_directory(name):
    task = get_task(name)
    assert type(task).report_markdown is not Task.report_markdown
    assert list(inspect.signature(task.report_markdown).parameters) == ["report"]
    assert list(inspect.signature(task.summary).parameters) == ["report"]
    assert list(inspect.signature(task.evaluate).parameters)[:3] == ["predictor", "splits", "cfg"]
    assert "out_dir" not in inspect.signature(task.evaluate).parameters  # evaluating writes nothing


def test_intents_served_low_confidence_threshold_is_not_its_stored_fallback():
    intent = get_task("intent")
    assert intent.default_threshold == LOW_CONFIDENCE_THRESHOLD == 0.6
    assert IntentConfig().fallback_threshold == 0.0  # off unless asked for: answers keep their label


def test_the_headline_is_the_test_sections_headline_metric():
    jailbreak = get_task("jailbreak")
    assert jailbreak.headline({"test": {"roc_auc": 0.75, "accuracy": 0.5}}) == 0.75
    assert jailbreak.headline({"test": {"accuracy": 0.5}}) is None and jailbreak.headline({}) is None
    assert get_task("pii").headline({"test": {"micro_f1": 1}}) == 1.0


def test_the_default_summary_shows_the_test_splits_scores():
    summary = get_task("intent").summary({"split_sizes": {"test": 4}, "test": {"accuracy": 0.5, "num_examples": 4}})
    assert summary.splitlines() == [
        "Test split (4 examples):",
        "| metric | value |",
        "|---|---|",
        "| accuracy | 0.5000 |",
    ]
