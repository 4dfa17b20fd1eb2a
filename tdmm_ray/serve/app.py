"""One FastAPI ingress in front of the Language2Motion and Motion2Language deployments.

`build_app({"run_url": ...})` is the import path `serve build` and the RayService's serveConfigV2
use (tdmm_ray.serve.app:build_app); `tdmm serve RUN_URL` runs the same application locally.
"""


import json
import logging
import time
from typing import Annotated

import numpy as np
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import Field, TypeAdapter, ValidationError
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.datastructures import UploadFile

from tdmm_ray import __version__
from tdmm_ray.config import ServeConfig
from tdmm_ray.serve import guard
from tdmm_ray.serve.api import (MAX_PREVIEW_S, MotionToTextRequest, MotionToTextResponse, TextToMotionRequest,
                                TextToMotionResponse)
from tdmm_ray.serve.deployments import Language2Motion, Motion2Language
from tdmm_ray.serve.guard import check_api_key  # noqa: F401  (re-exported: the key check's public name)
from tdmm_ray.serve.uploads import csv_motion, npz_motion

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 8 * 1024 * 1024
FORM_FPS = TypeAdapter(Annotated[int, Field(ge=1, le=60)])

api = FastAPI(title="tdmm-ray", version=__version__,
              description="Text <-> 3D facial motion. Language2Motion: prompt -> per-frame face parameters "
                          "(ARKit CSV, .npz, MP4 preview). Motion2Language: parameters -> description.")
api.add_middleware(guard.Guard, default_max_body=MAX_BODY_BYTES)
api.add_exception_handler(RequestValidationError, guard.on_validation_error)
api.add_exception_handler(HTTPException, guard.on_http_error)


