"""CLI: `tdmm serve RUN_URL` runs both deployments and the HTTP ingress locally (127.0.0.1)."""

from __future__ import annotations

import argparse
import time


def start(run_url: str, host: str = "127.0.0.1", port: int = 8000, overrides: dict | None = None,
          blocking: bool = False, route_prefix: str = "/"):
    """Start Serve on an existing or new local Ray instance; returns the app handle."""
    from tdmm_ray.runtime import init_ray

    init_ray()
    from ray import serve

    from tdmm_ray.serve.app import build_app

    serve.start(http_options={"host": host, "port": port})
    app = build_app({"run_url": run_url, "host": host, "port": port, **(overrides or {})})
    return serve.run(app, name="tdmm", route_prefix=route_prefix, blocking=blocking)


def _cmd_serve(args: argparse.Namespace) -> int:
    from tdmm_ray.config import parse_overrides

    overrides = parse_overrides(args.overrides).get("serve", {}) if args.overrides else {}
    start(args.run_url, args.host, args.port, overrides)
    print(f"serving {args.run_url} at http://{args.host}:{args.port}  (docs: /docs, health: /healthz); Ctrl-C stops")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        from ray import serve

        serve.shutdown()
    return 0


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve Language2Motion and Motion2Language over HTTP (Ray Serve)")
    p.add_argument("run_url", help="trained run folder (local path or s3://)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="serve.FIELD=VALUE",
                   help="override a serve setting, e.g. --set serve.max_replicas=4")
    p.set_defaults(func=_cmd_serve)
