"""Where one request's time goes (loopback, CPU, one replica per model, one client).

Two views of the same requests:
- through the service: client latency, and the Server-Timing header the ingress sets (ingress
  checks, handle round trip, batch queue, model batch time); what is left of the client latency is
  the HTTP proxy, the hop to the ingress replica and (de)serialisation;
- inside the model replica's code (Translator, same process): prompt prep, constrained decoding,
  VQ decode, output formats and JSON encoding, timed on their own.

    python benchmarks/serve_profile.py --run runs/tiny [--requests 30]

Writes benchmarks/results/serve_profile.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import httpx
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_load import OUT, PROMPTS, start_service  # noqa: E402


def _stats(xs) -> dict:
    a = np.asarray(xs, dtype=float)
    return {"median": float(np.median(a)), "p10": float(np.percentile(a, 10)), "p90": float(np.percentile(a, 90))}


def in_process(run: str, n: int) -> dict:
    """The replica's work for one 4-second L2M request and one M2L request, stage by stage (ms)."""
    from tdmm_ray.inference.translator import Translator

    torch.set_num_threads(1)  # as in a replica (Ray sets OMP_NUM_THREADS=1 for a fractional-CPU actor)
    tr = Translator.load(run)
    names = ("l2m_prepare", "l2m_generate", "l2m_vq_decode", "l2m_formats", "l2m_json", "m2l_prepare_vq_encode",
             "m2l_generate", "m2l_json")
    stages: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    for i in range(n + 2):
        req = {"prompt": PROMPTS[i % len(PROMPTS)], "duration_s": 4.0, "seed": i, "temperature": 0.8,
               "formats": ["params"], "fps": 25}
        t = [(time.perf_counter(), time.thread_time())]
        row = tr._l2m_row(req)
        t.append((time.perf_counter(), time.thread_time()))
        codes = tr._generate([row])
        t.append((time.perf_counter(), time.thread_time()))
        motion = tr._decode_many(codes, [row["n_model"]])
        t.append((time.perf_counter(), time.thread_time()))
        out = tr._finish((req, codes[0], motion[0]))
        t.append((time.perf_counter(), time.thread_time()))
        body = json.dumps(out)
        t.append((time.perf_counter(), time.thread_time()))
        m = {"parameters": out["parameters"], "fps": 25, "temperature": 0.0, "seed": 0}
        mrow = tr._m2l_row(m)
        t.append((time.perf_counter(), time.thread_time()))
        text = tr._describe([mrow])
        t.append((time.perf_counter(), time.thread_time()))
        json.dumps(tr._m2l_answer((mrow, text[0])))
        t.append((time.perf_counter(), time.thread_time()))
        if i >= 2:  # the first two warm up
            for k, (a, b) in zip(names, zip(t, t[1:])):
                stages[k].append((b[0] - a[0]) * 1000)
                cpu[k].append((b[1] - a[1]) * 1000)
    return {"stages_ms": {k: _stats(v) for k, v in stages.items()},
            "stages_cpu_ms": {k: _stats(v) for k, v in cpu.items()}, "l2m_response_bytes": len(body),
            "l2m_tokens": len(codes[0])}


def through_service(base: str, n: int) -> dict:
    rows = {"l2m": [], "m2l": []}
    with httpx.Client(base_url=base, timeout=120) as c:
        first = c.post("/v1/text-to-motion", json={"prompt": PROMPTS[0], "duration_s": 4.0}).json()
        motion = {"parameters": first["parameters"], "fps": 25}
        for i in range(n + 2):
            for kind, path, body in (("l2m", "/v1/text-to-motion", {"prompt": PROMPTS[i % len(PROMPTS)], "duration_s": 4.0, "seed": i}),
                                     ("m2l", "/v1/motion-to-text", motion)):
                t0 = time.perf_counter()
                r = c.post(path, json=body)
                total = (time.perf_counter() - t0) * 1000
                assert r.status_code == 200, r.text
                timing = {"client_total": total}
                for part in r.headers["server-timing"].split(","):
                    name, _, value = part.strip().partition(";")
                    if value.startswith("dur="):
                        timing[name] = float(value[4:])
                timing["proxy_hops_http_serialisation"] = total - timing["ingress"] - timing["handle"]
                timing["handle_overhead"] = timing["handle"] - timing["queue"] - timing["model"]
                if i >= 2:
                    rows[kind].append(timing)
    return {kind: {k: _stats([r[k] for r in rs]) for k in rs[0]} for kind, rs in rows.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/tiny")
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--batch-wait-s", type=float, default=0.002)
    args = ap.parse_args()
    from tdmm_ray.runtime import init_ray

    init_ray()
    base = start_service(args.run, min_replicas=1, max_replicas=1, max_batch_size=32,
                         batch_wait_timeout_s=args.batch_wait_s, replica_cpus=0.5)
    service = through_service(base, args.requests)
    from ray import serve

    serve.shutdown()
    result = {"run": args.run, "clip_seconds": 4.0, "requests": args.requests, "load_before": os.getloadavg(),
              "batch_wait_timeout_s": args.batch_wait_s, "service_ms": service,
              "in_process": in_process(args.run, args.requests), "load_after": os.getloadavg()}
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "serve_profile.json"), "w") as f:
        json.dump(result, f, indent=2)
    _write_md(result)
    print(json.dumps(result, indent=1))
    return 0


def _write_md(r: dict) -> None:
    lines = ["# One request's time (4-second clip, tiny model, loopback, one replica per model, one client)", "",
             f"Median (p10-p90) of {r['requests']} requests, ms. Load average before/after: "
             f"{r['load_before'][0]:.1f} / {r['load_after'][0]:.1f} (2-core machine).", "",
             "## Through the service (client latency split by the Server-Timing header)", "",
             "| part | Language2Motion | Motion2Language |", "|---|---|---|"]
    s = r["service_ms"]
    for k in ("client_total", "proxy_hops_http_serialisation", "ingress", "handle", "handle_overhead", "queue", "model",
              "model_cpu"):
        lines.append(f"| {k} | " + " | ".join(f"{s[d][k]['median']:.1f} ({s[d][k]['p10']:.1f}-{s[d][k]['p90']:.1f})"
                                                for d in ("l2m", "m2l")) + " |")
    lines += ["", "handle = handle_overhead (the hop ingress -> model replica and back) + queue + model.", "",
              "## Inside the model replica (Translator, same process, one torch thread)", "",
              "| stage | wall ms | CPU ms |", "|---|---|---|"]
    for k, v in r["in_process"]["stages_ms"].items():
        c = r["in_process"]["stages_cpu_ms"][k]
        lines.append(f"| {k} | {v['median']:.2f} ({v['p10']:.2f}-{v['p90']:.2f}) | {c['median']:.2f} ({c['p10']:.2f}-{c['p90']:.2f}) |")
    lines += ["", f"L2M: {r['in_process']['l2m_tokens']} motion tokens, response {r['in_process']['l2m_response_bytes']} bytes.", ""]
    with open(os.path.join(OUT, "serve_profile.md"), "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
