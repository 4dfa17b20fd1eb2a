"""GPU cost model of dataset generation: clips per generator family, GPU-seconds per clip, GPU-hours,
and the GPU workers a deadline needs.

GPU-seconds per clip come, in order of precedence, from
1. the user (`--clip-cost wan=95`: seconds they measured),
2. a benchmark file (benchmarks/results/diffusion_clip_cost.json): only full-size models timed on a
   GPU count; the figure is scaled to the planned clip by the FLOPs model below and to the planned
   GPU by peak bf16 throughput,
3. the FLOPs model: per denoising step a DiT costs about 2·N·L (every token through every weight)
   plus 4·layers·L²·d (QKᵀ and A·V), with L video tokens plus text tokens where text and video
   share the attention; times steps, times 2 when classifier-free guidance runs a second pass;
   plus the VAE decode; divided by peak bf16 FLOP/s × MFU.

Everything here is pure (no file or network access except the two `load_*` readers), so the
command is a thin shell and the tests check the arithmetic directly.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from tdmm_ray.config import DIFFUSION_FAMILIES, TdmmConfig
from tdmm_ray.synth.diffusion.families import family as family_rule
from tdmm_ray.synth.diffusion.generator import clip_frames

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_COST_FILE = "benchmarks/results/diffusion_clip_cost.json"
PROCEDURAL_BENCH = ROOT / "benchmarks" / "results" / "procedural.json"

# Peak dense bf16 tensor throughput (TFLOP/s, no sparsity) from NVIDIA's data sheets. H200 has the
# H100 SXM's compute (more and faster memory only); H100 PCIe is the lower-clocked card.
GPU_PEAK_TFLOPS: dict[str, float] = {"h100": 989.0, "h200": 989.0, "a100": 312.0, "l40s": 362.0, "h100-pcie": 756.0}
DEFAULT_MFU = 0.35  # what well-tuned DiT inference (bf16, flash attention) reaches on H100-class GPUs

# VAE decode, estimated per output pixel (frame x height x width): a stack of 3x3(x3) convolutions
# of 128-512 channels at full and reduced resolution, ~2e7 FLOPs. Small next to the transformer for
# every family except LTX-Video, whose transformer sees few tokens.
VAE_DECODE_FLOPS_PER_PIXEL = 2e7

# Landmarks (S3FD face box + FAN 68 points, batched) plus the batched 3D fit, per corpus frame: an
# estimate of ~150 frames per GPU-second on an H100-class GPU (detection ~300 f/s, FAN ~500 f/s,
# the fit thousands); not measured here (benchmarks/detectors.py has CPU figures only). --landmark-fps.
LANDMARK_FIT_FRAMES_PER_GPU_S = 150.0

# The procedural generator runs on CPU: frames per CPU-second of the batched renderer at 128x128
# (benchmarks/results/procedural.json); read from that file when it is there.
PROCEDURAL_FRAMES_PER_CPU_S = 110.0

# The TDMM-LM paper's run: ~80 h of video, 50.2K clips of 4-6 s (25 fps, 618x360), ~400 GPU-hours
# on 32 H200. Its generators (Wan 2.1/2.2, Open-Sora, HuMo, Veo) are not ours.
PAPER_VIDEO_HOURS = 80.0
PAPER_CLIPS = 50_200
PAPER_GPU_HOURS = 400.0
PAPER_GPUS = 32
PAPER_GPU = "h200"


@dataclass(frozen=True)
class Arch:
    """A text-to-video transformer, as much as its cost needs."""

    model: str
    params: float        # transformer parameters N
    layers: int          # transformer blocks
    hidden: int          # hidden size d
    vae_t: int           # VAE temporal compression
    vae_s: int           # VAE spatial compression
    patch_t: int         # transformer patch size in time
    patch_s: int         # transformer patch size in height and width
    text_tokens: int     # text tokens inside the same attention as the video (0: cross-attention only)
    cfg: bool            # classifier-free guidance = a second, unconditional pass per step


# Published configurations of each release (model cards and the transformer's config.json).
ARCHS: dict[str, dict[str, Arch]] = {
    "wan": {
        "1.3b": Arch("Wan2.1-T2V-1.3B", 1.3e9, 30, 1536, 4, 8, 1, 2, 0, True),
        "14b": Arch("Wan2.1-T2V-14B", 14e9, 40, 5120, 4, 8, 1, 2, 0, True),
    },
    "cogvideox": {"2b": Arch("CogVideoX-2b", 1.7e9, 30, 1920, 4, 8, 1, 2, 226, True)},
    "ltx": {"2b": Arch("LTX-Video 2B", 1.9e9, 28, 2048, 8, 32, 1, 1, 0, True)},
    # 20 dual-stream + 40 single-stream blocks; embedded (distilled) guidance: one pass per step.
    "hunyuan": {"13b": Arch("HunyuanVideo 13B", 13e9, 60, 3072, 4, 8, 1, 2, 256, False)},
}
DEFAULT_VARIANT = {f: next(iter(v)) for f, v in ARCHS.items()}


@dataclass(frozen=True)
class ClipSpec:
    """One generated clip at the family's native settings."""

    width: int
    height: int
    frames: int
    steps: int
    passes: int  # transformer passes per step: 2 with classifier-free guidance


