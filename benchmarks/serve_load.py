"""Serve load benchmark (loopback only, bounded in count and time).

Language2Motion p50/p95/p99 latency and throughput at 1, 8 and 32 concurrent clients, with request
batching (max_batch_size 8) and without (max_batch_size 1), one replica each so the ratio isolates
batching; then a burst against an autoscaling deployment, recording replicas over time (a plot).

    python benchmarks/serve_load.py --run runs/tiny [--requests 64] [--seconds 60]

Writes benchmarks/results/serve_load.{json,md} and serve_replicas.png.
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


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(base: str, clients: int, total: int, seconds: float, duration_s: float) -> dict:
    """`clients` threads send `total` requests between them (or stop at `seconds`)."""
    lat, errors, lock = [], 0, threading.Lock()
    counter = iter(range(total))
    deadline = time.time() + seconds

    def worker():
        nonlocal errors
        with httpx.Client(timeout=120) as c:
            while time.time() < deadline:
                with lock:
                    if next(counter, None) is None:
                        return
                t0 = time.perf_counter()
                r = c.post(f"{base}/v1/text-to-motion", json={"prompt": "a person smiles while nodding slowly",
                                                              "duration_s": duration_s, "formats": ["params"]})
                dt = time.perf_counter() - t0
                with lock:
                    lat.append(dt) if r.status_code == 200 else None
                    errors += r.status_code != 200

    start = time.perf_counter()
    with cf.ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(worker) for _ in range(clients)]:
            f.result()
    wall = time.perf_counter() - start
    a = np.array(lat) * 1000
    return {"clients": clients, "ok": len(lat), "errors": errors, "throughput_rps": len(lat) / wall,
            "p50_ms": float(np.percentile(a, 50)) if len(a) else None,
            "p95_ms": float(np.percentile(a, 95)) if len(a) else None,
            "p99_ms": float(np.percentile(a, 99)) if len(a) else None}


def start(run: str, port: int, **overrides):
    from ray import serve

    from tdmm_ray.serve.commands import start as start_serve

    serve.shutdown()
    start_serve(run, port=port, overrides=overrides)
    base = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                httpx.post(f"{base}/v1/text-to-motion", json={"prompt": "warm up", "duration_s": 1.0}, timeout=120)
                return base
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError("service did not come up")


def replica_timeline(run: str, port: int, seconds: float) -> list[tuple[float, int]]:
    from ray import serve

    base = start(run, port, min_replicas=1, max_replicas=3, target_ongoing_requests=2, upscale_delay_s=1.0,
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
    load(base, 32, 100_000, seconds, 4.0)  # the burst: bounded by time
    time.sleep(20)  # quiet: watch it scale back down
    stop.set()
    th.join()
    return series


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/tiny", help="trained run folder")
    ap.add_argument("--requests", type=int, default=64, help="requests per measurement (bounded)")
    ap.add_argument("--seconds", type=float, default=60, help="time cap per measurement")
    args = ap.parse_args()
    from tdmm_ray.runtime import init_ray

    init_ray()
    port = _port()
    results = {"run": args.run, "clip_seconds": 4.0, "levels": {}}
    for label, batch in (("batched", 8), ("unbatched", 1)):
        base = start(args.run, port, min_replicas=1, max_replicas=1, max_batch_size=batch, replica_cpus=0.5,
                     batch_wait_timeout_s=0.01)
        results["levels"][label] = [load(base, c, max(c * 2, args.requests if c > 1 else 16), args.seconds, 4.0)
                                    for c in (1, 8, 32)]
        print(label, json.dumps(results["levels"][label], indent=1), flush=True)
    b32, u32 = results["levels"]["batched"][-1], results["levels"]["unbatched"][-1]
    results["batched_vs_unbatched_throughput_at_32"] = b32["throughput_rps"] / max(u32["throughput_rps"], 1e-9)
    results["p50_ms_single_client_4s_clip"] = results["levels"]["batched"][0]["p50_ms"]
    series = replica_timeline(args.run, port, min(args.seconds, 30))
    results["replicas_over_time"] = series
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "serve_load.json"), "w") as f:
        json.dump(results, f, indent=2)
    _write_md(results)
    _plot(series)
    from ray import serve

    serve.shutdown()
    return 0


def _write_md(r: dict) -> None:
    lines = ["# Serve load (Language2Motion, 4-second clips, loopback, CPU)", "",
             "| mode | clients | ok | errors | throughput (req/s) | p50 ms | p95 ms | p99 ms |", "|---|---|---|---|---|---|---|---|"]
    for mode, rows in r["levels"].items():
        lines += [f"| {mode} | {x['clients']} | {x['ok']} | {x['errors']} | {x['throughput_rps']:.2f} | "
                  f"{x['p50_ms']:.0f} | {x['p95_ms']:.0f} | {x['p99_ms']:.0f} |" for x in rows]
    lines += ["", f"- batched / unbatched throughput at 32 clients: {r['batched_vs_unbatched_throughput_at_32']:.2f}x",
              f"- p50 latency, one client, 4-second clip: {r['p50_ms_single_client_4s_clip']:.0f} ms",
              "", "![replicas over time](serve_replicas.png)", ""]
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
    fig.savefig(os.path.join(OUT, "serve_replicas.png"), dpi=80, bbox_inches="tight")


if __name__ == "__main__":
    sys.exit(main())
