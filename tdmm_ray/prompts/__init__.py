"""The prompt suite: taxonomy, balanced sampling, natural prompts and captions, the attribute parser.

Public API (imported lazily so `tdmm_ray.prompts.taxonomy` stays cheap to import):
    build_suite(cfg) -> list[dict]             rows with PROMPT_COLUMNS
    caption(attrs, rng) -> str                 a third-person description of a clip
    prompt_text(attrs, rng) -> str             a text-to-video prompt
    parse_attributes(text) -> dict             attributes read back from free text
    balance_report(rows) -> dict               counts per axis and split
    run_prompts(cfg, storage) -> pyarrow.Table the stage
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "build_suite": "tdmm_ray.prompts.suite",
    "plan_suite": "tdmm_ray.prompts.suite",
    "caption": "tdmm_ray.prompts.render",
    "prompt_text": "tdmm_ray.prompts.render",
    "parse_attributes": "tdmm_ray.prompts.parser",
    "balance_report": "tdmm_ray.prompts.balance",
    "run_prompts": "tdmm_ray.prompts.stage",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tdmm_ray.prompts' has no attribute {name!r}")
