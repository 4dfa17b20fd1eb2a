"""The plan as the readable table `tdmm plan-generation` prints (tdmm_ray.planning.cost makes the plan)."""

from __future__ import annotations

from tdmm_ray.planning.cost import DEFAULT_COST_FILE, GPU_PEAK_TFLOPS, PAPER_GPU, PAPER_GPUS, Plan


def _table(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in rows]


def format_plan(plan: Plan) -> str:
    lines = [(f"Generation plan: {plan.video_hours:g} h of video by a {plan.deadline_hours:g} h deadline on "
             f"{plan.gpu.upper()} GPUs ({GPU_PEAK_TFLOPS[plan.gpu]:g} TFLOP/s bf16 peak), "
             f"utilization {plan.utilization:g}, MFU {plan.mfu:g}"), ""]
    rows = [["family", "model", "share", "video h", "clips", "native clip", "GPU-s/clip", "GPU-h", "source"]]
    for f in plan.families:
        native = (f"{f.width}x{f.height} {f.frames}f@{f.native_fps} {f.steps}x{f.passes}" if f.width
                  else f"{f.clip_seconds:g} s @{f.native_fps} fps")
        gpu_s = f"{f.gpu_s_per_clip:.1f}" if f.width else "-"
        gpu_h = f"{f.gpu_hours:,.1f}" if f.width else f"({f.cpu_core_hours:,.1f} CPU core-h)"
        rows.append([f.family, f.model, f"{f.share:.0%}", f"{f.video_hours:.1f}", f"{f.clips:,}", native, gpu_s,
                     gpu_h, f.source])
    rows.append(["landmarks+fit", "FAN + batched fit", "", f"{plan.video_hours:.1f}", "", f"{plan.frames:,} frames",
                 "", f"{plan.landmark_gpu_hours:,.1f}", f"estimate ({plan.landmark_fps:g} frames/GPU-s, --landmark-fps)"])
    rows.append(["total", "", "", "", f"{sum(f.clips for f in plan.families):,}", "", "",
                 f"{plan.total_gpu_hours:,.1f}", ""])
    lines += _table(rows, right={2, 3, 4, 6, 7})
    lines += ["", ("native clip: width x height, frames @ native fps, steps x passes (2 = classifier-free guidance); "
                  "clips are resampled to the corpus spec afterwards"), ""]
    if plan.gpu_workers:
        lines.append(f"GPU workers (RayCluster gpu group maxReplicas): ceil({plan.total_gpu_hours:,.1f} GPU-h / "
                     f"({plan.deadline_hours:g} h x {plan.utilization:g})) = {plan.gpu_workers}")
        lines.append(f"wall clock with {plan.gpu_workers} GPU workers: {plan.wall_hours:.1f} h")
    else:
        lines.append("GPU workers: 0 (no GPU work in this mix)")
    if plan.cpu_core_hours:
        lines.append(f"procedural rendering: {plan.cpu_core_hours:,.1f} CPU core-hours (CPU worker group)")
    p = plan.paper
    lines += ["", (f"Compared with the TDMM-LM paper: {p.paper_video_hours:g} h of video, {p.paper_clips:,} clips, "
                  f"~{p.paper_gpu_hours:g} GPU-h on {PAPER_GPUS} {PAPER_GPU.upper()} "
                  f"(≈ {p.paper_gpu_s_per_clip:.1f} GPU-s per clip, {p.paper_gpu_hours_per_video_hour:.1f} GPU-h "
                  f"per video hour, ≈ {p.paper_wall_hours_on_32:.1f} h wall on {PAPER_GPUS} GPUs)")]
    if p.ratio is not None:
        lines += [(f"  this plan: {p.gpu_s_per_clip:.1f} GPU-s per diffusion clip, {p.gpu_hours_per_video_hour:.1f} "
                  f"GPU-h per video hour = {p.ratio:.2f}x the paper ({p.gpu_hours_for_80h:,.0f} GPU-h for 80 h of "
                  f"diffusion video on {plan.gpu.upper()})"),
                  f"  all of this plan's GPU work on {PAPER_GPUS} GPUs at full use: {p.wall_hours_on_32:.1f} h wall"]
    else:
        lines.append("  this plan has no diffusion clips: nothing to compare")
    lines.append(f"  note: {p.note}")
    if any(f.source.startswith("estimate") for f in plan.families if f.width):
        lines.append("  estimates come from the FLOPs model; run benchmarks/diffusion_clip_cost.py on a GPU and pass "
                     f"--cost-file {DEFAULT_COST_FILE} for measured figures")
    lines += [f"note: {n}" for n in plan.notes]
    return "\n".join(lines) + "\n"