def inline_refs(schema: dict) -> dict:
    """A pydantic schema with its local `$defs` references written out (OpenAPI resolves `#/...`
    against the whole document, where `$defs` does not exist)."""
    defs = schema.pop("$defs", {})

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: walk(v) for k, v in node.items()}
        return [walk(v) for v in node] if isinstance(node, list) else node

    return walk(schema)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_json(data: bytes):
    """Strict JSON: NaN and Infinity are refused (Python's json module would accept them)."""
    try:
        return json.loads(data, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError
        raise HTTPException(400, f"body is not valid JSON: {err}") from None


def answer(result: dict, response: Response, started: float, sent: float) -> dict:
    """A replica's per-request result, or the 4xx/5xx it carries for this request alone. Sets
    Server-Timing: ingress (checks before the call), handle (the round trip to the model replica),
    queue (waiting there for a batch), model (the batch's work: wall and CPU time) and the batch size."""
    timing = result.pop("_timing", None)
    if timing:
        handle_ms = (time.perf_counter() - sent) * 1000
        response.headers["Server-Timing"] = (
            f"ingress;dur={(sent - started) * 1000:.2f}, handle;dur={handle_ms:.2f}, "
            f"queue;dur={timing['queue_ms']:.2f}, model;dur={timing['model_ms']:.2f}, "
            f"model_cpu;dur={timing['model_cpu_ms']:.2f}, batch;desc={timing['batch']}")
    if "error" in result:
        raise HTTPException(result.get("status", 500), result["error"])
    return result


@serve.deployment(name="Ingress", max_ongoing_requests=256)
@serve.ingress(api)
class Ingress:
    def __init__(self, l2m: DeploymentHandle, m2l: DeploymentHandle, limits: dict):
        self.l2m, self.m2l = l2m, m2l
        self.limits = ServeConfig.model_validate(limits)
        api.state.api_key = self.limits.api_key  # read by guard.Guard before any route runs
        api.state.max_body_bytes = MAX_BODY_BYTES
        self._info = None

    @api.get("/healthz")
    async def healthz(self) -> dict:
        return {"status": "ok"}

    async def _model_info(self) -> dict:
        if self._info is None:
            info = await self.l2m.info.remote()
            info.pop("run", None)  # where the run is stored (a bucket name on S3) is not for clients
            self._info = info
        return self._info

    @api.get("/v1/info")
    async def info(self) -> dict:
        return {"api": "v1", "tdmm_ray": __version__, **(await self._model_info()),
                "limits": {"max_frames": self.limits.max_frames, "max_prompt_chars": self.limits.max_prompt_chars,
                           "max_body_bytes": MAX_BODY_BYTES, "max_preview_s": MAX_PREVIEW_S}}

    @api.post("/v1/text-to-motion", response_model=TextToMotionResponse, response_model_exclude_none=True)
    async def text_to_motion(self, body: TextToMotionRequest, response: Response) -> dict:
        started = time.perf_counter()
        if len(body.prompt) > self.limits.max_prompt_chars:
            raise HTTPException(413, f"prompt has {len(body.prompt)} characters; the limit is {self.limits.max_prompt_chars}")
        model_fps = (await self._model_info())["fps"]
        frames = max(round(body.duration_s * body.fps), round(body.duration_s * model_fps))
        if frames > self.limits.max_frames:
            raise HTTPException(413, f"duration_s*fps = {frames} frames; the limit is {self.limits.max_frames}")
        if "mp4" in body.formats and body.duration_s > MAX_PREVIEW_S:
            raise HTTPException(413, f"the mp4 preview is rendered for clips up to {MAX_PREVIEW_S:g} s; "
                                     f"asked for {body.duration_s:g} s (the other formats have no such limit)")
        sent = time.perf_counter()
        return answer(await self.l2m.remote(body.model_dump()), response, started, sent)

    @api.post("/v1/motion-to-text", response_model=MotionToTextResponse,
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": inline_refs(MotionToTextRequest.model_json_schema())},
                  "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                      "file": {"type": "string", "format": "binary", "description": ".npz (expression, rotation) or Live Link Face CSV"},
                      "fps": {"type": "integer", "minimum": 1, "maximum": 60, "default": 25}}}}}}})
    async def motion_to_text(self, request: Request, response: Response) -> dict:
        started = time.perf_counter()
        info = await self._model_info()
        n_expression = len(info["expression_names"])
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            expression, rotation, fps, arkit = await self._upload(request, n_expression)
            body = {"fps": fps, "seed": 0, "temperature": 0.0}
        else:
            body = self._json_motion(parse_json(await request.body()))
            expression = np.asarray(body["parameters"]["expression"], dtype=np.float32)
            rotation = body["parameters"]["rotation"]
            rotation = None if rotation is None else np.asarray(rotation, dtype=np.float32)
            fps, arkit = body["fps"], False
            if expression.shape[1] != n_expression:
                raise HTTPException(422, f"expression has {expression.shape[1]} channels per frame; "
                                         f"this model expects {n_expression}")
        n = len(expression)
        if n > self.limits.max_frames:
            raise HTTPException(413, f"{n} frames; the limit is {self.limits.max_frames}")
        # The work is the clip at the model's frame rate: 1,500 frames at fps=1 would be 37,500 frames.
        resampled = round(n * info["fps"] / fps)
        if resampled > self.limits.max_frames:
            raise HTTPException(413, f"{n} frames at fps={fps} are {resampled} frames at the model's {info['fps']} fps; "
                                     f"the limit is {self.limits.max_frames}")
        if rotation is not None and rotation.shape != (n, 3):
            raise HTTPException(422, f"rotation must be [{n},3] to match expression, got {list(rotation.shape)}")
        parameters = {"expression": expression, "rotation": rotation}
        sent = time.perf_counter()
        return answer(await self.m2l.remote({**body, "parameters": parameters, "fps": fps, "arkit": arkit}),
                      response, started, sent)

    def _json_motion(self, fields) -> dict:
        try:
            return MotionToTextRequest.model_validate(fields).model_dump()
        except ValidationError as err:
            raise HTTPException(422, guard.validation_errors(err.errors(include_url=False))) from None

    async def _upload(self, request: Request, n_expression: int):
        """multipart: `file` (.npz or Live Link Face .csv) and optional `fps` -> arrays, checked."""
        form = await request.form(max_files=1, max_fields=4)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(422, "multipart request needs a 'file' field (.npz or ARKit .csv)")
        raw_fps = form.get("fps", "25")
        try:
            fps = FORM_FPS.validate_python(raw_fps)
        except ValidationError:
            raise HTTPException(422, f"form field fps={guard.clip(raw_fps, 32)!r}: expected a whole number from 1 to 60") from None
        name, data = upload.filename or "", await upload.read()
        try:
            if name.endswith(".npz"):
                expression, rotation = npz_motion(data, self.limits.max_frames, n_expression)
                return expression, rotation, fps, False
            if name.endswith(".csv"):
                curves, head = csv_motion(data, self.limits.max_frames)
                return curves, head, fps, True
        except ValueError as err:
            raise HTTPException(422, f"upload {guard.clip(name, 64)!r}: {err}") from None
        raise HTTPException(415, f"upload {guard.clip(name, 64)!r}: expected a .npz or an ARKit .csv file")


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
