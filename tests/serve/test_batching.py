"""MicroBatcher: bounded batches across concurrent submitters, answers routed back, failures contained."""

import asyncio
import time

import pytest

from loraroute.serve.batching import MicroBatcher


class Recorder:
    def __init__(self, delay=0.02, fail_on=None):
        self.calls, self.delay, self.fail_on = [], delay, fail_on

    def __call__(self, texts, tasks):
        self.calls.append((list(texts), list(tasks)))
        time.sleep(self.delay)  # a model call: holds the worker while others queue
        if self.fail_on and self.fail_on in texts:
            raise RuntimeError(f"cannot classify {self.fail_on}")
        return {task: [{"echo": t, "task": task} for t in texts] for task in tasks}


async def run_all(batcher, requests):
    await batcher.start()
    try:
        return await asyncio.gather(
            *[batcher.submit(texts, tasks) for texts, tasks in requests], return_exceptions=True
        )
    finally:
        await batcher.stop()


def test_queued_requests_share_calls_within_the_batch_bound_and_get_their_own_answers():
    infer = Recorder()
    requests = [([f"t{i}a", f"t{i}b"], ["intent", "pii"] if i % 2 else ["intent"]) for i in range(20)]
    results = asyncio.run(run_all(MicroBatcher(infer, max_batch_texts=8, max_wait_ms=5), requests))
    for (texts, tasks), result in zip(requests, results):
        assert set(result) == set(tasks)
        for task in tasks:
            assert [r["echo"] for r in result[task]] == texts and {r["task"] for r in result[task]} == {task}
    assert max(len(texts) for texts, _ in infer.calls) <= 8
    assert len({tuple(texts) for texts, tasks in infer.calls if tasks == ["intent"]}) < 20


def test_a_request_larger_than_the_bound_runs_alone():
    infer = Recorder(delay=0)
    big = [f"x{i}" for i in range(10)]
    (result,) = asyncio.run(run_all(MicroBatcher(infer, max_batch_texts=4), [(big, ["intent"])]))
    assert [r["echo"] for r in result["intent"]] == big


def test_a_failing_batch_fails_its_requests_and_the_worker_goes_on():
    infer = Recorder(delay=0.01, fail_on="poison")
    batcher = MicroBatcher(infer, max_batch_texts=1)  # one request per call: only the poisoned one fails
    results = asyncio.run(run_all(batcher, [(["ok1"], ["intent"]), (["poison"], ["intent"]), (["ok2"], ["intent"])]))
    assert isinstance(results[1], RuntimeError)
    assert results[0]["intent"][0]["echo"] == "ok1" and results[2]["intent"][0]["echo"] == "ok2"


def test_invalid_bounds_are_refused():
    with pytest.raises(ValueError, match="max_batch_texts"):
        MicroBatcher(Recorder(), max_batch_texts=0)


def test_tasks_run_side_by_side_give_the_same_answers_as_one_after_another():
    requests = [([f"t{i}"], ["intent", "pii", "security"][: 1 + i % 3]) for i in range(9)]
    serial = asyncio.run(run_all(MicroBatcher(Recorder(delay=0.005)), requests))
    parallel_infer = Recorder(delay=0.005)
    parallel = asyncio.run(run_all(MicroBatcher(parallel_infer, parallel_tasks=True), requests))
    assert parallel == serial
    assert {tuple(tasks) for _, tasks in parallel_infer.calls} == {("intent",), ("pii",), ("security",)}
