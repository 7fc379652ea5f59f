"""MicroBatcher: bounded batches across concurrent submitters, answers routed back, failures contained."""

import asyncio
import time

import pytest

from loraroute.serve.batching import MicroBatcher, deal_to_lanes, lane_plan


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


def test_each_model_call_prepares_its_distinct_texts_once_before_its_tasks_run():
    infer, prepared = Recorder(delay=0), []

    def prepare(texts):
        prepared.append((list(texts), len(infer.calls)))

    batcher = MicroBatcher(infer, max_batch_texts=16, prepare=prepare, parallel_tasks=True)
    results = asyncio.run(run_all(batcher, [(["a", "b", "a"], ["intent", "pii", "security"])]))
    assert prepared == [(["a", "b"], 0)]  # once, before any task ran
    assert {tasks[0] for _, tasks in infer.calls} == {"intent", "pii", "security"}
    assert [r["echo"] for r in results[0]["pii"]] == ["a", "b", "a"]


def test_a_text_that_fails_to_prepare_fails_only_in_its_own_tasks_call():
    infer = Recorder(delay=0, fail_on="poison")

    def prepare(texts):
        raise ValueError("cannot tokenize")

    batcher = MicroBatcher(infer, max_batch_texts=1, prepare=prepare)
    results = asyncio.run(run_all(batcher, [(["ok"], ["intent"]), (["poison"], ["intent"])]))
    assert results[0]["intent"][0]["echo"] == "ok" and isinstance(results[1], RuntimeError)


def test_lanes_cut_the_slowest_task_so_that_every_lane_gets_an_equal_share():
    costs = {"pii": (3.6, 32), "intent": (1.2, 32), "security": (1.25, 32)}  # ms per text of the demo's int8 models
    lanes = deal_to_lanes(costs, 2)
    assert lanes == [[("pii", 0, 27)], [("pii", 27, 32), ("security", 0, 32), ("intent", 0, 32)]]
    loads = [sum(costs[t][0] * (b - a) for t, a, b in lane) for lane in lanes]
    assert abs(loads[0] - loads[1]) <= 3.6  # within one text of the slowest task
    # one text each cannot be cut: the slowest alone, the others together
    assert deal_to_lanes({"pii": (5.2, 1), "intent": (2.8, 1), "security": (3.2, 1)}, 2) == [
        [("pii", 0, 1)],
        [("security", 0, 1), ("intent", 0, 1)],
    ]
    assert deal_to_lanes(costs, 1) == [[("pii", 0, 32), ("security", 0, 32), ("intent", 0, 32)]]
    assert deal_to_lanes({"pii": (3.6, 1)}, 2) == [[("pii", 0, 1)]]  # never more lanes than texts


def test_a_task_cut_across_lanes_answers_every_text_in_order():
    infer = Recorder(delay=0)
    batcher = MicroBatcher(infer, max_batch_texts=64, parallel_tasks=True, lanes=2)
    batcher.seconds_per_text = {"pii": 3.0, "intent": 1.0}
    texts = [f"t{i}" for i in range(12)]
    (result,) = asyncio.run(run_all(batcher, [(texts, ["pii", "intent"])]))
    assert [r["echo"] for r in result["pii"]] == texts and [r["echo"] for r in result["intent"]] == texts
    assert sorted(len(t) for t, tasks in infer.calls if tasks == ["pii"]) == [4, 8]  # cut: 8 x 3 = 4 x 3 + 12 x 1


def test_on_lanes_a_failing_text_fails_only_its_own_request():
    infer = Recorder(delay=0.01, fail_on="poison")
    batcher = MicroBatcher(infer, max_batch_texts=64, max_wait_ms=20, parallel_tasks=True, lanes=2)
    requests = [(["ok1", "ok2"], ["pii", "intent"]), (["poison"], ["pii", "intent"]), (["ok3"], ["pii", "intent"])]
    results = asyncio.run(run_all(batcher, requests))
    assert isinstance(results[1], RuntimeError)
    assert [r["echo"] for r in results[0]["pii"]] == ["ok1", "ok2"] and results[2]["intent"][0]["echo"] == "ok3"


def test_lanes_take_a_core_each_up_to_one_per_task_and_the_cores_left_become_threads():
    assert lane_plan(3, cores=2) == (2, 1)  # this machine: two lanes, one thread per model
    assert lane_plan(3, cores=16) == (3, 5)  # never more lanes than tasks: no one-text pieces on a large host
    assert lane_plan(1, cores=4) == (1, 4) and lane_plan(3, cores=1) == (1, 1)
