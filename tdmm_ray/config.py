"""Typed configuration: one pydantic model per stage, presets as YAML, overrides from the CLI.

Validation happens here, at the edge: a bad value fails at load time with the field's dotted
path and what is allowed, before any Ray worker starts.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PRESETS = ("tiny", "small", "paper")
DIFFUSION_FAMILIES = ("wan", "cogvideox", "ltx", "hunyuan")  # text-to-video generators (tdmm_ray.synth.diffusion)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RayConfig(Section):
    address: str | None = Field(None, description="Ray cluster address; None starts a local instance (or uses RAY_ADDRESS)")
    num_cpus: int | None = Field(None, ge=1, description="CPUs for a local instance (None: all)")


class PromptsConfig(Section):
    n_prompts: int = Field(200, ge=1)
    generators: dict[str, float] = Field(default_factory=lambda: {"procedural": 1.0})
    holdout_fraction: float = Field(0.15, ge=0.0, lt=1.0, description="share of emotion x head-motion pairs held out")
    test_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="share of in-distribution prompts kept for test")
    transition_fraction: float = Field(0.1, ge=0.0, le=1.0, description="share of prompts with an emotion transition")

    @field_validator("generators")
    @classmethod
    def _weights_positive(cls, v: dict[str, float]) -> dict[str, float]:
        known = {"procedural", *DIFFUSION_FAMILIES}
        if not v:
            raise ValueError("at least one generator is needed")
        for name, w in v.items():
            if name not in known:
                raise ValueError(f"unknown generator {name!r}; allowed: {', '.join(sorted(known))}")
            if w <= 0:
                raise ValueError(f"generator {name!r} weight must be > 0, got {w}")
        return v

    @field_validator("holdout_fraction")
    @classmethod
    def _train_keeps_every_axis(cls, v: float) -> float:
        # Every emotion must keep a head motion in train and vice versa (tdmm_ray.prompts.splits).
        from tdmm_ray.prompts.taxonomy import EMOTIONS, HEAD_MOTIONS

        pairs = len(EMOTIONS) * len(HEAD_MOTIONS)
        limit = (pairs - max(len(EMOTIONS), len(HEAD_MOTIONS))) / pairs
        if round(v * pairs) > pairs - max(len(EMOTIONS), len(HEAD_MOTIONS)):
            raise ValueError(f"{v} would hold out so many emotion x head-motion pairs that some emotion or head "
                             f"motion has none left in train; use at most {limit:.3f}")
        return v


class FaceConfig(Section):
    model: Literal["builtin", "ict", "flame"] = "ict"
    path: str | None = Field(None, description="model file/folder: ict's .npz (default: the copy shipped in the package) "
                             "or flame's folder with generic_model.pkl")
    n_identity: int | None = Field(None, ge=1, description="truncate identity modes (None: all; FLAME: 100 shape)")
    n_expression: int | None = Field(None, ge=1, le=100, description="FLAME expression components (None: 50, as in the paper)")

    @model_validator(mode="after")
    def _path_needed(self) -> "FaceConfig":
        if self.model == "flame" and not self.path:
            raise ValueError(f"face.path is required for face.model={self.model!r}")
        return self


class SynthConfig(Section):
    fps: int = Field(25, ge=1, le=120)
    min_seconds: float = Field(4.0, gt=0)
    max_seconds: float = Field(6.0, gt=0)
    width: int = Field(256, ge=32, le=4096)
    height: int = Field(256, ge=32, le=4096)
    clips_per_prompt: int = Field(1, ge=1)
    shard_size: int = Field(8, ge=1, description="clips per shard (the unit of resume)")
    render: bool = Field(True, description="False: plan-only procedural clips (ground-truth parameters and "
                         "projected landmarks, no frames, no MP4; ~10x cheaper); needs landmarks.detector=projected")
    pool: "StagePoolConfig" = Field(default_factory=lambda: StagePoolConfig())

    @model_validator(mode="after")
    def _durations(self) -> "SynthConfig":
        if self.max_seconds < self.min_seconds:
            raise ValueError(f"synth.max_seconds ({self.max_seconds}) < synth.min_seconds ({self.min_seconds})")
        return self


class StagePoolConfig(Section):
    """Ray Data actor pool of one stage: elastic between min and max actors."""

    min_actors: int = Field(1, ge=1)
    max_actors: int = Field(2, ge=1)
    num_cpus: float = Field(1.0, ge=0)
    num_gpus: float = Field(0.0, ge=0)
    batch_size: int = Field(1, ge=1, description="shards per actor call (a shard holds synth.shard_size clips)")

    @model_validator(mode="after")
    def _bounds(self) -> "StagePoolConfig":
        if self.max_actors < self.min_actors:
            raise ValueError(f"max_actors ({self.max_actors}) < min_actors ({self.min_actors})")
        return self


GPU_POOL = dict(min_actors=1, max_actors=4, num_cpus=4.0, num_gpus=1.0)  # one GPU per generator actor


class DiffusionModelConfig(Section):
    """One text-to-video family (diffusers pipeline). Clips are generated at the family's native
    size and frame rate, then resampled to the corpus spec (synth.fps, synth.width x synth.height)."""

    path: str = Field("", description="diffusers model directory: local path or s3://bucket/prefix")
    steps: int = Field(50, ge=1, description="denoising steps")
    guidance_scale: float = Field(5.0, ge=0)
    width: int = Field(832, ge=16, le=4096, description="native generation width (pixels)")
    height: int = Field(480, ge=16, le=4096, description="native generation height (pixels)")
    fps: int = Field(16, ge=1, le=120, description="the frame rate the family was trained at")
    max_frames: int = Field(81, ge=1, description="longest clip the family generates well (frames)")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="auto: bfloat16 on GPU, float32 on CPU")
    batch_size: int = Field(2, ge=1, description="clips per pipeline call")
    pool: StagePoolConfig = Field(default_factory=lambda: StagePoolConfig(**GPU_POOL))


# Each family's published inference settings: native size, frame rate, longest clip, steps, guidance.
DIFFUSION_NATIVE = {
    "wan": dict(width=832, height=480, fps=16, max_frames=81, steps=50, guidance_scale=5.0),
    "cogvideox": dict(width=720, height=480, fps=8, max_frames=49, steps=50, guidance_scale=6.0),
    "ltx": dict(width=704, height=480, fps=24, max_frames=161, steps=50, guidance_scale=3.0),
    "hunyuan": dict(width=960, height=544, fps=24, max_frames=129, steps=50, guidance_scale=6.0),
}


class DiffusionConfig(Section):
    cache_dir: str | None = Field(None, description="where s3:// model directories are downloaded (None: $TDMM_MODEL_CACHE or a temp folder)")
    wan: DiffusionModelConfig = Field(default_factory=lambda: DiffusionModelConfig(**DIFFUSION_NATIVE["wan"]))
    cogvideox: DiffusionModelConfig = Field(default_factory=lambda: DiffusionModelConfig(**DIFFUSION_NATIVE["cogvideox"]))
    ltx: DiffusionModelConfig = Field(default_factory=lambda: DiffusionModelConfig(**DIFFUSION_NATIVE["ltx"]))
    hunyuan: DiffusionModelConfig = Field(default_factory=lambda: DiffusionModelConfig(**DIFFUSION_NATIVE["hunyuan"]))

    @model_validator(mode="before")
    @classmethod
    def _native_defaults(cls, data: Any) -> Any:
        # `--set diffusion.ltx.path=...` must keep LTX's native settings, not take the generic defaults.
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for f in DIFFUSION_FAMILIES:
            if isinstance(data.get(f), dict):
                given = data[f]
                pool = {**GPU_POOL, **given["pool"]} if isinstance(given.get("pool"), dict) else given.get("pool")
                data[f] = {**DIFFUSION_NATIVE[f], **given, **({"pool": pool} if pool is not None else {})}
        return data

    def family(self, name: str) -> DiffusionModelConfig:
        if name not in DIFFUSION_FAMILIES:
            raise ValueError(f"{name!r} is not a diffusion generator; known: {', '.join(DIFFUSION_FAMILIES)}")
        return getattr(self, name)


class LandmarksConfig(Section):
    detector: Literal["projected", "dlib", "fan", "mediapipe"] = "projected"
    noise_px: float = Field(0.0, ge=0, description="Gaussian noise added to projected landmarks (pixels)")
    points: Literal["ibug68", "mediapipe468"] = Field(
        "ibug68", description="point set of projected landmarks: the 68 iBUG points, or MediaPipe's 468 "
                              "through the face model's embedding (detector=projected only)")
    pool: StagePoolConfig = Field(default_factory=StagePoolConfig)

    @model_validator(mode="after")
    def _points_only_projected(self) -> "LandmarksConfig":
        # A real detector's point set is fixed by the detector (registry.DETECTOR_POINTS).
        if self.points != "ibug68" and self.detector != "projected":
            raise ValueError(f"landmarks.points={self.points!r} is for detector=projected only; "
                             f"the {self.detector!r} detector's point set is fixed")
        return self


class FitConfig(Section):
    iterations: int = Field(7, ge=1, description="full steps after the rigid ones (see BatchedFitter.schedule)")
    smoothness: float = Field(0.01, ge=0, description="temporal smoothness of expression and pose")
    expression_prior: float = Field(1e-3, ge=0)
    identity_prior: float = Field(1e-2, ge=0)
    max_nme: float = Field(0.08, gt=0, description="QC: reject clips whose mean landmark NME exceeds this")
    min_frames: int = Field(8, ge=1)
    rigid_iterations: int = Field(2, ge=0, description="pose-only steps before the full solve")
    shared_iterations: int = Field(1, ge=0, description="of `iterations`, how many also move identity and "
                                   "focal (the rest refine per-frame parameters with them held)")
    robust: Literal["geman_mcclure", "huber", "none"] = "geman_mcclure"
    robust_scale: float = Field(0.05, gt=0, description="robust-loss scale in inter-ocular distances")
    focal_prior: float = Field(1e-2, ge=0, description="weight pulling log focal to its initial value")
    fov_init_deg: float = Field(30.0, gt=1, lt=170, description="initial horizontal field of view")
    max_abs_identity: float = Field(5.0, gt=0, description="QC: largest plausible |identity| (sigmas)")
    max_rotation_deg: float = Field(80.0, gt=0, description="QC: largest plausible head rotation")
    unobserved_prior: float = Field(1.0, ge=0, description="extra expression prior on channels no landmark "
                                    "moves (< fit.observed_iod); see tdmm_ray/fit/priors.py")
    observed_iod: float = Field(0.005, ge=0, description="landmark displacement (outer-eye-corner distances, per "
                                "unit weight) below which a channel counts as unobserved")
    undriven_prior: float = Field(1.0, ge=0, description="extra expression prior on ARKit channels the procedural "
                                  "generator never drives (0: fit them freely)")
    pool: StagePoolConfig = Field(default_factory=StagePoolConfig)


class TokenizerConfig(Section):
    codebook_size: int = Field(256, ge=2)
    code_dim: int = Field(64, ge=1)
    hidden: int = Field(128, ge=8)
    downsample: Literal[1, 2, 4] = 1
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(2e-3, gt=0)
    window: int = Field(64, ge=4, description="frames per training window")
    vertex_loss_weight: float = Field(1.0, ge=0)
    commitment: float = Field(0.25, ge=0)
    num_workers: int = Field(1, ge=1)
    loss_vertices: int = Field(512, ge=1, description="vertices (most expression-driven) in the geometry loss")
    head_codes: int = Field(8, ge=0, description="head-rotation codes of a two-stream tokenizer; codebook_size "
                            "(the LM's motion vocabulary) = expression codes x head_codes; 0: one stream")
    vertex_loss: Literal["face_local", "posed"] = Field(
        "face_local", description="geometry loss on the expression-only mesh (+ a rotation term) or the posed mesh")
    rotation_loss_weight: float = Field(1.0, ge=0, description="face_local: weight of the head-rotation term")
    dead_channel_std: float = Field(0.005, ge=0, description="expression channels with a smaller std in the "
                                    "training corpus weigh 0 (decoded as their mean)")
    ignore_undriven: bool = Field(True, description="channels the generator's ground truth never drives weigh 0")
    pool: StagePoolConfig = Field(default_factory=lambda: StagePoolConfig(batch_size=1),
                                  description="`tdmm tokenize` actor pool; batch_size = input shards per call")


    @model_validator(mode="after")
    def _product_code(self) -> "TokenizerConfig":
        if self.head_codes and (self.head_codes < 2 or self.codebook_size % self.head_codes
                                or self.codebook_size // self.head_codes < 2):
            raise ValueError(f"tokenizer.codebook_size ({self.codebook_size}) must be tokenizer.head_codes "
                             f"({self.head_codes}, >= 2) x an expression codebook of at least 2 codes (or head_codes=0)")
        return self


class LMConfig(Section):
    base: str | None = Field(None, description="Hugging Face model dir (local or s3://); None builds a small model from config")
    arch: Literal["qwen3", "llama"] = "qwen3"
    hidden_size: int = Field(128, ge=16)
    layers: int = Field(2, ge=1)
    heads: int = Field(4, ge=1)
    vocab_size: int = Field(2000, ge=256, description="BPE vocabulary trained on corpus text (small model only)")
    max_length: int = Field(384, ge=32)
    attribute_header: bool = Field(True, description="Motion2Language answers start with 'Emotion: X. Intensity: Y. "
                                   "Head: Z.' before the caption (attributes in a fixed order)")
    guidance: float = Field(1.0, ge=1.0, le=10.0, description="Language2Motion classifier-free guidance scale "
                            "against the empty prompt (1 = off; learnt from train.l2m_uncond)")
    motion_init: Literal["codes", "mean"] = Field("codes", description="start each <motion_k> embedding from what "
                                                  "code k decodes to (needs the run's tokenizer; else the mean row)")


class TrainConfig(Section):
    strategy: Literal["ddp", "deepspeed"] = "ddp"
    zero_stage: Literal[1, 2, 3] = 2
    offload: bool = False
    bf16: bool = False
    num_workers: int = Field(1, ge=1)
    use_gpu: bool = False
    steps: int = Field(200, ge=1)
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(1e-3, gt=0)
    warmup_steps: int = Field(20, ge=0)
    eval_every: int = Field(50, ge=1)
    checkpoint_every: int = Field(100, ge=1)
    max_failures: int = Field(2, ge=0)
    m2l_fraction: float = Field(0.5, ge=0.0, le=1.0, description="share of Motion2Language examples in the mix")
    val_fraction: float = Field(0.1, ge=0.0, le=0.5, description="share of train-split clips held back for "
                                "validation (checkpoint selection, early stopping); never a held-out composition")
    patience: int = Field(4, ge=0, description="stop after this many validations without a new best (0: never)")
    l2m_uncond: float = Field(0.1, ge=0.0, le=0.5, description="share of Language2Motion examples trained with "
                              "an empty prompt (the unconditional model that lm.guidance contrasts with)")
    recombine: float = Field(0.0, ge=0.0, le=64.0, description="extra training clips per train clip, each the "
                             "expression stream of one clip with the head stream of another (two-stream tokenizer; "
                             "never a held-out composition)")


class ServeConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(2, ge=1)
    max_batch_size: int = Field(32, ge=1, description="requests decoded together; the profile favours large batches")
    batch_wait_timeout_s: float = Field(0.002, ge=0, description="wait for more requests only while none are queued")
    max_frames: int = Field(1500, ge=1)
    max_prompt_chars: int = Field(500, ge=1)
    api_key: str | None = None
    target_ongoing_requests: float = Field(4.0, gt=0, description="autoscaling target per replica")
    upscale_delay_s: float = Field(5.0, ge=0)
    downscale_delay_s: float = Field(30.0, ge=0)
    replica_cpus: float = Field(0.5, ge=0)


class EvalConfig(Section):
    evaluator_epochs: int = Field(40, ge=1, description="epochs of the text-motion evaluator and the motion classifier")
    evaluator_dim: int = Field(64, ge=8)
    max_clips: int = Field(256, ge=2, description="clips per split evaluated (a seeded sample beyond this)")
    temperature: float = Field(0.8, gt=0, description="Language2Motion sampling temperature in evaluation")
    multimodality_prompts: int = Field(16, ge=0)
    multimodality_repeats: int = Field(3, ge=2)
    render_examples: int = Field(3, ge=0)


class TdmmConfig(Section):
    preset: str = "custom"
    seed: int = 0
    storage: str = Field("runs/tiny", description="run folder: local path or s3://bucket/prefix")
    ray: RayConfig = Field(default_factory=RayConfig)
    prompts: PromptsConfig = Field(default_factory=PromptsConfig)
    face: FaceConfig = Field(default_factory=FaceConfig)
    synth: SynthConfig = Field(default_factory=SynthConfig)
    diffusion: DiffusionConfig = Field(default_factory=DiffusionConfig)
    landmarks: LandmarksConfig = Field(default_factory=LandmarksConfig)
    fit: FitConfig = Field(default_factory=FitConfig)
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    lm: LMConfig = Field(default_factory=LMConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="after")
    def _plan_only_needs_projected(self) -> "TdmmConfig":
        if not self.synth.render and self.landmarks.detector != "projected":
            raise ValueError(f"synth.render=false makes clips without video; landmarks.detector={self.landmarks.detector!r} "
                             "needs video: set synth.render=true or landmarks.detector=projected")
        return self

    def digest(self, *sections: str) -> str:
        """Stable hash of the whole config, or of the named sections (what a stage depends on)."""
        data = self.model_dump(mode="json")
        if data["landmarks"]["points"] == "ibug68":  # the default, added later: runs made before keep their digests
            del data["landmarks"]["points"]
        if sections:
            data = {k: data[k] for k in sections}
        blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the field and what is allowed."""


