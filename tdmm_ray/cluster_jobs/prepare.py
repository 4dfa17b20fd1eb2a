"""`python -m tdmm_ray.cluster_jobs.prepare STAGE [stage flags]`: the check jobs/submit.sh runs first.

Resolves the config, checks storage (exit 2 with a message when it is not usable) and prints the
runtime env JSON for `ray job submit --runtime-env-json` (excludes and the S3 environment;
`--working-dir` is given on the command line).
"""

from __future__ import annotations

import argparse
import json
import sys

from tdmm_ray.cli import add_config_args, config_from_args
from tdmm_ray.cluster_jobs.submit import STAGE_SCRIPTS, check_before_submit, runtime_env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="prepare", description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=list(STAGE_SCRIPTS))
    parser.add_argument("--address", default="http://127.0.0.1:8265")
    add_config_args(parser)
    args, _ = parser.parse_known_args(argv)
    try:
        check_before_submit(config_from_args(args), args.address)
    except ValueError as err:  # ConfigError included: bad config or storage settings
        print(f"submit: {err}", file=sys.stderr)
        return 2
    env = runtime_env()
    env.pop("working_dir")
    print(json.dumps(env))
    return 0


if __name__ == "__main__":
    sys.exit(main())
