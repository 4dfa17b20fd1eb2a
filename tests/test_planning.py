"""`tdmm plan-generation`: the cost model's arithmetic, the precedence of measured figures, the CLI."""

from __future__ import annotations

import json
import math

import pytest

from tdmm_ray.cli import main
from tdmm_ray.config import TdmmConfig, load_config
from tdmm_ray.planning import cost
from tdmm_ray.planning.cost import ARCHS, ClipSpec


@pytest.fixture
def cfg() -> TdmmConfig:
    return TdmmConfig()  # synth 4-6 s at 25 fps, every family at its native settings


@pytest.mark.parametrize("text, hours", [("48h", 48), ("2d", 48), ("90m", 1.5), ("36", 36), ("1.5D", 36), (" 12 h ", 12)])
def test_deadline_parsing(text, hours):
    assert cost.parse_deadline(text) == pytest.approx(hours)


@pytest.mark.parametrize("text", ["", "abc", "-3h", "0", "0h", "5x", "h", "inf", "nan", "2d4h"])
def test_bad_deadlines_name_the_problem(text):
    with pytest.raises(ValueError, match="deadline"):
        cost.parse_deadline(text)


def test_mix_parsing():
    assert cost.parse_mix("wan=2,ltx=1,cogvideox=1") == {"wan": 0.5, "ltx": 0.25, "cogvideox": 0.25}
    for bad, why in [("wan=0.5,foo=0.5", "unknown generator"), ("wan=-1", "> 0"), ("wan", "NAME=VALUE"),
                     ("wan=1,wan=2", "twice"), ("wan=x", "not a number"), ("", "empty")]:
        with pytest.raises(ValueError, match=why):
            cost.parse_mix(bad)
    with pytest.raises(ValueError, match="CPU"):
        cost.parse_clip_costs("procedural=3")
    assert cost.parse_variants("wan=14B") == {"wan": "14b"}
    with pytest.raises(ValueError, match="1.3b, 14b"):
        cost.parse_variants("wan=7b")


def test_worker_count_by_hand(cfg):
    # 10 h of 5 s clips = 7200 clips x 100 GPU-s = 200 GPU-h; landmarks 7200 x 125 frames / 150 f/s = 1.667 GPU-h.
    plan = cost.plan_generation(cfg, hours=10, deadline_hours=10, mix={"wan": 1.0}, clip_costs={"wan": 100.0},
                                utilization=0.8)
    (wan,) = plan.families
    assert (wan.clips, wan.clip_seconds, wan.source) == (7200, 5.0, "--clip-cost (user measured)")
    assert wan.gpu_hours == pytest.approx(200.0)
    assert plan.frames == 900_000
    assert plan.landmark_gpu_hours == pytest.approx(900_000 / 150 / 3600)
    assert plan.total_gpu_hours == pytest.approx(201.6667, abs=1e-3)
    assert plan.gpu_workers == math.ceil(201.6667 / 8) == 26
    assert plan.wall_hours == pytest.approx(201.6667 / (26 * 0.8), abs=1e-3)
    assert plan.wall_hours <= 10
    # Exactly 25 workers' worth stays 25 (no round-up from floating-point noise).
    plan = cost.plan_generation(cfg, hours=10, deadline_hours=10, mix={"wan": 1.0}, clip_costs={"wan": 100.0},
                                landmark_fps=1e12)
    assert plan.gpu_workers == 25


def test_procedural_only_needs_cpu_not_diffusion_gpus(cfg):
    plan = cost.plan_generation(cfg, hours=1, deadline_hours=1, mix={"procedural": 1.0}, procedural_rate=(100.0, "x"))
    (proc,) = plan.families
    assert proc.gpu_hours == 0 and plan.diffusion_gpu_hours == 0
    assert proc.cpu_core_hours == pytest.approx(720 * 125 / 100 / 3600)
    assert plan.paper.ratio is None


