"""Request and response schemas of the HTTP API (v1), validated at the edge with limits.

Limits come from ServeConfig so a deployment can tighten them; anything malformed, oversized or
non-finite is answered with a 4xx naming the problem, before it reaches a model replica.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

FORMATS = ("params", "arkit_csv", "npz", "mp4")
MAX_DURATION_S = 60.0
MAX_SEED = 2**32 - 1  # exact in every JSON client (JavaScript numbers stop being exact at 2**53)
MAX_ABS_VALUE = 1000.0  # expression coefficients and radians: anything larger is not a face (and 1e300 overflows float32)
MAX_PREVIEW_S = 10.0  # the MP4 preview renders every frame: bound its work separately


class TextToMotionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    prompt: str = Field(..., min_length=1, description="what the face should do")
    duration_s: float = Field(4.0, gt=0, le=MAX_DURATION_S)
    fps: int = Field(25, ge=1, le=60)
    seed: int = Field(0, ge=0, le=MAX_SEED, description="the request's own random stream: same body and seed, same answer")
    temperature: float = Field(0.8, gt=0, le=5.0)
    top_k: int = Field(0, ge=0, le=100_000)
    top_p: float = Field(1.0, gt=0, le=1.0)
    formats: list[Literal["params", "arkit_csv", "npz", "mp4"]] = Field(default_factory=lambda: ["params"], max_length=len(FORMATS))

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("prompt is blank")
        return v.strip()


class MotionParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    expression: list[list[float]] = Field(..., min_length=1, description="[T, K_exp] per-frame expression")
    rotation: list[list[float]] | None = Field(None, description="[T, 3] axis-angle head rotation (radians)")

    @field_validator("expression", "rotation")
    @classmethod
    def _finite_rectangular(cls, v, info):
        if v is None:
            return v
        widths = {len(row) for row in v}
        if len(widths) != 1:
            raise ValueError(f"{info.field_name} rows have different lengths {sorted(widths)}")
        for t, row in enumerate(v):
            for x in row:
                if not math.isfinite(x) or abs(x) > MAX_ABS_VALUE:
                    raise ValueError(f"{info.field_name} has a value outside [-{MAX_ABS_VALUE:g}, {MAX_ABS_VALUE:g}] "
                                     f"at frame {t}")
        return v


class MotionToTextRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    parameters: MotionParams
    fps: int = Field(25, ge=1, le=60)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    temperature: float = Field(0.0, ge=0, le=5.0, description="0 = greedy (the default: most faithful)")


class MotionToTextResponse(BaseModel):
    description: str
    attributes: dict
    n_frames: int
    fps: int


class TextToMotionResponse(BaseModel):
    prompt: str
    fps: int
    n_frames: int
    tokens: list[int]
    expression_names: list[str]
    parameters: dict | None = None
    arkit_csv: str | None = None
    npz_base64: str | None = None
    mp4_base64: str | None = None
