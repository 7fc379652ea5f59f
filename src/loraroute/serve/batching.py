"""Micro-batching with fair scheduling: texts from concurrent requests share model calls, and no request can make
the others wait for long or fail with it.

- **Units.** A request is cut into units of work: one task over a run of its texts holding at most
  ``max_batch_texts`` texts and ``chunk_chars`` characters (a longer text is a unit alone).
- **Round robin.** One worker thread runs the models (ONNX Runtime and torch already use every core for one call, so
  two calls at once only fight). Each model call takes units from the waiting requests in turn, up to the same
  bounds, so a one-text request that arrives behind a 100 x 10,000-character request waits for about one unit, not
  for the whole request; under load, small requests still share one call per task.
- **Isolation.** When a call fails, its units are run again one by one: only the request whose texts fail gets the
  error.
- **Bounds.** At most ``max_queued_texts`` texts wait (more raises :class:`QueueFull`); a request past its deadline
  raises :class:`DeadlineExceeded` and its units still waiting are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

InferFn = Callable[[list[str], list[str]], dict[str, list[dict]]]


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
    ):
        if max_batch_texts < 1 or max_wait_ms < 0 or chunk_chars < 1 or max_queued_texts < 1:
            raise ValueError("max_batch_texts, chunk_chars and max_queued_texts must be >= 1, max_wait_ms >= 0")
        self.infer = infer
        self.observe = observe  # (task, texts, seconds) of every model call, for the metrics
        self.max_batch_texts = max_batch_texts
        self.max_wait = max_wait_ms / 1000.0
        self.chunk_chars = chunk_chars
        self.max_queued_texts = max_queued_texts
        self.parallel_tasks = parallel_tasks
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
        # Side by side, each task's model on its own thread: small matrices scale better across models than
        # across one model's intra-op threads (ONNX Runtime releases the GIL while it runs).
        self.task_pool = (
            ThreadPoolExecutor(max_workers=3, thread_name_prefix="loraroute-task") if self.parallel_tasks else None
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
        """Units taken from the requests in turn, one each per round, within the batch bounds."""
        batch, texts, chars = [], 0, 0
        served: list[_Request] = []
        progress = True
        while progress:
            progress = False
            for request in list(self.active):
                if not request.units:
                    continue
                task, a, b = request.units[0]
                n, c = b - a, sum(len(t) for t in request.texts[a:b])
                if batch and (texts + n > self.max_batch_texts or chars + c > self.chunk_chars):
                    continue
                request.units.popleft()
                request.running += 1
                batch.append((request, task, a, b))
                texts, chars, progress = texts + n, chars + c, True
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
        """Per unit, its answers or the exception its texts raised: one call per task, then unit by unit if the
        shared call fails (so one request's bad text fails that request only)."""
        self.batches += 1
        self.batched_texts += sum(b - a for _, _, a, b in batch)
        by_task: dict[str, list[int]] = {}
        for i, (_, task, _, _) in enumerate(batch):
            by_task.setdefault(task, []).append(i)

        def run(task: str) -> list[tuple[int, object]]:
            members = by_task[task]
            texts = [t for i in members for t in batch[i][0].texts[batch[i][2] : batch[i][3]]]
            try:
                start = time.perf_counter()
                answers = self.infer(texts, [task])[task]
                if self.observe is not None:
                    self.observe(task, len(texts), time.perf_counter() - start)
            except Exception:
                if len(members) == 1:
                    raise
                return [pair for i in members for pair in self._infer_alone(batch[i], i)]
            out, start = [], 0
            for i in members:
                n = batch[i][3] - batch[i][2]
                out.append((i, answers[start : start + n]))
                start += n
            return out

        def guarded(task: str) -> list[tuple[int, object]]:
            try:
                return run(task)
            except Exception as exc:  # the only unit of its task failed: it fails alone
                return [(i, exc) for i in by_task[task]]

        tasks = list(by_task)
        if self.task_pool is not None and len(tasks) > 1:
            parts = list(self.task_pool.map(guarded, tasks))
        else:
            parts = [guarded(task) for task in tasks]
        outcomes: list = [None] * len(batch)
        for part in parts:
            for i, outcome in part:
                outcomes[i] = outcome
        return outcomes

    def _infer_alone(self, unit: tuple[_Request, str, int, int], i: int) -> list[tuple[int, object]]:
        request, task, a, b = unit
        try:
            return [(i, self.infer(request.texts[a:b], [task])[task])]
        except Exception as exc:
            return [(i, exc)]