def test_flops_model(cfg):
    wan = ARCHS["wan"]["1.3b"]
    spec = ClipSpec(832, 480, 81, 50, 2)
    assert cost.video_tokens(wan, 832, 480, 81) == 21 * 30 * 52
    # Sanity: Wan 1.3B, 81 frames at 832x480, 50 steps with CFG on one H100 at MFU 0.35: about a minute or two.
    assert 10 < cost.estimate_seconds(wan, spec, "h100", 0.35) < 300
    vae = cost.VAE_DECODE_FLOPS_PER_PIXEL * 832 * 480 * 81
    doubled = cost.clip_flops(wan, ClipSpec(832, 480, 81, 100, 2)) - vae
    assert doubled == pytest.approx(2 * (cost.clip_flops(wan, spec) - vae))
    assert cost.clip_flops(wan, ClipSpec(832, 480, 81, 50, 1)) - vae == pytest.approx((cost.clip_flops(wan, spec) - vae) / 2)
    assert cost.estimate_seconds(wan, spec, "a100") == pytest.approx(cost.estimate_seconds(wan, spec, "h100") * 989 / 312)
    # Joint text tokens count in CogVideoX's attention; LTX's 8x32x32 VAE leaves few tokens.
    assert cost.video_tokens(ARCHS["cogvideox"]["2b"], 720, 480, 49) == 13 * 30 * 45
    assert cost.video_tokens(ARCHS["ltx"]["2b"], 704, 480, 121) == 16 * 15 * 22
    assert cost.estimate_seconds(ARCHS["wan"]["14b"], spec, "h100") > 5 * cost.estimate_seconds(wan, spec, "h100")


def test_frame_rounding(cfg):
    # A 5 s corpus clip (125 frames at 25 fps): Wan 4k+1 at 16 fps, LTX 8k+1 at 24 fps, CogVideoX 8k+1 at 8 fps.
    assert cost.corpus_clip(cfg, "wan") == (81, 125)
    assert cost.corpus_clip(cfg, "ltx") == (121, 125)
    assert cost.corpus_clip(cfg, "cogvideox") == (41, 125)
    # CogVideoX stops at 49 frames (6 s at 8 fps): an 8 s mean clip is cut short, so more clips are needed.
    long = load_config(None, None, ["synth.min_seconds=6", "synth.max_seconds=10"])
    native, corpus = cost.corpus_clip(long, "cogvideox")
    assert native == 49 and corpus == 151
    plan = cost.plan_generation(long, hours=1, deadline_hours=1, mix={"cogvideox": 1.0})
    assert plan.families[0].clips == math.ceil(3600 / (151 / 25))
    assert any("caps clips" in n for n in plan.notes)


def _cost_file(rows, device="NVIDIA H100 80GB HBM3", cuda=True):
    return {"device": device, "cuda": cuda, "results": rows}


WAN_ROW = {"family": "wan", "scale": "full", "seconds_per_clip": 60.0, "width": 832, "height": 480, "frames": 81,
           "steps": 50, "fps": 16}


def test_measured_cost_precedence_and_scaling(cfg):
    measured = cost.parse_cost_file(_cost_file([WAN_ROW]))
    plan = cost.plan_generation(cfg, hours=1, deadline_hours=1, mix={"wan": 1, "ltx": 1}, cost_file=measured)
    wan, ltx = plan.families
    assert wan.gpu_s_per_clip == pytest.approx(60.0) and wan.source.startswith("measured h100")
    assert ltx.source.startswith("estimate") and any("no ltx row" in n for n in plan.notes)
    # Another GPU: scaled by peak bf16 throughput, and said so.
    a100 = cost.plan_generation(cfg, hours=1, deadline_hours=1, mix={"wan": 1}, cost_file=measured, gpu="a100")
    assert a100.families[0].gpu_s_per_clip == pytest.approx(60.0 * 989 / 312)
    assert "h100->a100" in a100.families[0].source
    # A shorter measured clip is scaled up to the planned one by the FLOPs model.
    short = cost.parse_cost_file(_cost_file([{**WAN_ROW, "frames": 41}]))
    scaled = cost.plan_generation(cfg, hours=1, deadline_hours=1, mix={"wan": 1}, cost_file=short).families[0]
    wan_arch = ARCHS["wan"]["1.3b"]
    ratio = cost.clip_flops(wan_arch, ClipSpec(832, 480, 81, 50, 2)) / cost.clip_flops(wan_arch, ClipSpec(832, 480, 41, 50, 2))
    assert ratio > 2 and scaled.gpu_s_per_clip == pytest.approx(60.0 * ratio)
    assert "FLOPs model" in scaled.source
    # --clip-cost wins over the file.
    user = cost.plan_generation(cfg, hours=1, deadline_hours=1, mix={"wan": 1}, cost_file=measured, clip_costs={"wan": 7.0})
    assert user.families[0].gpu_s_per_clip == 7.0