@dataclass(frozen=True)
class Measurement:
    """One full-size GPU timing from the benchmark file."""

    family: str
    variant: str
    seconds_per_clip: float
    width: int
    height: int
    frames: int
    steps: int
    gpu: str


@dataclass(frozen=True)
class CostFile:
    path: str
    device: str
    rows: list[Measurement]
    refused: dict[str, str]  # family -> why its rows were not used


@dataclass(frozen=True)
class FamilyPlan:
    family: str
    model: str
    share: float
    video_hours: float
    clips: int
    clip_seconds: float      # the corpus clip, at synth.fps
    width: int               # native generation settings (0 for procedural)
    height: int
    frames: int
    native_fps: int
    steps: int
    passes: int
    gpu_s_per_clip: float
    gpu_hours: float
    source: str
    cpu_core_hours: float = 0.0


@dataclass(frozen=True)
class PaperComparison:
    paper_gpu_hours: float
    paper_video_hours: float
    paper_clips: int
    paper_gpu_s_per_clip: float
    paper_gpu_hours_per_video_hour: float
    paper_wall_hours_on_32: float
    gpu_s_per_clip: float | None              # ours: mean over diffusion clips
    gpu_hours_per_video_hour: float | None    # ours: diffusion GPU-h per hour of diffusion video
    gpu_hours_for_80h: float | None           # ours, at the paper's 80 h (diffusion only)
    wall_hours_on_32: float | None            # ours, all GPU work on 32 GPUs at full use (as 400/32)
    ratio: float | None                       # ours / paper, GPU-h per video hour
    note: str = ("their generator mix (Wan 2.1/2.2, Open-Sora, HuMo, Veo) differs from ours, "
                 "and their 400 GPU-h is reported, not broken down")


@dataclass(frozen=True)
class Plan:
    video_hours: float
    deadline_hours: float
    gpu: str
    utilization: float
    mfu: float
    families: list[FamilyPlan]
    frames: int                   # corpus frames through landmarks + fit
    landmark_fps: float
    landmark_gpu_hours: float
    diffusion_gpu_hours: float
    total_gpu_hours: float
    cpu_core_hours: float
    gpu_workers: int
    wall_hours: float
    paper: PaperComparison
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- parsing user input

_DEADLINE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([dhm]?)\s*$", re.IGNORECASE)


