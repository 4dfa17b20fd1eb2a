"""Ray job: evaluation of a finished run, i.e. `tdmm eval RUN_URL` after a storage preflight.

    python jobs/eval.py --preset tiny --out s3://bucket/run   (--out is the run to evaluate)
"""

import os
import sys

# jobs/ must not shadow the standard library (this folder has a tokenize.py, and `tokenize` is a
# stdlib module that traceback and inspect import): keep it on the path, but last.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE] + [HERE]

from _common import run_stage  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_stage("eval", run_url_positional=True))
