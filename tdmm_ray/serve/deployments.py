"""The two model deployments. Each batches requests with @serve.batch and scales on its own.

Model work runs in a worker thread (`asyncio.to_thread`) so the replica's event loop keeps
answering health checks and queueing the next batch while a batch is decoding. Each answer carries
`_timing` (time queued for a batch, the batch's model time and size), which the ingress turns into a
`Server-Timing` header: the profile of a request without a profiler.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time

from ray import serve

log = logging.getLogger(__name__)


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
    def __init__(self, run_url: str, max_batch_size: int = 8, batch_wait_timeout_s: float = 0.01):
        from tdmm_ray.inference.translator import Translator

        pin_threads()
        self.translator = Translator.load(run_url)
        self.generate.set_max_batch_size(max_batch_size)
        self.generate.set_batch_wait_timeout_s(batch_wait_timeout_s)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def generate(self, requests: list[dict]) -> list[dict]:
        return await run_batch(functools.partial(self.translator.text_to_motion_batch, isolate=True), requests)

    async def __call__(self, request: dict) -> dict:
        return await self.generate({**request, "_enqueued": time.perf_counter()})

    def info(self) -> dict:
        return self.translator.info()

    def check_health(self) -> None:
        if self.translator is None:
            raise RuntimeError("model not loaded")


@serve.deployment(name="Motion2Language")
class Motion2Language:
    def __init__(self, run_url: str, max_batch_size: int = 8, batch_wait_timeout_s: float = 0.01):
        from tdmm_ray.inference.translator import Translator

        pin_threads()
        self.translator = Translator.load(run_url)
        self.describe.set_max_batch_size(max_batch_size)
        self.describe.set_batch_wait_timeout_s(batch_wait_timeout_s)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def describe(self, requests: list[dict]) -> list[dict]:
        return await run_batch(functools.partial(self.translator.motion_to_text_batch, isolate=True), requests)

    async def __call__(self, request: dict) -> dict:
        return await self.describe({**request, "_enqueued": time.perf_counter()})

    def check_health(self) -> None:
        if self.translator is None:
            raise RuntimeError("model not loaded")