def _format_validation_error(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "literal_error":
            msg = f"got {e['input']!r}; allowed values: {e['ctx']['expected']}"
        elif e["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see `tdmm config --preset tiny` for all fields)"
        lines.append(f"  {where}: {msg}")
    return "invalid configuration:\n" + "\n".join(lines)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """['train.steps=10', 'face.model=ict'] -> nested dict; values parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.field=value")
        key, raw = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with an earlier one")
        node[parts[-1]] = _yaml_value(raw, f"override {item!r}") if raw != "" else None
    return out


def _yaml_problem(err: yaml.YAMLError) -> str:
    """One line for a YAML error: what went wrong and where (no multi-line snippet)."""
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return f"{err.problem or err.context}{where}"
    return str(err).splitlines()[0]


def _yaml_value(text: str, source: str) -> Any:
    """yaml.safe_load with errors as one-line ConfigErrors: a `!!python/object` tag, a syntax error."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{source} is not valid YAML: {_yaml_problem(err)}") from None


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in extra.items():
        merged[k] = _merge(merged[k], v) if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
    return merged


def preset_data(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; allowed: {', '.join(PRESETS)}")
    text = resources.files("tdmm_ray.presets").joinpath(f"{name}.yaml").read_text()
    return yaml.safe_load(text) or {}


def load_config(preset: str | None = None, file: str | Path | None = None, overrides: list[str] | dict | None = None) -> TdmmConfig:
    """Preset YAML, then a user YAML file, then `section.field=value` overrides, validated once."""
    data: dict[str, Any] = preset_data(preset) if preset else {}
    if file is not None:
        path = Path(file)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist or is not a file")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"config file {path} cannot be read as UTF-8 text: {err}") from None
        loaded = _yaml_value(text, f"config file {path}")
        if not isinstance(loaded, (dict, type(None))):
            raise ConfigError(f"config file {path} must be a YAML mapping of sections (e.g. `train: {{steps: 10}}`), "
                              f"got a {type(loaded).__name__}")
        data = _merge(data, loaded or {})
    if overrides:
        data = _merge(data, overrides if isinstance(overrides, dict) else parse_overrides(overrides))
    try:
        return TdmmConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err)) from None


def dump_yaml(cfg: TdmmConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


SynthConfig.model_rebuild()
