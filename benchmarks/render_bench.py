"""Renderer throughput: frames/s per CPU core at 256x256 for the built-in and ICT meshes.

Torch runs with one thread, and rates are frames per second of this process's CPU time, so the
figure is per core even on a busy shared machine (wall-clock rates are reported alongside).
Measured for batch sizes 1/16/64: the rasterizer alone, and the full render (geometry, caps,
rasterize, shade, composite). The baseline in the same run is a brute-force rasterizer (every
pixel against every triangle, in chunks) on one frame: the ratio is the speed-up, and the share
of pixels where both pick the same triangle checks the fast path. CUDA is measured when present.

    .venv/bin/python benchmarks/render_bench.py [--ict PATH] [--size 256] [--seconds 1.5]

Writes benchmarks/results/render.json and render.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from tdmm_ray.face import geometry
from tdmm_ray.face.registry import ICT_DEFAULT_PATH, load_face_model
from tdmm_ray.render.raster import rasterize
from tdmm_ray.render.renderer import FaceRenderer, default_camera

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_ICT = ICT_DEFAULT_PATH


def brute_force_faces(verts: torch.Tensor, faces: torch.Tensor, focal: float, centre: float, size: int,
                      chunk: int = 2048) -> torch.Tensor:
    """Reference: nearest front-facing triangle per pixel by testing all of them. [H,W] long."""
    xy = geometry.project(verts[None], torch.tensor([focal]), torch.tensor([[centre, centre]]))[0]
    tri, z = xy[faces], verts[faces][..., 2]  # [F,3,2], [F,3]
    x, y = tri[..., 0], tri[..., 1]
    area2 = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (y[:, 1] - y[:, 0]) * (x[:, 2] - x[:, 0])
    front = area2 < 0
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    px, py = cols.flatten().float()[:, None], rows.flatten().float()[:, None]
    out = torch.full((size * size,), -1, dtype=torch.long)
    for start in range(0, size * size, chunk):
        u, v = px[start:start + chunk], py[start:start + chunk]
        w = [((x[:, (i + 1) % 3] - u) * (y[:, (i + 2) % 3] - v) - (y[:, (i + 1) % 3] - v) * (x[:, (i + 2) % 3] - u))
             / area2 for i in range(3)]
        inside = (w[0] >= 0) & (w[1] >= 0) & (w[2] >= 0) & front
        inv_depth = w[0] / z[:, 0] + w[1] / z[:, 1] + w[2] / z[:, 2]
        inv_depth = torch.where(inside, inv_depth, torch.zeros_like(inv_depth))
        best, idx = inv_depth.max(1)
        out[start:start + chunk] = torch.where(best > 0, idx, -1)
    return out.view(size, size)


def timed(fn, frames: int, seconds: float, sync=lambda: None) -> dict:
    fn()  # warm-up
    sync()
    cpu0, wall0, n = time.process_time(), time.perf_counter(), 0
    while n < 2 or time.process_time() - cpu0 < seconds:
        fn()
        n += 1
    sync()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"calls": n, "frames_per_cpu_s": round(n * frames / cpu, 1), "frames_per_wall_s": round(n * frames / wall, 1)}


def bench_model(name: str, model, size: int, batches: list[int], seconds: float, device: str) -> list[dict]:
    model = model.to(device)
    renderer = FaceRenderer(model, default_camera(size, size))
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    rows = []
    for b in batches:
        gen = torch.Generator().manual_seed(b)
        identity = (torch.randn(b, model.n_identity, generator=gen) * 0.7).to(device)
        expression = (torch.rand(b, model.n_expression, generator=gen) * 0.3).to(device)
        rotation = ((torch.rand(b, 3, generator=gen) - 0.5) * 0.3).to(device)
        translation = renderer.default_translation.to(device).expand(b, 3)
        verts = renderer.openings.extend(model.vertices(identity, expression, rotation, translation))
        focal = torch.full((b,), renderer.camera.focal, device=device)
        principal = torch.tensor(renderer.camera.centre, device=device).expand(b, 2)
        raster = timed(lambda: rasterize(verts, renderer.faces, focal, principal, size, size), b, seconds, sync)
        full = timed(lambda: renderer.render(identity, expression, rotation), b, seconds, sync)
        covered = rasterize(verts, renderer.faces, focal, principal, size, size).pixel.numel() / b
        rows.append({"model": name, "device": device, "vertices": model.n_vertices, "faces": int(renderer.faces.shape[0]),
                     "size": size, "batch": b, "covered_pixels_per_frame": int(covered),
                     "raster_fps_per_core": raster["frames_per_cpu_s"], "render_fps_per_core": full["frames_per_cpu_s"],
                     "raster_fps_wall": raster["frames_per_wall_s"], "render_fps_wall": full["frames_per_wall_s"]})
        print(rows[-1], flush=True)
    return rows


def baseline(model, size: int) -> dict:
    renderer = FaceRenderer(model, default_camera(size, size))
    verts = renderer.openings.extend(model.vertices(torch.zeros(1, model.n_identity), torch.zeros(1, model.n_expression),
                                                    torch.zeros(1, 3), renderer.default_translation[None]))
    focal, centre = renderer.camera.focal, renderer.camera.centre[0]
    cpu0 = time.process_time()
    reference = brute_force_faces(verts[0], renderer.faces, focal, centre, size)
    brute_cpu = time.process_time() - cpu0
    fast = rasterize(verts, renderer.faces, torch.tensor([focal]), torch.tensor([[centre, centre]]), size, size).face_map()[0]
    covered = (reference >= 0) | (fast >= 0)
    return {"brute_force_fps_per_core": round(1.0 / brute_cpu, 3),
            "same_triangle_share": round(float((reference == fast)[covered].float().mean()), 5),
            "coverage_equal": bool(((reference >= 0) == (fast >= 0)).all())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ict", default=str(DEFAULT_ICT))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--seconds", type=float, default=1.5, help="CPU seconds per measurement")
    args = ap.parse_args()
    torch.set_num_threads(1)
    models = {"builtin": load_face_model("builtin")}
    if Path(args.ict).exists():
        models["ict"] = load_face_model("ict", args.ict)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = [r for name, m in models.items() for d in devices for r in bench_model(name, m, args.size, args.batches, args.seconds, d)]
    base = {name: baseline(m, args.size) for name, m in models.items()}
    for name, b in base.items():
        best = max(r["raster_fps_per_core"] for r in rows if r["model"] == name and r["device"] == "cpu")
        b["speedup_vs_brute_force"] = round(best / b["brute_force_fps_per_core"], 1)
        print(name, b, flush=True)
    result = {"benchmark": "render", "torch_threads": 1, "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
              "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
              "rows": rows, "baseline": base, "command": "python benchmarks/render_bench.py"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "render.json").write_text(json.dumps(result, indent=2))
    lines = ["# Renderer throughput", "", f"{args.size}x{args.size}, torch {torch.__version__}, 1 thread; "
             "fps per core = frames / process CPU seconds (wall-clock in parentheses; the machine may be shared).", "",
             "| model | device | V | faces | batch | raster fps/core | render fps/core |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['device']} | {r['vertices']} | {r['faces']} | {r['batch']} | "
                     f"{r['raster_fps_per_core']} ({r['raster_fps_wall']}) | {r['render_fps_per_core']} ({r['render_fps_wall']}) |")
    lines += ["", "Baseline (same run): brute-force rasterizer, every pixel x every triangle, one frame.", "",
              "| model | brute force fps/core | best raster speed-up | same triangle | same coverage |", "|---|---|---|---|---|"]
    for name, b in base.items():
        lines.append(f"| {name} | {b['brute_force_fps_per_core']} | {b['speedup_vs_brute_force']}x | "
                     f"{b['same_triangle_share']:.2%} | {b['coverage_equal']} |")
    (RESULTS / "render.md").write_text("\n".join(lines) + "\n")
    print((RESULTS / "render.md").read_text())


if __name__ == "__main__":
    main()
