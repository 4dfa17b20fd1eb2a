"""Serve load benchmark (loopback only, bounded in count and time).

Language2Motion latency (p50/p99) and throughput at 1, 8 and 32 closed-loop clients, each client
sending `--per-client` requests (varied prompts, clip durations 2-6 s, own seeds), with request
batching and without (max_batch_size 1: the unbatched service as its best users would run it, same
replica CPU), both deployed side by side (one replica per model each) so the repetitions interleave
and the ratios come from one run. Three repetitions: median and min-max spread. Also single-client
p50 for a 4-second clip in both directions (the latency goals), and, with --autoscale, a burst
against an autoscaling deployment (replicas over time, a plot).

    python benchmarks/serve_load.py --run runs/tiny [--per-client 10] [--reps 3]

Writes benchmarks/results/serve_load.{json,md} (and serve_replicas.png with --autoscale).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import socket
import sys
import threading
import time

import httpx
import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
PROMPTS = [
    "a person smiles slowly while nodding", "an angry frown, shaking head", "a surprised face, eyebrows raised",
    "a sad face looking down", "a bored expression with a slow blink", "a nervous smile, glancing left",
    "a strong disgusted grimace", "a calm neutral face, still head", "an amused grin turning into laughter",
    "a fearful face, mouth open", "a confused look, head tilted", "a contemptuous half smile",
]
DURATIONS = [2.0, 3.0, 4.0, 5.0, 6.0]
MODES = {"batched": {"max_batch_size": 32, "batch_wait_timeout_s": 0.002},
         "unbatched": {"max_batch_size": 1, "batch_wait_timeout_s": 0.0}}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(base: str) -> str:
    for _ in range(240):
        try:
            if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                r = httpx.post(f"{base}/v1/text-to-motion", json={"prompt": "warm up", "duration_s": 1.0}, timeout=120)
                if r.status_code == 200:
                    return base
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"service at {base} did not come up")


def start_service(run: str, port: int | None = None, **overrides) -> str:
    """One application ("tdmm") on a fresh Serve instance; returns its base URL."""
    from ray import serve

    from tdmm_ray.serve.commands import start as start_serve

    serve.shutdown()
    port = port or _port()
    start_serve(run, port=port, overrides=overrides)
    return _wait(f"http://127.0.0.1:{port}")


def start_side_by_side(run: str, port: int) -> dict[str, str]:
    """Every mode as its own application (own replicas) under /<mode>, on one Serve instance."""
    from ray import serve

    from tdmm_ray.serve.app import build_app

    serve.shutdown()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    bases = {}
    for mode, knobs in MODES.items():
        app = build_app({"run_url": run, "min_replicas": 1, "max_replicas": 1, "replica_cpus": 0.5, **knobs})
        serve.run(app, name=mode, route_prefix=f"/{mode}")
        bases[mode] = _wait(f"http://127.0.0.1:{port}/{mode}")
    return bases


def serve_pids() -> dict[str, int]:
    """Every Serve process this run started (descendants of this process, named by Ray's process
    title): proxy, controller and each application's replicas."""
    parent, title = {}, {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    title[int(entry)] = f.read().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue

    def mine(pid: int) -> bool:
        while pid > 1:
            pid = parent.get(pid, 0)
            if pid == os.getpid():
                return True
        return False

    pids = {}
    for pid, name in title.items():
        if name.startswith(("ray::ServeReplica:", "ray::ProxyActor", "ray::ServeController")) and mine(pid):
            pids[name.removeprefix("ray::").removeprefix("ServeReplica:").split()[0]] = pid
    return pids


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU time of each process so far (Linux /proc), and this client process's."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {"client": sum(os.times()[:2])}
    for name, pid in pids.items():
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[name] = (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return out


def load(base: str, clients: int, per_client: int, seconds: float, offset: int = 0,
         pids: dict[str, int] | None = None) -> dict:
    """`clients` closed-loop clients, each sending `per_client` requests (stops early at `seconds`).
    With `pids`, also the CPU seconds per request each process spent (a measure the machine's other
    load does not inflate the way it inflates latency)."""
    lat, errors, lock = [], 0, threading.Lock()
    cpu0 = cpu_seconds(pids or {})
    deadline = time.time() + seconds

    def client(k: int):
        nonlocal errors
        with httpx.Client(timeout=120) as c:
            for j in range(per_client):
                if time.time() > deadline:
                    return
                i = offset + k * per_client + j
                body = {"prompt": PROMPTS[i % len(PROMPTS)], "duration_s": DURATIONS[(i // len(PROMPTS)) % len(DURATIONS)],
                        "seed": i, "formats": ["params"]}
                t0 = time.perf_counter()
                r = c.post(f"{base}/v1/text-to-motion", json=body)
                dt = time.perf_counter() - t0
                with lock:
                    if r.status_code == 200:
                        lat.append(dt)
                    else:
                        errors += 1

    start = time.perf_counter()
    with cf.ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(client, k) for k in range(clients)]:
            f.result()
    wall = time.perf_counter() - start
    cpu1 = cpu_seconds(pids or {})
    a = np.array(lat) * 1000
    cpu = {k: (cpu1[k] - cpu0[k]) * 1000 / max(len(lat), 1) for k in cpu1 if k in cpu0 and cpu1[k] > cpu0[k]}
    return {"clients": clients, "ok": len(lat), "errors": errors, "throughput_rps": len(lat) / wall,
            "cpu_ms_per_request": cpu, "cpu_ms_per_request_serving": sum(v for k, v in cpu.items() if k != "client"),
            "p50_ms": float(np.percentile(a, 50)) if len(a) else None,
            "p99_ms": float(np.percentile(a, 99)) if len(a) else None}


def single_client(base: str, n: int, seed0: int) -> dict:
    """p50 of n sequential 4-second requests in each direction (the latency goals)."""
    l2m, m2l = [], []
    with httpx.Client(base_url=base, timeout=120) as c:
        motion = None
        for i in range(n):
            t0 = time.perf_counter()
            r = c.post("/v1/text-to-motion", json={"prompt": PROMPTS[i % len(PROMPTS)], "duration_s": 4.0, "seed": seed0 + i})
            l2m.append((time.perf_counter() - t0) * 1000)
            motion = motion or {"parameters": r.json()["parameters"], "fps": 25}
            t0 = time.perf_counter()
            assert c.post("/v1/motion-to-text", json=motion).status_code == 200
            m2l.append((time.perf_counter() - t0) * 1000)
    return {"l2m_4s_p50_ms": float(np.median(l2m)), "m2l_4s_p50_ms": float(np.median(m2l))}


def summarize(reps: list[dict]) -> dict:
    """Median and min-max over repetitions of every number per mode and client count."""
    out = {}
    for mode in MODES:
        out[mode] = []
        for level in range(len(reps[0]["levels"][mode])):
            row = {"clients": reps[0]["levels"][mode][level]["clients"]}
            for key in ("throughput_rps", "p50_ms", "p99_ms", "cpu_ms_per_request_serving"):
                vals = [r["levels"][mode][level][key] for r in reps]
                row[key] = {"median": float(np.median(vals)), "min": float(min(vals)), "max": float(max(vals))}
            row["errors"] = sum(r["levels"][mode][level]["errors"] for r in reps)
            out[mode].append(row)
    singles = {k: [r["single_client"][k] for r in reps] for k in reps[0]["single_client"]}
    out["single_client"] = {k: {"median": float(np.median(v)), "min": float(min(v)), "max": float(max(v))}
                            for k, v in singles.items()}
    b, u = {r["clients"]: r for r in out["batched"]}, {r["clients"]: r for r in out["unbatched"]}
    ratios = [r["levels"]["batched"][-1]["throughput_rps"] / r["levels"]["unbatched"][-1]["throughput_rps"] for r in reps]
    cpu_ratio = [r["levels"]["unbatched"][-1]["cpu_ms_per_request_serving"] / r["levels"]["batched"][-1]["cpu_ms_per_request_serving"]
                 for r in reps]
    out["goals"] = {
        "serving_cpu_per_request_unbatched_over_batched_at_32": {"median": float(np.median(cpu_ratio)),
                                                                 "min": min(cpu_ratio), "max": max(cpu_ratio)},
        "batched_over_unbatched_at_32": {"median": float(np.median(ratios)), "min": min(ratios), "max": max(ratios)},
        "batched_throughput_8_to_32": b[32]["throughput_rps"]["median"] / b[8]["throughput_rps"]["median"],
        "p99_over_p50_at_32_batched": b[32]["p99_ms"]["median"] / b[32]["p50_ms"]["median"],
        "l2m_4s_p50_ms": out["single_client"]["l2m_4s_p50_ms"]["median"],
        "m2l_4s_p50_ms": out["single_client"]["m2l_4s_p50_ms"]["median"],
    }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/tiny", help="trained run folder")
    ap.add_argument("--per-client", type=int, default=10, help="requests per client per measurement")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=240, help="time cap per measurement")
    ap.add_argument("--autoscale", action="store_true", help="also record replicas over time under a burst")
    args = ap.parse_args()
    from tdmm_ray.runtime import init_ray

    init_ray(num_cpus=4)  # logical CPUs: two applications' replicas (Ingress reserves 1 each) on the 2 cores
    port = _port()
    bases = start_side_by_side(args.run, port)
    pids = serve_pids()
    print("processes", pids, flush=True)
    reps = []
    for rep in range(args.reps):
        record = {"load_before": os.getloadavg(), "levels": {m: [] for m in MODES}}
        for clients in (1, 8, 32):
            for mode in (MODES if rep % 2 == 0 else list(MODES)[::-1]):  # alternate which goes first
                record["levels"][mode].append(load(bases[mode], clients, args.per_client, args.seconds, offset=rep * 10_000,
                                                     pids=pids))
                print(rep, mode, record["levels"][mode][-1], flush=True)
        record["single_client"] = single_client(bases["batched"], args.per_client, seed0=rep * 1000)
        record["load_after"] = os.getloadavg()
        reps.append(record)
    results = {"run": args.run, "modes": MODES, "per_client": args.per_client, "durations_s": DURATIONS,
               "cpu_count": os.cpu_count(), "repetitions": reps, "summary": summarize(reps)}
    if args.autoscale:
        results["replicas_over_time"] = replica_timeline(args.run, port, 30)
    from ray import serve

    serve.shutdown()
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "serve_load.json"), "w") as f:
        json.dump(results, f, indent=2)
    _write_md(results)
    print(json.dumps(results["summary"], indent=1))
    return 0


