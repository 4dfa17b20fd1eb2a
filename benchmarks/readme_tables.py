"""README headline tables, generated from benchmarks/results/*.json.

README.md holds each table between `<!-- table:NAME -->` and `<!-- /table:NAME -->`; this script
rewrites what lies between them from the results file, so a number in the README is always the one
in the results. `--check` rewrites nothing and exits 1 when any block differs (tests/test_readme_numbers.py
runs the same check).

    .venv/bin/python benchmarks/readme_tables.py [--check] [--render FILE]

The "Results (small preset)" tables (small_*) come from one recorded run, benchmarks/results/small_run.json,
which a long run produces by hand; until that file exists the README needs no block for them. To publish a run:

    .venv/bin/python benchmarks/record_run.py runs/small --command "tdmm run --preset small" --wall-seconds S
    .venv/bin/python benchmarks/readme_tables.py --render docs/results_section_template.md   # preview
    # paste the template's blocks and prose under "## Results (small preset)" in README.md, then:
    .venv/bin/python benchmarks/readme_tables.py
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path

from tdmm_ray.evaluation.audit_report import probe_table, summary_lines

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/, for record_run when loaded from a test
from record_run import need  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
TEMPLATE = ROOT / "docs" / "results_section_template.md"
SMALL_RUN = "small_run"  # benchmarks/record_run.py RUN --name small_run
BLOCK = re.compile(r"(<!-- table:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /table:(?P=name) -->)", re.S)


def _load(name: str) -> dict:
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"{path} not found, and a table block needs it "
                         "(record it with benchmarks/record_run.py, or remove the block)")
    return json.loads(path.read_text())


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _spread(d: dict, fmt: str) -> str:
    """A {median, min, max} dict as 'median [min–max]'."""
    return f"{d['median']:{fmt}} [{d['min']:{fmt}}–{d['max']:{fmt}}]"


def render() -> str:
    r = _load("render")
    rows = [[row["model"], row["batch"], f"{row['render_fps_per_core']:.0f}", f"{row['raster_fps_per_core']:.0f}"]
            for row in r["rows"]]
    return (f"Renderer at {r['rows'][0]['size']}², {r['torch_threads']} CPU thread (frames per CPU-second):\n\n"
            + _table(["model", "batch", "shaded", "rasterized only"], rows))


def procedural() -> str:
    p = _load("procedural")
    rows = [[x["size"], f"{x['baseline']['frames_per_cpu_s']:.0f}", f"{x['batched']['frames_per_cpu_s']:.0f}",
             f"{x['speedup_cpu']:.2f}×"] for x in p["results"]]
    return (f"Procedural clips ({p['face_model']} model, {p['clip_seconds']:.0f} s at {p['fps']} fps, "
            f"{p['torch_threads']} thread), frames per CPU-second:\n\n"
            + _table(["size", "per-frame rendering", "batched", "speed-up"], rows))


def fit_vs_scipy() -> str:
    r = _load("fit_vs_scipy")
    s = r["summary"]
    rows = [["batched torch (ours)", _spread(s["ours"]["cpu_s_per_frame"], ".5f"),
             _spread(s["ours"]["error_px_vs_truth"], ".2f")],
            [f"scipy `least_squares`, converged ({s['scipy_converged']['nfev_median']:.0f} evaluations, median)",
             _spread(s["scipy_converged"]["cpu_s_per_frame"], ".3f"),
             _spread(s["scipy_converged"]["error_px_vs_truth"], ".2f")],
            [f"scipy `least_squares`, {r['our_steps']} evaluations (our budget)",
             _spread(s["scipy_same_budget"]["cpu_s_per_frame"], ".3f"),
             _spread(s["scipy_same_budget"]["error_px_vs_truth"], ".2f")]]
    return (_table(["method", "CPU s / frame", "error vs truth (px)"], rows)
            + f"\n\nOurs is **{_spread(s['ratio_vs_scipy_converged'], '.0f')}×** cheaper per frame than converged "
            f"scipy and {_spread(s['ratio_vs_scipy_same_budget'], '.0f')}× at the same budget "
            f"({r['model']}, 1 thread, median [min–max] of {r['reps']} repetitions).")


def fit_accuracy() -> str:
    r = _load("fit_accuracy")
    names = {"ict": "ICT-FaceKit", "builtin": "built-in"}
    focal = all("focal_rel_error" in x for x in r["synthetic"])
    rows = [[names.get(x["model"], x["model"]), x["noise_px"], f"{x['nme']:.4f}", f"{x['rotation_error_deg']:.2f}",
             f"{x['vertex_error_mm']:.2f}", f"{x['expression_vertex_error_mm']:.2f}"]
            + ([f"{100 * x['focal_rel_error']:.1f}%"] if focal else []) for x in r["synthetic"]]
    text = _table(["model", "noise (px)", "landmark NME", "rotation error (°)", "vertex error (mm)",
                   "expression-only vertex error (mm)"] + (["focal error"] if focal else []), rows)
    if r.get("real"):
        text += "\n\nReal footage, dlib landmarks, built-in model: " + "; ".join(
            f"`{x['video']}` NME {x['nme_mean']:.3f} ({x['face_found']}/{x['frames']} frames with a face)"
            for x in r["real"]) + "."
    return text


def tokenizer() -> str:
    r = _load("tokenizer")
    q, s, setup = r["quality"], r["speed"], r["setup"]
    rows = [[setup["face_model"], setup["clips"], setup["epochs"], f"{q['vertex_error_mm']:.2f}",
             f"{q['vertex_error_mm_expression_only']:.2f}", f"{q['vertex_error_mm_mean_pose']:.1f}",
             f"{100 * q['usage']:.0f}%", f"{q['perplexity']:.0f}", f"{s['encode_batched_frames_per_s']:,}"]]
    return _table(["face", "clips", "epochs", "held-out vertex error (mm)", "expression only (mm)",
                   "mean-pose answer (mm)", "codebook usage", "perplexity", "encode frames/s"], rows)


def lm_train() -> str:
    r = _load("lm_train_bench")
    rows = []
    for case in r["cpu"]:
        if "tokens_per_s_spread" in case:
            cell = _spread(case["tokens_per_s_spread"], ",.0f")
        else:
            rounds = case.get("rounds_tokens_per_s", [case["tokens_per_s"]])
            cell = f"{case['tokens_per_s']:,.0f} [{min(rounds):,.0f}–{max(rounds):,.0f}]"
        rows.append([case["case"], cell, len(case.get("rounds_tokens_per_s", [1]))])
    text = _table(["strategy", "tokens/s, median [min–max]", "rounds"], rows)
    ratio = r.get("ratio_deepspeed_zero2_vs_ddp_spread")
    if ratio:
        text += f"\n\nZeRO-2 / DDP: {_spread(ratio, '.2f')} ({r['settings']})."
    else:
        text += f"\n\nZeRO-2 / DDP: {r['ratio_deepspeed_zero2_vs_ddp']:.2f} ({r['settings']})."
    return text


def pipeline_scaling() -> str:
    r = _load("pipeline_scaling")
    one, two = r["one_worker"], r["two_workers"]

    def cell(x: dict) -> str:
        return _spread(x["clips_per_s_spread"], ".2f") if "clips_per_s_spread" in x else f"{x['clips_per_s']:.2f}"

    rows = [[x["workers"], x["clips"], cell(x)] for x in (one, two)]
    speed = _spread(r["speedup_spread"], ".2f") if "speedup_spread" in r else f"{r['speedup']:.2f}"
    what = r.get("what", "the whole data engine: landmarks, fit and corpus ran alongside synthesis")
    return (_table(["synthesis workers", "clips", "clips/s"], rows)
            + f"\n\nSpeed-up 1 → 2 workers: **{speed}×** on {r['cpus']} CPUs ({what}).")


def main_job_time() -> str:
    r = _load("main_job_time")
    total = r["seconds"]
    rows = [[k, f"{v:.1f}"] for k, v in r["stages"].items()] + [["**total**", f"**{total:.0f}**"]]
    answers = "".join(f"\n    {a}" for a in r.get("answers", []))
    summary = "".join(f"\n\n{e}" for e in r.get("eval", []))
    return (f"`tdmm run --preset tiny`: {int(total // 60)} min {total % 60:.0f} s (budget {r['budget_seconds'] // 60} min)."
            "\n\n" + _table(["stage", "seconds"], rows)
            + (f"\n\nIts two answers, verbatim:\n{answers}" if answers else "") + summary)


SERVE_COLUMNS = [("clients", "clients", "{}"), ("throughput_rps", "throughput (req/s)", "{:.2f}"),
                 ("p50_ms", "p50 ms", "{:,.0f}"), ("p95_ms", "p95 ms", "{:,.0f}"), ("p99_ms", "p99 ms", "{:,.0f}"),
                 ("cpu_ms_per_request_serving", "serving CPU ms / request", "{:,.0f}")]


def _serve_value(value, fmt: str) -> str | None:
    """A number as written, or a {median, min, max} spread as 'median [min–max]'."""
    if isinstance(value, dict) and "median" in value:
        return f"{fmt.format(value['median'])} [{fmt.format(value['min'])}–{fmt.format(value['max'])}]"
    return None if value is None else fmt.format(value)


def serve_load() -> str:
    """Tolerant of the results format: rows per mode under 'summary' (repetitions: median and
    spread) or under 'levels' (one run); columns shown where present; the goals and single-client
    figures listed after the table."""
    r = _load("serve_load")
    source = r.get("summary") or r.get("levels") or {}
    levels = {mode: rows for mode, rows in source.items() if isinstance(rows, list)}
    cols = [c for c in SERVE_COLUMNS if any(row.get(c[0]) is not None for rows in levels.values() for row in rows)]
    rows = [[mode] + [_serve_value(row.get(key), fmt) or "" for key, _, fmt in cols]
            for mode, mode_rows in levels.items() for row in mode_rows]
    text = _table(["mode"] + [label for _, label, _ in cols], rows)
    scalars = {**source.get("single_client", {}), **source.get("goals", {})} if "summary" in r else \
        {k: v for k, v in r.items() if k != "clip_seconds"}
    notes = [f"{k.replace('_', ' ')}: {_serve_value(v, '{:,.2f}')}" for k, v in scalars.items()
             if isinstance(v, dict) and "median" in v or isinstance(v, (int, float)) and not isinstance(v, bool)]
    if notes:
        text += "\n\n" + "; ".join(notes) + "."
    if "repetitions" in r:
        text += f" Median [min–max] of {len(r['repetitions'])} repetitions."
    return text


# ---- "Results (small preset)": one recorded run, benchmarks/results/small_run.json --------------

SPLIT_TITLES = (("test", "test"), ("heldout", "held-out"))
M2L_METHODS = (("generated", "model"), ("ground_truth", "reference caption vs others"), ("retrieval", "retrieval baseline"))
L2M_METHODS = (("generated", "model"), ("ground_truth", "ground-truth motion"), ("retrieval", "retrieval baseline"))
M2L_COLUMNS = (("bleu1", "BLEU-1", ".3f"), ("bleu4", "BLEU-4", ".3f"), ("rougeL", "ROUGE-L", ".3f"),
               ("cider", "CIDEr", ".3f"), ("emotion_acc", "emotion acc", ".3f"),
               ("intensity_acc", "intensity acc", ".3f"), ("head_motion_acc", "head-motion acc", ".3f"))
L2M_COLUMNS = (("r_precision@1", "R@1", ".3f"), ("r_precision@2", "R@2", ".3f"), ("r_precision@3", "R@3", ".3f"),
               ("fid", "FID", ".1f"), ("mm_distance", "MM-dist", ".1f"), ("diversity", "diversity", ".1f"),
               ("multimodality", "multimodality", ".1f"), ("emotion_acc", "emotion acc", ".3f"),
               ("intensity_acc", "intensity acc", ".3f"), ("head_motion_acc", "head-motion acc", ".3f"),
               ("l2", "L2", ".2f"), ("token_acc", "token acc", ".3f"))
WHERE = f"benchmarks/results/{SMALL_RUN}.json"


def _num(r: dict, path: str) -> float:
    value = need(r, path, WHERE)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"{WHERE}: {path!r} is {value!r}, not a number")
    return value


def _cell(value, fmt: str) -> str:
    return "—" if value is None or isinstance(value, float) and math.isnan(value) else f"{value:{fmt}}"


def _method_table(r: dict, direction: str, methods: tuple, columns: tuple, marks: dict | None = None) -> str:
    """Rows per split and method; only the columns some row has (multimodality is the model's alone)."""
    tables = {s: need(r, f"splits/{s}/{direction}", WHERE) for s, _ in SPLIT_TITLES}
    cols = [c for c in columns if any(c[0] in need(t, m, f"{WHERE} splits/{s}/{direction}")
                                      for s, t in tables.items() for m, _ in methods)]
    rows = []
    for split, title in SPLIT_TITLES:
        for i, (method, label) in enumerate(methods):
            row = tables[split][method]
            cells = [_cell(row.get(key), fmt) + (marks or {}).get((method, key), "") for key, _, fmt in cols]
            rows.append([f"{title} ({need(r, f'splits/{split}/clips', WHERE)})" if i == 0 else title, label, *cells])
    return _table(["split", "method", *(label for _, label, _ in cols)], rows)


def small_run() -> str:
    r = _load(SMALL_RUN)
    c, lm, split = need(r, "clips", WHERE), need(r, "lm", WHERE), need(r, "clips/split", WHERE)
    wall = r.get("wall_seconds")
    wall = f"{int(wall // 60)} min {wall % 60:.0f} s wall" if wall is not None else "wall time not recorded"
    planned = f"{c['planned']} clips planned, {c['in_corpus']} in the corpus, " if "planned" in c else ""
    seed = f" (seed {r['seed']})" if r.get("seed") is not None else ""
    return (f"`{need(r, 'command', WHERE)}`{seed}: {planned}{c['fit_qc_pass']} passed fitting QC; "
            f"train {split['train']} / test {split['test']} / held-out {split['heldout']} clips; {wall}; "
            f"LM best step {lm['best_step']} of {lm['steps']}{' (stopped early)' if lm['stopped_early'] else ''}, "
            f"eval loss {lm['eval_loss']:.2f}; commit `{need(r, 'commit', WHERE)}`, evaluated {r.get('evaluated')}.")


def small_m2l() -> str:
    return (_method_table(_load(SMALL_RUN), "m2l", M2L_METHODS, M2L_COLUMNS)
            + "\n\nIntensity acc here scores every clip, neutral ones included; the goals use the signal audit's "
            "model-text figure, which leaves them out.")


def small_l2m() -> str:
    marks = {("ground_truth", "fid"): "¹"}
    return (_method_table(_load(SMALL_RUN), "l2m", L2M_METHODS, L2M_COLUMNS, marks)
            + "\n\n¹ FID of one half of the ground truth against the other: the noise floor at this sample size.")


def small_audit() -> str:
    audit = need(_load(SMALL_RUN), "audit", WHERE)
    return "\n\n".join(summary_lines(audit)) + "\n\n" + _table(*probe_table(audit))


def _goal(label: str, target: str, measured: str, met: bool) -> list[str]:
    return [label, target, measured, "yes" if met else "**no**"]


def _at_least(r: dict, label: str, path: str, target: float, note: str = "") -> list[str]:
    value = _num(r, path)
    return _goal(label, f"≥ {target:.2f}", f"{value:.3f}{note}", value >= target)


def _within_fit(r: dict, axis: str, margin: float = 0.05) -> list[str]:
    """The tokenizer may lose at most `margin` of what a probe reads from the fit it reconstructs."""
    fit = _num(r, f"audit/sources/fit/{axis}/heldout/accuracy")
    tok = _num(r, f"audit/sources/tokenizer reconstruction/{axis}/heldout/accuracy")
    return _goal(f"{axis} from the tokenizer reconstruction, within {margin} of the fit", f"≥ {fit - margin:.3f}",
                 f"{tok:.3f} (fit {fit:.3f})", tok >= fit - margin)


def _head_every_source(r: dict, target: float = 0.95) -> list[str]:
    # Every probed motion source (those with channels); the model's text has its own M2L row.
    sources = {s: row for s, row in need(r, "audit/sources", WHERE).items() if row.get("channels")}
    if not sources:
        raise ValueError(f"{WHERE}: no probed source under 'audit/sources'")
    acc = {s: _num(r, f"audit/sources/{s}/head_motion/heldout/accuracy") for s in sources}
    worst = min(acc, key=acc.get)
    return _goal(f"head motion from every source ({', '.join(acc)})", f"≥ {target:.2f}",
                 f"lowest {acc[worst]:.3f} ({worst})", acc[worst] >= target)


def small_goals() -> str:
    r = _load(SMALL_RUN)
    h = "splits/heldout/l2m"
    gt = f" (ground truth {_num(r, f'{h}/ground_truth/r_precision@3'):.3f})"
    gt_emotion = f" (ground truth {_num(r, f'{h}/ground_truth/emotion_acc'):.3f})"
    r3, r3_ret = _num(r, f"{h}/generated/r_precision@3"), _num(r, f"{h}/retrieval/r_precision@3")
    fid, fid_ret = _num(r, f"{h}/generated/fid"), _num(r, f"{h}/retrieval/fid")
    detector = need(r, "audit/run/detector", WHERE)
    rows = [
        _at_least(r, "M2L emotion accuracy", "splits/heldout/m2l/generated/emotion_acc", 0.90),
        _at_least(r, "M2L head-motion accuracy", "splits/heldout/m2l/generated/head_motion_acc", 0.95),
        _at_least(r, "M2L intensity accuracy, neutral excluded (signal audit, model text)",
                  "audit/sources/model text (M2L)/intensity/heldout/accuracy", 0.70),
        _at_least(r, "L2M evaluator R-precision@3", f"{h}/generated/r_precision@3", 0.80, gt),
        _at_least(r, "L2M: the classifier reads the intended emotion from generated motion",
                  f"{h}/generated/emotion_acc", 0.85, gt_emotion),
        _goal("L2M R-precision@3 above the retrieval baseline", f"> {r3_ret:.3f}", f"{r3:.3f}", r3 > r3_ret),
        _goal("L2M FID below the retrieval baseline (lower is better)", f"< {fid_ret:.1f}", f"{fid:.1f}", fid < fid_ret),
        _at_least(r, f"emotion from the fit (landmarks: {detector})", "audit/sources/fit/emotion/heldout/accuracy", 0.90),
        _at_least(r, "intensity from the fit, neutral excluded", "audit/sources/fit/intensity/heldout/accuracy", 0.65),
        _within_fit(r, "emotion"),
        _within_fit(r, "intensity"),
        _head_every_source(r),
    ]
    met = sum(row[-1] == "yes" for row in rows)
    return _table(["goal (held-out compositions)", "target", "measured", "met?"], rows) + \
        f"\n\n{met} of {len(rows)} goals met."


TABLES: dict[str, Callable[[], str]] = {
    "render": render, "procedural": procedural, "fit_vs_scipy": fit_vs_scipy, "fit_accuracy": fit_accuracy,
    "tokenizer": tokenizer, "lm_train": lm_train, "pipeline_scaling": pipeline_scaling,
    "main_job_time": main_job_time, "serve_load": serve_load,
    "small_run": small_run, "small_goals": small_goals, "small_m2l": small_m2l, "small_l2m": small_l2m,
    "small_audit": small_audit,
}
# Tables of a results file that is recorded by hand after a long run: the README needs their blocks
# only once the file exists (docs/results_section_template.md holds the blocks to paste).
NEEDS_FILE = {name: SMALL_RUN for name in ("small_run", "small_goals", "small_m2l", "small_l2m", "small_audit")}


def expected_blocks() -> set[str]:
    """The tables the README must hold: all, less those whose results file is not recorded yet."""
    return {name for name in TABLES if name not in NEEDS_FILE or (RESULTS / f"{NEEDS_FILE[name]}.json").is_file()}


def regenerate(text: str) -> tuple[str, list[str]]:
    """README text with every known block regenerated; and the names of blocks that changed."""
    changed = []

    def sub(m: re.Match) -> str:
        name = m.group("name")
        if name not in TABLES:
            raise ValueError(f"README block {name!r} has no generator; known: {', '.join(TABLES)}")
        body = TABLES[name]().rstrip("\n") + "\n"
        if body != m.group("body"):
            changed.append(name)
        return m.group(1) + body + m.group(4)

    return BLOCK.sub(sub, text), changed


def blocks_in(text: str) -> list[str]:
    return [m.group("name") for m in BLOCK.finditer(text)]


def main() -> int:
    try:
        return run()
    except ValueError as e:
        print(f"readme_tables: {e}", file=sys.stderr)
        return 1


def run() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if README differs from the results")
    ap.add_argument("--render", type=Path, metavar="FILE", help="print FILE with its blocks filled; README untouched")
    args = ap.parse_args()
    if args.render:
        print(regenerate(args.render.read_text())[0], end="")
        return 0
    text = README.read_text()
    new, changed = regenerate(text)
    missing = sorted(expected_blocks() - set(blocks_in(text)))
    if missing:
        print(f"README has no block for: {', '.join(missing)}", file=sys.stderr)
    if args.check:
        if changed or missing:
            print(f"README out of date: {', '.join(changed) or '-'}; run benchmarks/readme_tables.py", file=sys.stderr)
            return 1
        print("README tables match benchmarks/results")
        return 0
    README.write_text(new)
    print(f"rewrote {len(changed)} block(s): {', '.join(changed) or 'none'}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
