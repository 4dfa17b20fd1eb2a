"""The two model deployments. Each batches its requests and scales on its own.

Batching: requests wait in one queue, and whenever the model is free everything waiting (up to
max_batch_size) becomes the next batch; the wait (batch_wait_timeout_s) applies only while the queue
is empty. Ray's @serve.batch forms the next batch as soon as the previous one has *started*
(max_concurrent_batches only limits how many run), so under load its batches stay small: measured
here, batches of 4 of a possible 32 with 40 requests waiting, five seconds in the queue. Forming the
batch when the model is free makes batch size follow load.

Model work runs in a worker thread (`asyncio.to_thread`) so the replica's event loop keeps
answering health checks and queueing requests while a batch is decoding. Each answer carries
`_timing` (time queued, the batch's model time, wall and CPU, and its size), which the ingress turns
into a `Server-Timing` header: the profile of a request without a profiler.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable

from ray import serve

log = logging.getLogger(__name__)


class Batcher:
    """One queue, one consumer: a batch is formed when the previous one has finished."""

    def __init__(self, fn: Callable[[list[dict]], list[dict]], max_batch_size: int, wait_s: float):
        self.fn, self.max_batch_size, self.wait_s = fn, max_batch_size, wait_s
        self.queue: asyncio.Queue | None = None
        self.worker: asyncio.Task | None = None

    async def submit(self, request: dict) -> dict:
        if self.worker is None or self.worker.done():  # created on the replica's running loop
            self.queue = self.queue or asyncio.Queue()
            self.worker = asyncio.create_task(self._work())
        future = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(({**request, "_enqueued": time.perf_counter()}, future))
        return await future

    async def _next_batch(self) -> list:
        batch = [await self.queue.get()]
        deadline = time.perf_counter() + self.wait_s
        while len(batch) < self.max_batch_size:
            if self.queue.empty():
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            else:
                batch.append(self.queue.get_nowait())
        return [(r, f) for r, f in batch if not f.cancelled()]  # a caller that gave up costs nothing

    async def _work(self) -> None:
        while True:
            batch = await self._next_batch()
            try:
                results = await run_batch(self.fn, [r for r, _ in batch])
                assert len(results) == len(batch), f"{len(batch)} requests but {len(results)} answers"
            except Exception as err:  # noqa: BLE001 - a bug: these requests fail, the loop goes on
                log.exception("batch failed")
                results = [err] * len(batch)
            for (_, future), result in zip(batch, results):
                if not future.done():
                    future.set_exception(result) if isinstance(result, Exception) else future.set_result(result)


async def run_batch(fn, requests: list[dict]) -> list[dict]:
    """fn over the batch in a worker thread; per-request timing attached; a failure of the whole
    call (a bug, not a request) is every request's 500 rather than a lost batch."""
    def timed():  # CPU time of the worker thread: what the batch cost, however loaded the machine is
        cpu = time.thread_time()
        return fn(requests), (time.thread_time() - cpu) * 1000

    start = time.perf_counter()
    try:
        results, cpu_ms = await asyncio.to_thread(timed)
    except Exception as err:  # noqa: BLE001
        from tdmm_ray.inference.translator import failure

        results, cpu_ms = [failure(err) for _ in requests], 0.0
    model_ms = (time.perf_counter() - start) * 1000
    for req, res in zip(requests, results):
        res["_timing"] = {"queue_ms": (start - req.pop("_enqueued")) * 1000, "model_ms": model_ms,
                          "model_cpu_ms": cpu_ms, "batch": len(requests)}
    return results


def pin_threads() -> None:
    """One torch thread per CPU the replica holds (at least one): a tiny model's matrices gain
    nothing from more, and extra threads only spin against the other replicas."""
    import ray
    import torch

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(max(1, int(cpus)))


@serve.deployment(name="Language2Motion")
class Language2Motion:
    def __init__(self, run_url: str, max_batch_size: int = 32, batch_wait_timeout_s: float = 0.002):
        from tdmm_ray.inference.translator import Translator

        pin_threads()
        self.translator = Translator.load(run_url)
        self.batcher = Batcher(functools.partial(self.translator.text_to_motion_batch, isolate=True),
                               max_batch_size, batch_wait_timeout_s)

    async def __call__(self, request: dict) -> dict:
        return await self.batcher.submit(request)

    def info(self) -> dict:
        return self.translator.info()

    def check_health(self) -> None:
        if self.translator is None:
            raise RuntimeError("model not loaded")


@serve.deployment(name="Motion2Language")
class Motion2Language:
    def __init__(self, run_url: str, max_batch_size: int = 32, batch_wait_timeout_s: float = 0.002):
        from tdmm_ray.inference.translator import Translator

        pin_threads()
        self.translator = Translator.load(run_url)
        self.batcher = Batcher(functools.partial(self.translator.motion_to_text_batch, isolate=True),
                               max_batch_size, batch_wait_timeout_s)

    async def __call__(self, request: dict) -> dict:
        return await self.batcher.submit(request)

    def check_health(self) -> None:
        if self.translator is None:
            raise RuntimeError("model not loaded")
