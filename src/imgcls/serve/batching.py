"""Dynamic micro-batching: requests that arrive together run through the model together.

Each model version has one :class:`MicroBatcher`: an asyncio queue and one worker task.
The worker takes the first waiting request, then keeps collecting until the batch holds
``max_batch`` images or ``max_wait_ms`` has passed since the first, runs ``predict_proba``
once in a thread (the event loop stays free) and hands each request its rows. With
``max_wait_ms=0`` every request runs alone, one after the other.

Example:
    >>> batcher = MicroBatcher(predictor.predict_proba, max_batch=32, max_wait_ms=5)  # doctest: +SKIP
    >>> proba = await batcher.predict(stack)          # (N, n_classes)             # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass

import anyio.to_thread
import numpy as np

_STOP = object()


@dataclass
class _Job:
    images: np.ndarray
    future: asyncio.Future


class MicroBatcher:
    """Collects prepared images from concurrent requests into batches for one predictor."""

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], max_batch: int = 32,
                 max_wait_ms: float = 5.0, on_batch: Callable[[int], None] | None = None) -> None:
        self.predict_fn = predict
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.on_batch = on_batch
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._closed = False
        self._lock = threading.Lock()

    async def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities for one request's stack of prepared images, batched with others."""
        if self._closed:  # a reload replaced this version: finish alone, outside the queue
            return await anyio.to_thread.run_sync(self._run_chunks, images)
        queue = self._ensure_worker()
        future = asyncio.get_running_loop().create_future()
        queue.put_nowait(_Job(images, future))
        return await future

    def close(self) -> None:
        """Stop after the queued requests; safe to call from any thread."""
        with self._lock:
            self._closed = True
            loop, queue = self._loop, self._queue
        if loop is None or queue is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            queue.put_nowait(_STOP)
        else:
            loop.call_soon_threadsafe(queue.put_nowait, _STOP)

    def _ensure_worker(self) -> asyncio.Queue:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._loop is not loop or self._task is None or self._task.done():
                self._loop, self._queue = loop, asyncio.Queue()
                self._task = loop.create_task(self._work(self._queue), name="imgcls-microbatcher")
            return self._queue

    async def _work(self, queue: asyncio.Queue) -> None:
        carry = None
        while True:
            job, carry = (carry if carry is not None else await queue.get()), None
            if job is _STOP:
                return
            jobs, carry = await self._collect(queue, job)
            await self._run(jobs)

    async def _collect(self, queue: asyncio.Queue, first: _Job) -> tuple[list[_Job], object]:
        """More jobs for the batch of ``first``; returns them and a job left for the next batch."""
        jobs, size = [first], len(first.images)
        if self.max_wait <= 0:
            return jobs, None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while size < self.max_batch:
            timeout = deadline - loop.time()
            try:
                job = queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(queue.get(), timeout)
            except (asyncio.QueueEmpty, TimeoutError):
                break
            if job is _STOP or size + len(job.images) > self.max_batch:
                return jobs, job
            jobs.append(job)
            size += len(job.images)
        return jobs, None

    async def _run(self, jobs: list[_Job]) -> None:
        try:
            stack = jobs[0].images if len(jobs) == 1 else np.concatenate([j.images for j in jobs])
            proba = await anyio.to_thread.run_sync(self._run_chunks, stack)
        except Exception as exc:  # noqa: BLE001 - the requests get the error, the worker goes on
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        start = 0
        for job in jobs:
            end = start + len(job.images)
            if not job.future.done():
                job.future.set_result(proba[start:end])
            start = end

    def _run_chunks(self, stack: np.ndarray) -> np.ndarray:
        """``predict_fn`` over at most ``max_batch`` images at a time (a big request is split)."""
        parts = []
        for start in range(0, len(stack), self.max_batch):
            chunk = stack[start:start + self.max_batch]
            parts.append(np.asarray(self.predict_fn(chunk)))
            if self.on_batch is not None:
                self.on_batch(len(chunk))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
