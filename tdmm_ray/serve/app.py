"""One FastAPI ingress in front of the Language2Motion and Motion2Language deployments.

`build_app({"run_url": ...})` is the import path `serve build` and the RayService's serveConfigV2
use (tdmm_ray.serve.app:build_app); `tdmm serve RUN_URL` runs the same application locally.
"""


import io
import json
import logging

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from ray import serve
from ray.serve.handle import DeploymentHandle

from tdmm_ray import __version__
from tdmm_ray.config import ServeConfig
from tdmm_ray.serve.api import (MotionParams, MotionToTextRequest, MotionToTextResponse, TextToMotionRequest,
                                TextToMotionResponse)
from tdmm_ray.serve.deployments import Language2Motion, Motion2Language

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 8 * 1024 * 1024

api = FastAPI(title="tdmm-ray", version=__version__,
              description="Text <-> 3D facial motion. Language2Motion: prompt -> per-frame face parameters "
                          "(ARKit CSV, .npz, MP4 preview). Motion2Language: parameters -> description.")


@api.middleware("http")
async def _limit_body(request: Request, call_next):
    length = request.headers.get("content-length")
    if length is not None and int(length) > MAX_BODY_BYTES:
        return JSONResponse({"detail": f"request body of {length} bytes exceeds {MAX_BODY_BYTES}"}, status_code=413)
    return await call_next(request)


def _motion_from_upload(name: str, data: bytes) -> dict:
    """An uploaded .npz (expression [T,K], rotation [T,3]) or Live Link Face CSV -> request fields."""
    from tdmm_ray.export.arkit_csv import read_arkit_csv

    if name.endswith(".npz"):
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                if "expression" not in z:
                    raise HTTPException(422, "uploaded .npz has no 'expression' array")
                out = {"expression": z["expression"].tolist()}
                if "rotation" in z:
                    out["rotation"] = z["rotation"].tolist()
                return {"parameters": out}
        except (ValueError, OSError) as err:
            raise HTTPException(422, f"uploaded .npz is not readable: {err}") from None
    if name.endswith(".csv"):
        try:
            curves, rotation, _ = read_arkit_csv(data.decode("utf-8", errors="strict"))
        except (ValueError, UnicodeDecodeError) as err:
            raise HTTPException(422, f"uploaded CSV is not a Live Link Face ARKit CSV: {err}") from None
        return {"parameters": {"expression": curves.tolist(), "rotation": rotation.tolist()}, "arkit": True}
    raise HTTPException(415, f"upload {name!r}: expected a .npz or an ARKit .csv file")


def check_api_key(key, headers) -> None:
    """With a key configured, a request needs `X-API-Key: key` or `Authorization: Bearer key`."""
    if key and headers.get("x-api-key") != key and headers.get("authorization") != f"Bearer {key}":
        raise HTTPException(401, "missing or wrong API key (X-API-Key header)")


@serve.deployment(name="Ingress", max_ongoing_requests=256)
@serve.ingress(api)
class Ingress:
    def __init__(self, l2m: DeploymentHandle, m2l: DeploymentHandle, limits: dict):
        self.l2m, self.m2l = l2m, m2l
        self.limits = ServeConfig.model_validate(limits)
        self._info = None

    def _authorize(self, request: Request) -> None:
        check_api_key(self.limits.api_key, request.headers)

    @api.get("/healthz")
    async def healthz(self) -> dict:
        return {"status": "ok"}

    async def _model_info(self) -> dict:
        if self._info is None:
            self._info = await self.l2m.info.remote()
        return self._info

    @api.get("/v1/info")
    async def info(self, request: Request) -> dict:
        self._authorize(request)
        return {"api": "v1", "tdmm_ray": __version__, **(await self._model_info()),
                "limits": {"max_frames": self.limits.max_frames, "max_prompt_chars": self.limits.max_prompt_chars,
                           "max_body_bytes": MAX_BODY_BYTES}}

    @api.post("/v1/text-to-motion", response_model=TextToMotionResponse, response_model_exclude_none=True)
    async def text_to_motion(self, body: TextToMotionRequest, request: Request) -> dict:
        self._authorize(request)
        if len(body.prompt) > self.limits.max_prompt_chars:
            raise HTTPException(413, f"prompt has {len(body.prompt)} characters; the limit is {self.limits.max_prompt_chars}")
        frames = round(body.duration_s * body.fps)
        if frames > self.limits.max_frames:
            raise HTTPException(413, f"duration_s*fps = {frames} frames; the limit is {self.limits.max_frames}")
        return await self.l2m.remote(body.model_dump())

    @api.post("/v1/motion-to-text", response_model=MotionToTextResponse)
    async def motion_to_text(self, request: Request) -> dict:
        self._authorize(request)
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            form = await request.form()
            upload = form.get("file")
            if upload is None or not hasattr(upload, "read"):
                raise HTTPException(422, "multipart request needs a 'file' field (.npz or ARKit .csv)")
            fields = _motion_from_upload(upload.filename or "", await upload.read())
            fields["fps"] = int(form.get("fps", 25))
        else:
            try:
                fields = json.loads(await request.body())
            except json.JSONDecodeError as err:
                raise HTTPException(400, f"body is not valid JSON: {err}") from None
        arkit = bool(fields.pop("arkit", False)) if isinstance(fields, dict) else False
        try:
            body = MotionToTextRequest.model_validate(fields)
        except ValidationError as err:
            # No echo of the input: it may hold NaN, which JSON cannot carry back.
            detail = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in err.errors(include_url=False, include_input=False)]
            raise HTTPException(422, detail) from None
        n = len(body.parameters.expression)
        width = len(body.parameters.expression[0])
        expected = 52 if arkit else len((await self._model_info())["expression_names"])
        if width != expected:
            raise HTTPException(422, f"expression has {width} channels per frame; this model expects {expected}")
        if n > self.limits.max_frames:
            raise HTTPException(413, f"{n} frames; the limit is {self.limits.max_frames}")
        rot = body.parameters.rotation
        if rot is not None and (len(rot) != n or len(rot[0]) != 3):
            raise HTTPException(422, f"rotation must be [{n},3] to match expression, got [{len(rot)},{len(rot[0])}]")
        return await self.m2l.remote({**body.model_dump(), "arkit": arkit})


def build_app(args: dict) -> serve.Application:
    """Application builder: args = {"run_url": ..., plus any ServeConfig field to override}."""
    if "run_url" not in args:
        raise ValueError("build_app needs args.run_url (the trained run folder, local or s3://)")
    run_url = args["run_url"]
    limits = ServeConfig.model_validate({k: v for k, v in args.items() if k != "run_url"}).model_dump()
    scfg = ServeConfig.model_validate(limits)

    def options(name: str) -> dict:
        return dict(
            name=name,
            max_ongoing_requests=max(2, scfg.max_batch_size * 2),
            autoscaling_config={
                "min_replicas": scfg.min_replicas,
                "max_replicas": scfg.max_replicas,
                "target_ongoing_requests": scfg.target_ongoing_requests,
                "upscale_delay_s": scfg.upscale_delay_s,
                "downscale_delay_s": scfg.downscale_delay_s,
            },
            ray_actor_options={"num_cpus": scfg.replica_cpus},
        )

    l2m = Language2Motion.options(**options("Language2Motion")).bind(run_url, scfg.max_batch_size, scfg.batch_wait_timeout_s)
    m2l = Motion2Language.options(**options("Motion2Language")).bind(run_url, scfg.max_batch_size, scfg.batch_wait_timeout_s)
    return Ingress.bind(l2m, m2l, limits)
