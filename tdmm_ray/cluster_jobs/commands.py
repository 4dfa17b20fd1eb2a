"""`tdmm submit STAGE` (a stage as a Ray job) and `tdmm cluster-manifests` (regenerate KubeRay YAML)."""

from __future__ import annotations

import argparse
import logging
import sys

from tdmm_ray.cli_args import add_config_args, config_from_args
from tdmm_ray.cluster_jobs import submit as sub
from tdmm_ray.cluster_jobs.k8s import write_all

log = logging.getLogger(__name__)


def _cmd_submit(args: argparse.Namespace) -> int:
    sub.script_for(args.stage)  # unknown stage: ValueError before anything else
    cfg = config_from_args(args)  # a bad config fails here, not on the cluster
    sub.check_before_submit(cfg, args.address)
    config = sub.config_path_in_job(args.config, args.working_dir)
    arguments = sub.stage_arguments(args.preset, config, args.overrides, args.storage)
    try:
        job_id = sub.submit(args.address, args.stage, arguments, working_dir=args.working_dir,
                            submission_id=args.submission_id)
    except Exception as err:  # connection refused, 401, bad runtime env: say where it went wrong
        print(f"tdmm submit: could not submit to {args.address}: {err}{sub.auth_hint()}", file=sys.stderr)
        return 1
    print(job_id)
    if not args.wait:
        return 0
    status = sub.wait(args.address, job_id, timeout_s=args.timeout)
    print(f"tdmm submit: job {job_id} {status}", file=sys.stderr)
    return 0 if status == "SUCCEEDED" else 1


def _cmd_manifests(args: argparse.Namespace) -> int:
    stale = write_all(check=args.check)
    if args.check:
        for path in stale:
            print(f"out of date: {path}", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        print(f"wrote {path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("submit", help="run a stage as a Ray job on a cluster (ray job submit)",
                              description="Resolve the config and check storage here, then submit "
                                          "`python jobs/STAGE.py ...` with this checkout as working dir.")
    p.add_argument("stage", choices=list(sub.STAGE_SCRIPTS), metavar="STAGE",
                   help="one of: " + ", ".join(sub.STAGE_SCRIPTS))
    p.add_argument("--address", default="http://127.0.0.1:8265", help="Ray dashboard URL (default: %(default)s)")
    add_config_args(p)
    p.add_argument("--wait", action="store_true", help="follow the logs until the job ends; exit 1 unless it succeeded")
    p.add_argument("--timeout", type=float, default=None, help="with --wait: give up after this many seconds")
    p.add_argument("--working-dir", default=str(sub.ROOT), help="folder uploaded as the job's working dir")
    p.add_argument("--submission-id", default=None, help="job id to use (default: Ray picks one)")
    p.set_defaults(func=_cmd_submit)

    p = subparsers.add_parser("cluster-manifests", help="regenerate cluster/k8s (base and overlays) from tdmm_ray/cluster_jobs/manifests.py")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is out of date")
    p.set_defaults(func=_cmd_manifests)
