"""Wall-clock time of the main job, `tdmm run --preset tiny`, after installation (the `make run`
budget is 10 minutes on 2 cores). Writes benchmarks/results/main_job_time.{json,md}.

    python benchmarks/main_job_time.py
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "benchmarks", "results")


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "tdmm_ray.cli", "run", "--preset", "tiny", "--out", tmp],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout
        wall = time.perf_counter() - start
    stages = {m.group(1): float(m.group(2)) for m in re.finditer(r"\] (\S+) done in ([\d.]+) s", out)}
    # The run ends with one answer in each direction: keep them with the timing (what `make run` shows).
    answers = [line.strip() for line in out.splitlines() if line.startswith(("Language2Motion", "Motion2Language"))]
    report = [line.strip() for line in out.replace("\r", "\n").splitlines() if line.strip().startswith("eval: report=")]
    res = {"seconds": wall, "stages": stages, "budget_seconds": 600, "load_average": os.getloadavg(),
           "answers": answers, "eval": report}
    os.makedirs(OUT, exist_ok=True)
    json.dump(res, open(os.path.join(OUT, "main_job_time.json"), "w"), indent=2)
    with open(os.path.join(OUT, "main_job_time.md"), "w") as f:
        f.write(f"# `tdmm run --preset tiny`\n\nTotal {wall:.0f} s (budget 600 s), load average at the end "
                f"{res['load_average'][0]:.1f}.\n\n| stage | seconds |\n|---|---|\n")
        f.writelines(f"| {k} | {v:.1f} |\n" for k, v in stages.items())
        f.write("\nAnswers:\n\n" + "".join(f"    {a}\n" for a in answers) + "".join(f"\n{r}\n" for r in report))
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