def replica_timeline(run: str, port: int, seconds: float) -> list[tuple[float, int]]:
    from ray import serve

    base = start_service(run, port, min_replicas=1, max_replicas=3, target_ongoing_requests=2, upscale_delay_s=1.0,
                         downscale_delay_s=5.0, max_batch_size=8, replica_cpus=0.1)
    series, t0, stop = [], time.time(), threading.Event()

    def poll():
        while not stop.is_set():
            st = serve.status().applications["tdmm"].deployments["Language2Motion"].replica_states
            series.append((time.time() - t0, sum(n for s, n in st.items() if str(s).endswith("RUNNING"))))
            time.sleep(0.5)

    th = threading.Thread(target=poll)
    th.start()
    time.sleep(3)
    load(base, 32, 100_000, seconds)  # the burst: bounded by time
    time.sleep(20)  # quiet: watch it scale back down
    stop.set()
    th.join()
    _plot(series)
    return series


def _fmt(x: dict, digits: int = 0) -> str:
    return f"{x['median']:.{digits}f} ({x['min']:.{digits}f}-{x['max']:.{digits}f})"


def _write_md(r: dict) -> None:
    s, g = r["summary"], r["summary"]["goals"]
    loads = [f"{x['load_before'][0]:.1f}" for x in r["repetitions"]]
    lines = ["# Serve load (Language2Motion, loopback, CPU, one replica per model, tiny model)", "",
             f"{r['per_client']} requests per client, prompts from a list of {len(PROMPTS)}, clip durations "
             f"{', '.join(f'{d:g}' for d in r['durations_s'])} s; {len(r['repetitions'])} repetitions, median (min-max). "
             f"batched: max_batch_size {r['modes']['batched']['max_batch_size']}, wait "
             f"{r['modes']['batched']['batch_wait_timeout_s'] * 1000:g} ms; unbatched: max_batch_size 1. "
             f"Machine: {r['cpu_count']} cores, load average at the start of each repetition: {', '.join(loads)}.", "",
             "| mode | clients | throughput (req/s) | p50 ms | p99 ms | serving CPU ms / request | errors |",
             "|---|---|---|---|---|---|---|"]
    for mode in r["modes"]:
        lines += [f"| {mode} | {x['clients']} | {_fmt(x['throughput_rps'], 1)} | {_fmt(x['p50_ms'])} | {_fmt(x['p99_ms'])} | "
                  f"{_fmt(x['cpu_ms_per_request_serving'], 1)} | {x['errors']} |" for x in s[mode]]
    lines += ["", "| goal | measured | target |", "|---|---|---|",
              f"| single-client p50, 4-s Language2Motion | {_fmt(s['single_client']['l2m_4s_p50_ms'])} ms | <= 100 ms |",
              f"| single-client p50, 4-s Motion2Language | {_fmt(s['single_client']['m2l_4s_p50_ms'])} ms | <= 60 ms |",
              f"| batched / unbatched throughput, 32 clients | {_fmt(g['batched_over_unbatched_at_32'], 2)}x | >= 4x |",
              f"| unbatched / batched serving CPU per request, 32 clients (the throughput ratio of a CPU-bound quiet machine) | "
              f"{_fmt(g['serving_cpu_per_request_unbatched_over_batched_at_32'], 2)}x | >= 4x |",
              f"| batched throughput 32 clients / 8 clients | {g['batched_throughput_8_to_32']:.2f} | >= 1 |",
              f"| p99 / p50 at 32 clients (batched) | {g['p99_over_p50_at_32_batched']:.2f} | <= 3 |", ""]
    if "replicas_over_time" in r:
        lines += ["![replicas over time](serve_replicas.png)", ""]
    with open(os.path.join(OUT, "serve_load.md"), "w") as f:
        f.write("\n".join(lines))


def _plot(series) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3))
    if series:
        t, n = zip(*series)
        ax.step(t, n, where="post")
    ax.set_xlabel("seconds (burst of 32 clients from t=3 s)")
    ax.set_ylabel("Language2Motion replicas")
    os.makedirs(OUT, exist_ok=True)
    fig.savefig(os.path.join(OUT, "serve_replicas.png"), dpi=80, bbox_inches="tight")


if __name__ == "__main__":
    sys.exit(main())