def test_cpu_and_tiny_measurements_are_refused(cfg):
    with pytest.raises(ValueError, match="cpu.*GPU"):
        cost.parse_cost_file(_cost_file([WAN_ROW], device="cpu", cuda=False))
    with pytest.raises(ValueError, match="cuda: false"):
        cost.parse_cost_file(_cost_file([WAN_ROW], cuda=False))
    tiny = cost.parse_cost_file(_cost_file([{**WAN_ROW, "scale": "tiny", "seconds_per_clip": 0.2}]))
    assert tiny.rows == [] and "wan" in tiny.refused
    with pytest.raises(ValueError, match="tiny.*--clip-cost wan="):
        cost.plan_generation(cfg, hours=1, deadline_hours=1, mix={"wan": 1}, cost_file=tiny)
    # A user figure for that family makes the refused rows irrelevant.
    assert cost.plan_generation(cfg, hours=1, deadline_hours=1, mix={"wan": 1}, cost_file=tiny,
                                clip_costs={"wan": 50}).families[0].gpu_s_per_clip == 50
    with pytest.raises(ValueError, match="peak-throughput"):
        cost.parse_cost_file(_cost_file([WAN_ROW], device="Tesla V100-SXM2-32GB"))
    assert cost.gpu_of_device("NVIDIA H200") == "h200" and cost.gpu_of_device("NVIDIA H100 PCIe") == "h100-pcie"


def test_paper_comparison_numbers(cfg):
    plan = cost.plan_generation(cfg, hours=80, deadline_hours=12.5, mix={"wan": 1}, clip_costs={"wan": 28.7})
    p = plan.paper
    assert p.paper_gpu_s_per_clip == pytest.approx(28.69, abs=0.01)
    assert p.paper_wall_hours_on_32 == 12.5 and p.paper_gpu_hours_per_video_hour == 5.0
    # 57,600 clips of 5 s at 28.7 s each: 459 GPU-h, 1.15x the paper's 400 (its clips average 5.7 s).
    assert p.gpu_s_per_clip == pytest.approx(28.7)
    assert p.ratio == pytest.approx(57_600 * 28.7 / 3600 / 400)
    assert "Open-Sora" in p.note


def test_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "plan.json"
    rc = main(["plan-generation", "--hours", "80", "--deadline", "48h", "--mix", "wan=0.4,cogvideox=0.2,ltx=0.4",
               "--gpu", "h200", "--json", str(out), "--write-overlay", str(tmp_path / "overlay")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "GPU workers" in text and "TDMM-LM paper" in text and "estimate (FLOPs model" in text
    data = json.loads(out.read_text())
    assert [f["family"] for f in data["families"]] == ["wan", "cogvideox", "ltx"]
    assert data["gpu"] == "h200" and data["deadline_hours"] == 48
    assert data["gpu_workers"] == math.ceil(data["total_gpu_hours"] / (48 * 0.8))
    assert sum(f["clips"] for f in data["families"]) == 57_600
    assert data["paper"]["paper_gpu_hours"] == 400

    # The overlay renders (built-in kustomize) to the prod cluster with the gpu group sized to the plan.
    from kustomize_render import render

    objs = render(tmp_path / "overlay")
    specs = [o["spec"] if o["kind"] == "RayCluster" else o["spec"]["rayClusterSpec"] if o["kind"] == "RayJob"
             else o["spec"]["rayClusterConfig"] for o in objs if o["kind"] in ("RayCluster", "RayJob", "RayService")]
    assert len(specs) > 2
    for spec in specs:
        (gpu,) = [g for g in spec["workerGroupSpecs"] if g["groupName"] == "gpu"]
        assert gpu["maxReplicas"] == data["gpu_workers"]


def test_cli_errors(tmp_path, capsys):
    assert main(["plan-generation", "--deadline", "soon"]) == 2
    assert "deadline 'soon'" in capsys.readouterr().err
    bad = tmp_path / "cost.json"
    bad.write_text(json.dumps(_cost_file([WAN_ROW], device="cpu", cuda=False)))
    assert main(["plan-generation", "--deadline", "2d", "--mix", "wan=1", "--cost-file", str(bad)]) == 2
    assert "CPU time" in capsys.readouterr().err
    with pytest.raises(SystemExit) as err:
        main(["plan-generation", "--deadline", "2d", "--utilization", "0"])
    assert err.value.code == 2
