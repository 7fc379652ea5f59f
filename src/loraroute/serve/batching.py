"""Micro-batching: texts from concurrent requests share one model call per task, off the event loop.

One worker thread runs the models (ONNX Runtime and torch already use every core for one call, so two calls at
once only fight). While it is busy, new requests queue; when it frees up, everything queued -- up to
``max_batch_texts`` -- goes in the next call. A lone request therefore runs at once (no added latency), and under
load batches grow by themselves. When more requests are already waiting, the collector waits up to
``max_wait_ms`` for stragglers so a burst lands in one call rather than two.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class _Item:
    texts: list[str]
    tasks: list[str]
    future: asyncio.Future = field(repr=False)


InferFn = Callable[[list[str], list[str]], dict[str, list[dict]]]


class MicroBatcher:
    def __init__(self, infer: InferFn, max_batch_texts: int = 64, max_wait_ms: float = 2.0,
                 parallel_tasks: bool = False):
        if max_batch_texts < 1 or max_wait_ms < 0:
            raise ValueError("max_batch_texts must be >= 1 and max_wait_ms >= 0")
        self.infer = infer
        self.max_batch_texts = max_batch_texts
        self.max_wait = max_wait_ms / 1000.0
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loraroute-infer")
        # Side by side, each task's model on its own thread: small matrices scale better across models than
        # across one model's intra-op threads (ONNX Runtime releases the GIL while it runs).
        self.task_pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="loraroute-task") \
            if parallel_tasks else None
        self.queue: asyncio.Queue[_Item] | None = None
        self.worker: asyncio.Task | None = None
        self.held: _Item | None = None  # an item that did not fit the last batch; it opens the next one
        self.batches = 0
        self.batched_texts = 0

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        self.worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            try:
                await self.worker
            except asyncio.CancelledError:
                pass
        self.executor.shutdown(wait=True)
        if self.task_pool is not None:
            self.task_pool.shutdown(wait=True)

    async def submit(self, texts: list[str], tasks: list[str]) -> dict[str, list[dict]]:
        """Raw answers per task for ``texts`` (same shape as ``infer``), computed in a shared batch."""
        if self.queue is None:
            raise RuntimeError("MicroBatcher.start() was not awaited")
        future = asyncio.get_running_loop().create_future()
        await self.queue.put(_Item(texts, tasks, future))
        return await future

    async def _collect(self) -> list[_Item]:
        first, self.held = (self.held, None) if self.held is not None else (await self.queue.get(), None)
        batch, size = [first], len(first.texts)
        busy = not self.queue.empty()  # others already waiting: a burst, worth a short wait
        deadline = time.monotonic() + (self.max_wait if busy else 0.0)
        while size < self.max_batch_texts:
            try:
                if self.queue.empty() and time.monotonic() < deadline:
                    item = await asyncio.wait_for(self.queue.get(), deadline - time.monotonic())
                else:
                    item = self.queue.get_nowait()
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
            if size + len(item.texts) > self.max_batch_texts:
                self.held = item
                break
            batch.append(item)
            size += len(item.texts)
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            batch = [item for item in batch if not item.future.cancelled()]  # client went away
            if not batch:
                continue
            try:
                results = await loop.run_in_executor(self.executor, self._infer_batch, batch)
            except Exception as exc:  # one failing batch fails its requests, never the worker
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            for item, result in zip(batch, results):
                if not item.future.done():
                    item.future.set_result(result)

    def _infer_batch(self, batch: list[_Item]) -> list[dict[str, list[dict]]]:
        """One model call per task over the texts of every item that asked for it, split back per item."""
        self.batches += 1
        self.batched_texts += sum(len(item.texts) for item in batch)
        per_item: list[dict[str, list[dict]]] = [{} for _ in batch]
        tasks = list(dict.fromkeys(task for item in batch for task in item.tasks))

        def run(task: str) -> list[dict]:
            texts = [text for item in batch if task in item.tasks for text in item.texts]
            return self.infer(texts, [task])[task]

        if self.task_pool is not None and len(tasks) > 1:
            outputs = list(self.task_pool.map(run, tasks))
        else:
            outputs = [run(task) for task in tasks]
        for task, answers in zip(tasks, outputs):
            members = [i for i, item in enumerate(batch) if task in item.tasks]
            start = 0
            for i in members:
                n = len(batch[i].texts)
                per_item[i][task] = answers[start:start + n]
                start += n
        return per_item
