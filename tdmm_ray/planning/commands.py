"""CLI: `tdmm plan-generation --hours 80 --deadline 48h` — GPU-hours and GPU workers for a dataset run.

The generator mix, clip lengths and each family's native settings come from the config (default:
the paper preset); --mix, --clip-cost, --cost-file and --variant override them. --write-overlay
writes a kustomize overlay over cluster/k8s/overlays/prod that sizes the GPU worker group."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import yaml

from tdmm_ray.cli_args import add_config_args, config_from_args
from tdmm_ray.cluster_jobs import manifests
from tdmm_ray.cluster_jobs.overlays import CLUSTER_PREFIXES
from tdmm_ray.planning import cost
from tdmm_ray.planning.cost import DEFAULT_COST_FILE, DEFAULT_MFU, GPU_PEAK_TFLOPS, LANDMARK_FIT_FRAMES_PER_GPU_S
from tdmm_ray.planning.report import format_plan


def overlay_files(workers: int, directory: str | Path) -> dict[str, str]:
    """File name -> text of a kustomize overlay (in `directory`) over the prod overlay that sets the
    GPU worker group's maxReplicas to `workers` in the RayCluster, every RayJob and the RayService."""
    # Find the group by name rather than trusting its position in the list.
    groups = [g["groupName"] for g in manifests.cluster_spec()["workerGroupSpecs"]]
    index = groups.index("gpu")
    header = f"# Written by `tdmm plan-generation --write-overlay`: GPU worker group sized to {workers}.\n"
    files: dict[str, str] = {}
    patches = []
    for kind, prefix in CLUSTER_PREFIXES.items():
        name = f"{kind.lower()}-gpu-workers.yaml"
        ops = [{"op": "replace", "path": f"{prefix}/workerGroupSpecs/{index}/maxReplicas", "value": workers}]
        files[name] = header + yaml.safe_dump(ops, sort_keys=False)
        patches.append({"path": name, "target": {"kind": kind}})
    prod = os.path.relpath(manifests.K8S_DIR / "overlays" / "prod", Path(directory).resolve())
    files["kustomization.yaml"] = header + yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [prod], "patches": patches}, sort_keys=False)
    return files


def _cmd_plan(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    plan = cost.plan_generation(
        cfg,
        hours=args.hours,
        deadline_hours=cost.parse_deadline(args.deadline),
        mix=cost.parse_mix(args.mix) if args.mix else None,
        gpu=args.gpu,
        utilization=args.utilization,
        mfu=args.mfu,
        clip_costs=cost.parse_clip_costs(args.clip_cost) if args.clip_cost else None,
        cost_file=cost.load_cost_file(args.cost_file) if args.cost_file else None,
        variants=cost.parse_variants(args.variant) if args.variant else None,
        landmark_fps=args.landmark_fps,
        procedural_rate=cost.load_procedural_rate(width=cfg.synth.width, height=cfg.synth.height),
    )
    print(format_plan(plan), end="")
    if args.json:
        data: dict[str, Any] = dataclasses.asdict(plan)
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.write_overlay:
        if not plan.gpu_workers:
            raise ValueError("--write-overlay: this plan needs no GPU workers")
        out = Path(args.write_overlay)
        out.mkdir(parents=True, exist_ok=True)
        for name, text in overlay_files(plan.gpu_workers, out).items():
            (out / name).write_text(text)
        print(f"wrote {out}/ (kubectl apply -k {out}): gpu group maxReplicas {plan.gpu_workers}; set the GPU "
              "pools' max_actors (diffusion.<family>.pool, landmarks.pool, fit.pool) to match in the ConfigMap")
    return 0


def _float_arg(lo: float, hi: float | None = None):
    def parse(text: str) -> float:
        try:
            x = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (x > lo and (hi is None or x <= hi)):
            raise argparse.ArgumentTypeError(f"{text} must be > {lo:g}" + (f" and <= {hi:g}" if hi else ""))
        return x
    return parse


def register(sub) -> None:

    p = sub.add_parser(
        "plan-generation", help="GPU-hours and GPU workers to generate a dataset by a deadline",
        description="Cost model of dataset generation: clips per generator family, GPU-seconds per clip "
                    "(--clip-cost, else --cost-file, else a FLOPs estimate), landmark + fit GPU-hours, and the "
                    "GPU workers the RayCluster's gpu group needs to finish by the deadline.")
    p.add_argument("--hours", type=_float_arg(0), default=80.0, help="hours of video (default: %(default)s, the paper's)")
    p.add_argument("--deadline", required=True, help="time available: 48h, 2d, 90m or plain hours")
    p.add_argument("--mix", help="generator weights, e.g. wan=0.5,ltx=0.3,cogvideox=0.2 (default: prompts.generators)")
    p.add_argument("--gpu", choices=list(GPU_PEAK_TFLOPS), default="h100", help="GPU type (default: %(default)s)")
    p.add_argument("--clip-cost", metavar="FAMILY=SECONDS[,...]", help="measured GPU-seconds per clip, e.g. wan=95,ltx=8")
    p.add_argument("--cost-file", metavar="JSON", help=f"benchmark results, e.g. {DEFAULT_COST_FILE} (GPU, full-size rows only)")
    p.add_argument("--variant", metavar="FAMILY=VARIANT", help="which published model to cost, e.g. wan=14b (default wan=1.3b)")
    p.add_argument("--utilization", type=_float_arg(0, 1), default=0.8,
                   help="share of GPU time doing useful work (start-up, stragglers; default: %(default)s)")
    p.add_argument("--mfu", type=_float_arg(0, 1), default=DEFAULT_MFU, help="model FLOPs utilization of the estimate (default: %(default)s)")
    p.add_argument("--landmark-fps", type=_float_arg(0), default=LANDMARK_FIT_FRAMES_PER_GPU_S,
                   help="landmarks + fit frames per GPU-second (default: %(default)s, an estimate)")
    p.add_argument("--json", metavar="FILE", help="also write the plan as JSON")
    p.add_argument("--write-overlay", metavar="DIR", help="write a kustomize overlay setting the gpu group's maxReplicas")
    p.add_argument("--preset", default="paper", help="tiny | small | paper (default: %(default)s)")
    p.add_argument("--config", help="YAML file merged over the preset")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override any field, e.g. --set synth.max_seconds=8 (repeatable)")
    p.set_defaults(func=_cmd_plan)
