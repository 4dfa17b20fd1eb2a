"""The two model deployments. Each batches requests with @serve.batch and scales on its own.

Model work runs in a worker thread (`asyncio.to_thread`) so the replica's event loop keeps
answering health checks and queueing the next batch while a batch is decoding.
"""

from __future__ import annotations

import asyncio
import logging

from ray import serve

log = logging.getLogger(__name__)


@serve.deployment(name="Language2Motion")
class Language2Motion:
    def __init__(self, run_url: str, max_batch_size: int = 8, batch_wait_timeout_s: float = 0.01):
        from tdmm_ray.inference.translator import Translator

        self.translator = Translator.load(run_url)
        self.generate.set_max_batch_size(max_batch_size)
        self.generate.set_batch_wait_timeout_s(batch_wait_timeout_s)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def generate(self, requests: list[dict]) -> list[dict]:
        return await asyncio.to_thread(self.translator.text_to_motion_batch, requests)

    async def __call__(self, request: dict) -> dict:
        return await self.generate(request)

    def info(self) -> dict:
        return self.translator.info()

    def check_health(self) -> None:
        if self.translator is None:
            raise RuntimeError("model not loaded")


@serve.deployment(name="Motion2Language")
class Motion2Language:
    def __init__(self, run_url: str, max_batch_size: int = 8, batch_wait_timeout_s: float = 0.01):
        from tdmm_ray.inference.translator import Translator

        self.translator = Translator.load(run_url)
        self.describe.set_max_batch_size(max_batch_size)
        self.describe.set_batch_wait_timeout_s(batch_wait_timeout_s)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def describe(self, requests: list[dict]) -> list[dict]:
        return await asyncio.to_thread(self.translator.motion_to_text_batch, requests)

    async def __call__(self, request: dict) -> dict:
        return await self.describe(request)

    def check_health(self) -> None:
        if self.translator is None:
            raise RuntimeError("model not loaded")
