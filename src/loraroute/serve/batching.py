"""Micro-batching with fair scheduling: texts from concurrent requests share model calls, and no request can make
the others wait for long or fail with it.

- **Units.** A request is cut into units of work: one task over a run of its texts holding at most
  ``max_batch_texts`` texts and ``chunk_chars`` characters (a longer text is a unit alone).
- **Round robin.** One worker runs the model calls, one after another. Each call takes units from the waiting
  requests in turn, up to the same bounds, so a one-text request that arrives behind a 100 x 10,000-character request
  waits for about one unit, not for the whole request; under load, small requests still share one call per task.
- **Lanes.** Inside a call, the tasks' models run side by side on ``lanes`` threads (``lane_plan``: a core each, up
  to one per task; on 2 cores each model on one ONNX Runtime thread: small matrices scale better across models than
  across one model's intra-op threads).
  Tasks are dealt to lanes by their measured cost, longest first: with two cores and the demo's models, the PII
  model (the slowest: token outputs and recognizers) has a lane to itself and intent and security share the other,
  so both cores finish together.
- **Isolation.** When a call fails, its units are run again one by one: only the request whose texts fail gets the
  error.
- **Bounds.** At most ``max_queued_texts`` texts wait (more raises :class:`QueueFull`); a request past its deadline
  raises :class:`DeadlineExceeded` and its units still waiting are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

InferFn = Callable[[list[str], list[str]], dict[str, list[dict]]]


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one: a container's share, not the host's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def lane_plan(tasks: int, cores: int | None = None) -> tuple[int, int]:
    """(lanes, threads per model) for ``tasks`` models on ``cores``: a lane per core up to one per task, and the
    cores left over shared out as intra-op threads (2 cores, 3 tasks: 2 lanes x 1 thread; 16 cores: 3 x 5)."""
    cores = cores or usable_cores()
    lanes = max(1, min(cores, tasks))
    return lanes, max(1, cores // lanes)


def deal_to_lanes(costs: dict[str, tuple[float, int]], lanes: int) -> list[list[tuple[str, int, int]]]:
    """Per lane, its pieces of work ``(task, first text, end)``, from ``costs``: task -> (seconds per text, texts).

    McNaughton's wrap-around rule: the tasks, slowest first, fill each lane up to an equal share of the total and
    the task that crosses a lane's share is cut between two lanes, at a whole text. Lanes then finish together
    (within about one text), where whole-task dealing left one core idle behind the PII model.
    """
    order = sorted(costs, key=lambda t: -costs[t][0] * costs[t][1])
    lanes = max(1, min(lanes, sum(n for _, n in costs.values())))
    share = sum(c * n for c, n in costs.values()) / lanes
    out: list[list[tuple[str, int, int]]] = [[]]
    load = 0.0
    for task in order:
        per_text, n = costs[task]
        lo = 0
        while lo < n:
            last = len(out) == lanes
            take = n - lo if last or per_text <= 0 else min(n - lo, round((share - load) / per_text))
            if take <= 0:  # this lane has its share: the next one starts
                out.append([])
                load = 0.0
                continue
            out[-1].append((task, lo, lo + take))
            load += take * per_text
            lo += take
            if not last and load >= share - per_text / 2:
                out.append([])
                load = 0.0
    return [lane for lane in out if lane]


class QueueFull(Exception):
    """More texts are waiting than the server accepts."""


class DeadlineExceeded(Exception):
    """The request ran past its deadline; its remaining work was dropped."""


@dataclass(eq=False)
class _Request:
    texts: list[str]
    future: asyncio.Future = field(repr=False)
    units: deque = field(default_factory=deque)  # (task, start, stop) not yet run
    answers: dict[str, list] = field(default_factory=dict)
    running: int = 0  # units in the model call now

    @property
    def finished(self) -> bool:
        return not self.units and not self.running


def plan_units(texts: list[str], tasks: list[str], max_texts: int, max_chars: int) -> list[tuple[str, int, int]]:
    """(task, start, stop) units: runs of consecutive texts within both bounds, every task of a run together."""
    runs, start, chars = [], 0, 0
    for i, text in enumerate(texts):
        if i > start and (i - start >= max_texts or chars + len(text) > max_chars):
            runs.append((start, i))
            start, chars = i, 0
        chars += len(text)
    runs.append((start, len(texts)))
    return [(task, a, b) for a, b in runs for task in tasks]


class MicroBatcher:
    def __init__(
        self,
        infer: InferFn,
        max_batch_texts: int = 64,
        max_wait_ms: float = 2.0,
        parallel_tasks: bool = False,
        chunk_chars: int = 8000,
        max_queued_texts: int = 2000,
        observe: Callable[[str, int, float], None] | None = None,
        prepare: Callable[[list[str]], None] | None = None,
        lanes: int | None = None,
    ):
        if max_batch_texts < 1 or max_wait_ms < 0 or chunk_chars < 1 or max_queued_texts < 1:
            raise ValueError("max_batch_texts, chunk_chars and max_queued_texts must be >= 1, max_wait_ms >= 0")
        self.infer = infer
        self.observe = observe  # (task, texts, seconds) of every model call, for the metrics
        self.prepare = prepare  # run once over a call's texts before its tasks (the shared tokenization)
        self.max_batch_texts = max_batch_texts
        self.max_wait = max_wait_ms / 1000.0
        self.chunk_chars = chunk_chars
        self.max_queued_texts = max_queued_texts
        # parallel_tasks: the tasks of a call side by side, on one lane per usable core (or ``lanes``)
        self.lanes = (lanes or usable_cores()) if parallel_tasks else 1
        self.seconds_per_text: dict[str, float] = {}  # per task, a moving average of its model calls
        self.executor: ThreadPoolExecutor | None = None
        self.task_pool: ThreadPoolExecutor | None = None
        self.active: deque[_Request] = deque()  # requests with units left, in turn order
        self.queued_texts = 0
        self.wake: asyncio.Event | None = None
        self.worker: asyncio.Task | None = None
        self.batches = 0
        self.batched_texts = 0

    async def start(self) -> None:
        """Threads are made here, not in __init__, so an app can be started again after a stop."""
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loraroute-infer")
        # ONNX Runtime and torch release the GIL while they run, so lanes on threads use the cores
        self.task_pool = (
            ThreadPoolExecutor(max_workers=self.lanes, thread_name_prefix="loraroute-lane") if self.lanes > 1 else None
        )
        self.wake = asyncio.Event()
        self.worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.worker
        if self.executor is not None:
            self.executor.shutdown(wait=True)
        if self.task_pool is not None:
            self.task_pool.shutdown(wait=True)

    async def submit(self, texts: list[str], tasks: list[str], timeout: float | None = None) -> dict[str, list[dict]]:
        """Raw answers per task for ``texts`` (same shape as ``infer``), computed in shared, interleaved calls."""
        if self.wake is None:
            raise RuntimeError("MicroBatcher.start() was not awaited")
        if self.queued_texts + len(texts) > self.max_queued_texts:
            raise QueueFull(f"{self.queued_texts} texts are waiting; the limit is {self.max_queued_texts}")
        request = _Request(texts, asyncio.get_running_loop().create_future())
        request.units.extend(plan_units(texts, tasks, self.max_batch_texts, self.chunk_chars))
        request.answers = {task: [None] * len(texts) for task in tasks}
        self.queued_texts += len(texts)
        self.active.append(request)
        self.wake.set()
        try:
            return await asyncio.wait_for(asyncio.shield(request.future), timeout)
        except asyncio.TimeoutError:
            raise DeadlineExceeded(f"the request ran past its deadline of {timeout:g} s") from None
        finally:  # answered, failed, timed out or abandoned by its client: nothing of it stays queued
            if not request.future.done():
                request.future.cancel()
            self._retire(request)

    def _retire(self, request: _Request) -> None:
        """Forget a request that is answered, failed or abandoned: its waiting units are dropped."""
        if request in self.active:
            self.active.remove(request)
            self.queued_texts -= len(request.texts)
        request.units.clear()

    def _next_batch(self) -> list[tuple[_Request, str, int, int]]:
        """Units taken from the requests in turn, one each per round, within the batch bounds. The bounds hold per
        task, since each task is one model call: a request's tasks over the same texts go into the same call, where
        the lanes run them side by side."""
        batch: list[tuple[_Request, str, int, int]] = []
        texts: dict[str, int] = {}
        chars: dict[str, int] = {}
        served: list[_Request] = []
        progress = True
        while progress:
            progress = False
            for request in list(self.active):
                if not request.units:
                    continue
                task, a, b = request.units[0]
                n, c = b - a, sum(len(t) for t in request.texts[a:b])
                if task in texts and (texts[task] + n > self.max_batch_texts or chars[task] + c > self.chunk_chars):
                    continue
                request.units.popleft()
                request.running += 1
                batch.append((request, task, a, b))
                texts[task], chars[task] = texts.get(task, 0) + n, chars.get(task, 0) + c
                progress = True
                if request not in served:
                    served.append(request)
        for request in served:  # whoever was served goes to the back of the line
            self.active.remove(request)
            self.active.append(request)
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not any(r.units for r in self.active):
                self.wake.clear()
                await self.wake.wait()
                if len(self.active) > 1 and self.max_wait:  # a burst: let the stragglers join this call
                    await asyncio.sleep(self.max_wait)
            batch = self._next_batch()
            if not batch:
                continue
            outcomes = await loop.run_in_executor(self.executor, self._infer_batch, batch)
            for (request, task, a, b), outcome in zip(batch, outcomes):
                request.running -= 1
                if request.future.done():
                    continue
                if isinstance(outcome, Exception):
                    request.future.set_exception(outcome)
                    self._retire(request)
                    continue
                request.answers[task][a:b] = outcome
                if request.finished:
                    request.future.set_result(request.answers)

    def _infer_batch(self, batch: list[tuple[_Request, str, int, int]]) -> list:
        """Per unit, its answers or the exception its texts raised: one call per task (or per piece of a task, on
        lanes), then unit by unit if a shared call fails (so one request's bad text fails that request only)."""
        self.batches += 1
        self.batched_texts += sum(b - a for _, _, a, b in batch)
        by_task: dict[str, list[int]] = {}
        for i, (_, task, _, _) in enumerate(batch):
            by_task.setdefault(task, []).append(i)
        texts = {
            task: [t for i in members for t in batch[i][0].texts[batch[i][2] : batch[i][3]]]
            for task, members in by_task.items()
        }
        if self.prepare is not None:
            # a text that fails to tokenize fails again in its task's call, and only its request gets the error
            with contextlib.suppress(Exception):
                self.prepare(list(dict.fromkeys(t for ts in texts.values() for t in ts)))

        def call(task: str, lo: int, hi: int) -> list | Exception:
            try:
                start = time.perf_counter()
                answers = self.infer(texts[task][lo:hi], [task])[task]
            except Exception as exc:
                return exc
            seconds = time.perf_counter() - start
            last, per_text = self.seconds_per_text.get(task), seconds / max(1, hi - lo)
            self.seconds_per_text[task] = per_text if last is None else 0.8 * last + 0.2 * per_text
            if self.observe is not None:
                self.observe(task, hi - lo, seconds)
            return answers

        if self.task_pool is not None and sum(len(ts) for ts in texts.values()) > 1:
            # a task not yet measured counts as the slowest known
            known = max(self.seconds_per_text.values(), default=1.0)
            costs = {task: (self.seconds_per_text.get(task, known), len(ts)) for task, ts in texts.items()}
            lanes = deal_to_lanes(costs, self.lanes)
            done = self.task_pool.map(lambda lane: [(piece, call(*piece)) for piece in lane], lanes)
            pieces = sorted((piece, out) for lane in done for piece, out in lane)
        else:
            pieces = [((task, 0, len(ts)), call(task, 0, len(ts))) for task, ts in texts.items()]
        answers: dict[str, list] = {task: [] for task in texts}
        failed: dict[str, Exception] = {}
        for (task, _, _), out in pieces:  # in text order within each task
            if isinstance(out, Exception):
                failed.setdefault(task, out)
            else:
                answers[task] += out
        outcomes: list = [None] * len(batch)
        for task, members in by_task.items():
            if task in failed:
                if len(members) == 1:  # the only unit of its task failed: it fails alone
                    outcomes[members[0]] = failed[task]
                else:
                    for i in members:
                        outcomes[i] = self._infer_alone(batch[i])
                continue
            start = 0
            for i in members:
                n = batch[i][3] - batch[i][2]
                outcomes[i], start = answers[task][start : start + n], start + n
        return outcomes

    def _infer_alone(self, unit: tuple[_Request, str, int, int]) -> list | Exception:
        request, task, a, b = unit
        try:
            return self.infer(request.texts[a:b], [task])[task]
        except Exception as exc:
            return exc
