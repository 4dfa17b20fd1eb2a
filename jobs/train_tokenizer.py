"""Ray job: the motion tokenizer (Ray Train), i.e. `tdmm train-tokenizer` after a storage preflight.

    python jobs/train_tokenizer.py --preset tiny --out s3://bucket/run [--config FILE] [--set section.field=value]
"""

import os
import sys

# jobs/ must not shadow the standard library (this folder has a tokenize.py, and `tokenize` is a
# stdlib module that traceback and inspect import): keep it on the path, but last.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE] + [HERE]

from _common import run_stage  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_stage("train-tokenizer"))