def parse_deadline(text: str) -> float:
    """'48h', '2d', '90m' or plain hours ('36', '1.5') -> hours (> 0)."""
    m = _DEADLINE.match(str(text))
    if not m:
        raise ValueError(f"deadline {text!r}: use hours, or a number with d, h or m (48h, 2d, 90m)")
    hours = float(m.group(1)) * {"d": 24.0, "h": 1.0, "m": 1 / 60, "": 1.0}[m.group(2).lower()]
    if hours <= 0:
        raise ValueError(f"deadline {text!r} must be later than now")
    return hours


def parse_pairs(text: str, what: str) -> dict[str, str]:
    """'wan=0.5,ltx=0.3' -> {'wan': '0.5', 'ltx': '0.3'} (names checked by the caller)."""
    out: dict[str, str] = {}
    for item in (s.strip() for s in str(text).split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not sep or not name or not value.strip():
            raise ValueError(f"{what} {item!r} must look like NAME=VALUE")
        if name in out:
            raise ValueError(f"{what}: {name!r} given twice")
        out[name] = value.strip()
    if not out:
        raise ValueError(f"{what} is empty")
    return out


def _positive(value: str, what: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise ValueError(f"{what}: {value!r} is not a number") from None
    if not math.isfinite(x) or x <= 0:
        raise ValueError(f"{what} must be > 0, got {value}")
    return x


def _known_generator(name: str, what: str) -> None:
    known = ("procedural", *DIFFUSION_FAMILIES)
    if name not in known:
        raise ValueError(f"{what}: unknown generator {name!r}; known: {', '.join(known)}")


def normalize_mix(weights: dict[str, float]) -> dict[str, float]:
    """Generator weights -> shares that sum to 1 (as the prompt suite balances them)."""
    if not weights:
        raise ValueError("the generator mix is empty")
    for name, w in weights.items():
        _known_generator(name, "mix")
        if not math.isfinite(w) or w <= 0:
            raise ValueError(f"mix: weight of {name!r} must be > 0, got {w}")
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items()}


def parse_mix(text: str) -> dict[str, float]:
    """'wan=0.5,ltx=0.3,cogvideox=0.2' -> shares (weights need not sum to 1)."""
    return normalize_mix({k: _positive(v, f"mix {k}") for k, v in parse_pairs(text, "mix").items()})


def parse_clip_costs(text: str) -> dict[str, float]:
    """'wan=95,ltx=8' -> GPU-seconds per clip, measured by the user."""
    out = {k: _positive(v, f"clip cost of {k}") for k, v in parse_pairs(text, "clip cost").items()}
    for name in out:
        _known_generator(name, "clip cost")
        if name == "procedural":
            raise ValueError("clip cost: procedural clips are rendered on CPU, they have no GPU cost")
    return out


def parse_variants(text: str) -> dict[str, str]:
    """'wan=14b' -> which published model of a family to cost."""
    out = parse_pairs(text, "variant")
    for name, v in out.items():
        if name not in ARCHS:
            raise ValueError(f"variant: {name!r} is not a diffusion family; known: {', '.join(ARCHS)}")
        if v.lower() not in ARCHS[name]:
            raise ValueError(f"variant: {name} has {', '.join(ARCHS[name])}, not {v!r}")
        out[name] = v.lower()
    return out


def gpu_of_device(device: str) -> str:
    """torch.cuda.get_device_name() -> a key of GPU_PEAK_TFLOPS."""
    name = device.upper()
    for needle, key in (("H200", "h200"), ("H100 PCIE", "h100-pcie"), ("H100", "h100"),
                        ("A100", "a100"), ("L40S", "l40s")):
        if needle in name:
            return key
    raise ValueError(f"measured on {device!r}, a GPU without a peak-throughput entry "
                     f"({', '.join(GPU_PEAK_TFLOPS)}): cannot scale it; pass --clip-cost FAMILY=SECONDS instead")


# ----------------------------------------------------------------------------- the FLOPs model

def video_tokens(arch: Arch, width: int, height: int, frames: int) -> int:
    latent_frames = (frames - 1) // arch.vae_t + 1
    stride = arch.vae_s * arch.patch_s
    return math.ceil(latent_frames / arch.patch_t) * (height // stride) * (width // stride)


def clip_flops(arch: Arch, spec: ClipSpec) -> float:
    """Transformer FLOPs over all steps and passes, plus the VAE decode, for one clip."""
    L = video_tokens(arch, spec.width, spec.height, spec.frames) + arch.text_tokens
    per_pass = 2 * arch.params * L + 4 * arch.layers * L * L * arch.hidden
    return per_pass * spec.steps * spec.passes + VAE_DECODE_FLOPS_PER_PIXEL * spec.width * spec.height * spec.frames


def estimate_seconds(arch: Arch, spec: ClipSpec, gpu: str, mfu: float = DEFAULT_MFU) -> float:
    return clip_flops(arch, spec) / (GPU_PEAK_TFLOPS[gpu] * 1e12 * mfu)


# ----------------------------------------------------------------------------- measured figures

def parse_cost_file(data: dict, path: str = "cost file") -> CostFile:
    """The benchmark's JSON -> full-size GPU rows; a CPU file is refused outright, tiny rows per family."""
    device = str(data.get("device") or "cpu")
    if not data.get("cuda") or device.lower() == "cpu":
        raise ValueError(f"{path} was measured on {device} (cuda: false): a CPU time says nothing about "
                         "GPU-hours; run benchmarks/diffusion_clip_cost.py on a GPU, or pass --clip-cost FAMILY=SECONDS")
    gpu = gpu_of_device(device)
    rows: list[Measurement] = []
    refused: dict[str, str] = {}
    for i, row in enumerate(data.get("results") or []):
        fam = row.get("family")
        if fam not in ARCHS:
            raise ValueError(f"{path}: row {i} has family {fam!r}; known: {', '.join(ARCHS)}")
        if row.get("scale") != "full":
            # A tiny (random-init, shrunken) model times the plumbing, not the real network.
            refused.setdefault(fam, f"only scale={row.get('scale')!r} rows (a shrunken model, not the real network)")
            continue
        try:
            variant = str(row.get("variant", DEFAULT_VARIANT[fam])).lower()
            if variant not in ARCHS[fam]:
                raise ValueError(f"variant {variant!r} is not one of {', '.join(ARCHS[fam])}")
            rows.append(Measurement(fam, variant, _positive(str(row["seconds_per_clip"]), "seconds_per_clip"),
                                    int(row["width"]), int(row["height"]), int(row["frames"]), int(row["steps"]), gpu))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: row {i} ({fam}): {err}") from None
    for m in rows:
        refused.pop(m.family, None)
    return CostFile(path, device, rows, refused)


def load_cost_file(path: str | Path) -> CostFile:
    p = Path(path)
    if not p.exists():
        raise ValueError(f"cost file {p} does not exist (benchmarks/diffusion_clip_cost.py writes it on a GPU)")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"cost file {p} is not JSON: {err}") from None
    return parse_cost_file(data, str(p))


def measured_seconds(m: Measurement, arch: Arch, spec: ClipSpec, gpu: str) -> tuple[float, str]:
    """A measurement scaled to the planned clip (FLOPs ratio) and GPU (peak ratio), and how."""
    flops = clip_flops(arch, spec) / clip_flops(ARCHS[m.family][m.variant],
                                                 ClipSpec(m.width, m.height, m.frames, m.steps, spec.passes))
    peak = GPU_PEAK_TFLOPS[m.gpu] / GPU_PEAK_TFLOPS[gpu]
    how = f"measured {m.gpu} {m.width}x{m.height} {m.frames}f {m.steps} steps"
    if abs(flops - 1) > 1e-6:
        how += f", x{flops:.2f} by FLOPs model"
    if m.gpu != gpu:
        how += f", x{peak:.2f} peak bf16 {m.gpu}->{gpu}"
    return m.seconds_per_clip * flops * peak, how


def load_procedural_rate(path: Path = PROCEDURAL_BENCH, width: int = 128, height: int = 128) -> tuple[float, str]:
    """Frames per CPU-second of the batched procedural renderer: the benchmark row at this size, or
    at 128x128, or the built-in constant when the benchmark file is absent."""
    if not path.exists():
        return PROCEDURAL_FRAMES_PER_CPU_S, "estimate (110 frames/CPU-s at 128x128)"
    try:
        results = {r["size"]: r["batched"]["frames_per_cpu_s"] for r in json.loads(path.read_text())["results"]}
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: unexpected layout ({err})") from None
    size = f"{width}x{height}" if f"{width}x{height}" in results else "128x128"
    if size not in results:
        return PROCEDURAL_FRAMES_PER_CPU_S, "estimate (110 frames/CPU-s at 128x128)"
    return float(results[size]), f"measured {size} ({path.name})"


# ----------------------------------------------------------------------------- the plan

def corpus_clip(cfg: TdmmConfig, family: str | None) -> tuple[int, int]:
    """(native frames generated, corpus frames delivered) for a clip of the mean planned length, by the
    synthesis stage's own rule (tdmm_ray.synth.diffusion.generator.clip_frames)."""
    planned = round((cfg.synth.min_seconds + cfg.synth.max_seconds) / 2 * cfg.synth.fps)
    if family is None:
        return 0, planned
    return clip_frames(planned, cfg.synth.fps, family_rule(family), cfg.diffusion.family(family))


def _paper_comparison(families: list[FamilyPlan], total_gpu_hours: float) -> PaperComparison:
    diffusion = [f for f in families if f.family != "procedural"]
    clips = sum(f.clips for f in diffusion)
    hours = sum(f.video_hours for f in diffusion)
    gpu_h = sum(f.gpu_hours for f in diffusion)
    per_vh = gpu_h / hours if hours else None
    paper_per_vh = PAPER_GPU_HOURS / PAPER_VIDEO_HOURS
    return PaperComparison(
        paper_gpu_hours=PAPER_GPU_HOURS, paper_video_hours=PAPER_VIDEO_HOURS, paper_clips=PAPER_CLIPS,
        paper_gpu_s_per_clip=PAPER_GPU_HOURS * 3600 / PAPER_CLIPS,
        paper_gpu_hours_per_video_hour=paper_per_vh,
        paper_wall_hours_on_32=PAPER_GPU_HOURS / PAPER_GPUS,
        gpu_s_per_clip=gpu_h * 3600 / clips if clips else None,
        gpu_hours_per_video_hour=per_vh,
        gpu_hours_for_80h=per_vh * PAPER_VIDEO_HOURS if per_vh is not None else None,
        wall_hours_on_32=total_gpu_hours / PAPER_GPUS,
        ratio=per_vh / paper_per_vh if per_vh is not None else None)


def plan_generation(cfg: TdmmConfig, *, hours: float, deadline_hours: float, mix: dict[str, float] | None = None,
                    gpu: str = "h100", utilization: float = 0.8, mfu: float = DEFAULT_MFU,
                    clip_costs: dict[str, float] | None = None, cost_file: CostFile | None = None,
                    variants: dict[str, str] | None = None,
                    landmark_fps: float = LANDMARK_FIT_FRAMES_PER_GPU_S,
                    procedural_rate: tuple[float, str] = (PROCEDURAL_FRAMES_PER_CPU_S, "estimate")) -> Plan:
    """The whole plan. `mix` defaults to the config's prompts.generators; clip lengths, native sizes,
    frame rates and steps come from the config (synth.*, diffusion.<family>.*)."""
    if gpu not in GPU_PEAK_TFLOPS:
        raise ValueError(f"unknown GPU {gpu!r}; known: {', '.join(GPU_PEAK_TFLOPS)}")
    for name, value, upper in (("hours", hours, None), ("deadline", deadline_hours, None),
                               ("utilization", utilization, 1.0), ("mfu", mfu, 1.0),
                               ("landmark fps", landmark_fps, None)):
        if not math.isfinite(value) or value <= 0 or (upper is not None and value > upper):
            raise ValueError(f"{name} must be > 0{f' and <= {upper}' if upper else ''}, got {value}")
    shares = normalize_mix(dict(mix if mix is not None else cfg.prompts.generators))
    clip_costs = dict(clip_costs or {})
    variants = dict(variants or {})
    notes: list[str] = []

    families: list[FamilyPlan] = []
    for fam, share in shares.items():
        native, corpus = corpus_clip(cfg, None if fam == "procedural" else fam)
        clip_s = corpus / cfg.synth.fps
        video_h = hours * share
        clips = math.ceil(video_h * 3600 / clip_s)
        if fam == "procedural":
            rate, how = procedural_rate
            cpu_h = clips * corpus / rate / 3600
            families.append(FamilyPlan(fam, "procedural renderer (CPU)", share, video_h, clips, clip_s, 0, 0, 0,
                                       cfg.synth.fps, 0, 0, 0.0, 0.0, f"CPU only: {rate:g} frames/CPU-s, {how}",
                                       cpu_core_hours=cpu_h))
            continue
        mc = cfg.diffusion.family(fam)
        arch = ARCHS[fam][variants.get(fam, DEFAULT_VARIANT[fam])]
        # diffusers runs the unconditional pass only when guidance_scale > 1.
        spec = ClipSpec(mc.width, mc.height, native, mc.steps, 2 if arch.cfg and mc.guidance_scale > 1 else 1)
        if fam in clip_costs:
            seconds, how = clip_costs[fam], "--clip-cost (user measured)"
        elif cost_file is not None and any(m.family == fam for m in cost_file.rows):
            candidates = [measured_seconds(m, arch, spec, gpu) + (m,) for m in cost_file.rows if m.family == fam]
            # The measurement closest to the planned clip needs the least extrapolation.
            seconds, how, _ = min(candidates, key=lambda c: abs(math.log(c[0] / c[2].seconds_per_clip)))
        elif cost_file is not None and fam in cost_file.refused:
            raise ValueError(f"{cost_file.path} has {cost_file.refused[fam]} for {fam}: refusing to plan with "
                             f"them; measure scale=full on a GPU or pass --clip-cost {fam}=SECONDS")
        else:
            seconds, how = estimate_seconds(arch, spec, gpu, mfu), f"estimate (FLOPs model, MFU {mfu:g})"
            if cost_file is not None:
                notes.append(f"{cost_file.path} has no {fam} row: {fam} uses the FLOPs model")
        if corpus < round((cfg.synth.min_seconds + cfg.synth.max_seconds) / 2 * cfg.synth.fps):
            notes.append(f"{fam}: diffusion.{fam}.max_frames={mc.max_frames} at {mc.fps} fps caps clips at "
                         f"{clip_s:.2f} s, so more clips are needed")
        families.append(FamilyPlan(fam, arch.model, share, video_h, clips, clip_s, spec.width, spec.height,
                                   spec.frames, mc.fps, spec.steps, spec.passes, seconds, clips * seconds / 3600, how))

    frames = sum(f.clips * round(f.clip_seconds * cfg.synth.fps) for f in families)
    landmark_h = frames / landmark_fps / 3600
    diffusion_h = sum(f.gpu_hours for f in families)
    total_h = diffusion_h + landmark_h
    workers = math.ceil(total_h / (deadline_hours * utilization) - 1e-9) if total_h > 0 else 0
    wall_h = total_h / (workers * utilization) if workers else 0.0
    return Plan(hours, deadline_hours, gpu, utilization, mfu, families, frames, landmark_fps, landmark_h,
                diffusion_h, total_h, sum(f.cpu_core_hours for f in families), workers, wall_h,
                _paper_comparison(families, total_h), notes)


# ----------------------------------------------------------------------------- output
