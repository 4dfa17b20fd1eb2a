"""`tdmm eval RUN_URL`: every metric of a trained run, written as report.md / report.html (run folder)
with the figures and metrics.json under eval/."""

from __future__ import annotations

import html
import json
import logging
import math

import numpy as np

from tdmm_ray.config import TdmmConfig
from tdmm_ray.storage import Storage

log = logging.getLogger(__name__)
L2M_COLUMNS = ("r_precision@1", "r_precision@2", "r_precision@3", "fid", "mm_distance", "diversity", "multimodality",
               "emotion_acc", "intensity_acc", "head_motion_acc", "l2", "token_acc")
M2L_COLUMNS = ("bleu1", "bleu4", "rougeL", "cider", "emotion_acc", "intensity_acc", "head_motion_acc")
METHODS = ("generated", "ground_truth", "retrieval")


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


class Doc:
    """One structure rendered twice: Markdown and HTML."""

    def __init__(self, title: str):
        self.md, self.html = [f"# {title}", ""], [f"<h1>{html.escape(title)}</h1>"]

    def heading(self, text: str) -> None:
        self.md += [f"## {text}", ""]
        self.html.append(f"<h2>{html.escape(text)}</h2>")

    def para(self, text: str) -> None:
        self.md += [text, ""]
        self.html.append(f"<p>{html.escape(text)}</p>")

    def table(self, header: list[str], rows: list[list]) -> None:
        self.md += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        self.md += ["| " + " | ".join(_fmt(v) for v in r) + " |" for r in rows] + [""]
        cells = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r) + "</tr>" for r in rows)
        self.html.append(f"<table border=1 cellpadding=4 style='border-collapse:collapse'><tr>{cells}</tr>{body}</table>")

    def image(self, rel: str, caption: str) -> None:
        self.md += [f"![{caption}]({rel})", ""]
        self.html.append(f"<figure><img src='{html.escape(rel)}' style='max-width:100%'><figcaption>{html.escape(caption)}</figcaption></figure>")

    def render(self) -> tuple[str, str]:
        page = "<html><head><meta charset='utf-8'><title>tdmm-ray report</title></head><body style='font-family:sans-serif'>"
        return "\n".join(self.md) + "\n", page + "\n".join(self.html) + "</body></html>\n"


def _figures(ev, results: dict, store: Storage, cfg: TdmmConfig) -> list[tuple[str, str]]:
    from tdmm_ray.evaluation import plots
    from tdmm_ray.prompts.taxonomy import EMOTIONS, HEAD_MOTIONS

    figs = []
    outs = [o for s in results["splits"].values() for o in s.get("m2l_outputs", [])]
    if outs:
        from tdmm_ray.prompts.parser import parse_attributes

        parsed = [parse_attributes(o["text"]) for o in outs]
        for axis, labels in (("emotion", EMOTIONS), ("head_motion", HEAD_MOTIONS)):
            store.write_bytes(f"eval/confusion_{axis}.png", plots.confusion(
                [o["truth"][axis] for o in outs], [p.get(axis) for p in parsed], labels,
                f"Motion2Language: {axis} (test + held-out)"))
            figs.append((f"eval/confusion_{axis}.png", f"Motion2Language {axis} confusion"))
    split = next((s for s in results["splits"].values() if "examples" in s), None)
    if split:
        names = list(ev.tr.face.expression_names) + ["rot_x", "rot_y", "rot_z"]
        ex = []
        for r, g in zip(split["examples"]["rows"][:3], split["examples"]["generated"][:3]):
            ref = np.concatenate([np.asarray(r["expression"]), np.asarray(r["rotation"])], 1)
            gen = np.concatenate([np.asarray(g["parameters"]["expression"]), np.asarray(g["parameters"]["rotation"])], 1)
            ex.append((r["text"], ref, gen, names))
        channels = [c for c in ("jawOpen", "mouthSmile_L", "browInnerUp", "eyeBlink_L") if c in names] + ["rot_x", "rot_y"]
        store.write_bytes("eval/motion_curves.png", plots.motion_curves(ex, channels))
        figs.append(("eval/motion_curves.png", "generated motion curves (dashed) against the corpus reference (solid)"))
        grid = _rendered(ev, split["examples"]["generated"][:cfg.eval.render_examples])
        if grid:
            store.write_bytes("eval/generated_frames.png", plots.frames_grid(grid))
            figs.append(("eval/generated_frames.png", "frames of generated motions (neutral identity)"))
    nme = results.get("fitting", {}).get("nme_values") or []
    if nme:
        store.write_bytes("eval/fit_nme_hist.png", plots.histogram(nme, "fitting: landmark NME per clip", "NME (inter-ocular)"))
        figs.append(("eval/fit_nme_hist.png", "fitting error histogram"))
    for rel, cap in (("lm/loss.png", "language model loss"), ("tokenizer/codebook_usage.png", "motion codebook usage"),
                     ("tokenizer/reconstruction.png", "tokenizer reconstruction")):
        if store.exists(rel):
            figs.append((rel, cap))
    return figs


def _rendered(ev, generated: list[dict]) -> list[tuple[str, np.ndarray]]:
    from tdmm_ray.render.commands import MotionParams, render_params

    rows = []
    for g in generated:
        e, r = np.asarray(g["parameters"]["expression"], np.float32), np.asarray(g["parameters"]["rotation"], np.float32)
        pick = np.linspace(0, len(e) - 1, 5).round().astype(int)
        params = MotionParams(e[pick], r[pick], None, None, float(g["fps"]), ev.tr.face.name)
        rows.append((g["prompt"], render_params(params, ev.tr.face, 128, 128)))
    return rows


def run_eval(cfg: TdmmConfig) -> dict:
    from tdmm_ray.evaluation.audit import run_audit
    from tdmm_ray.evaluation.fitting import fitting_errors
    from tdmm_ray.evaluation.suite import Evaluation
    from tdmm_ray.inference.translator import Translator
    from tdmm_ray.data_engine.read import read_stage
    from tdmm_ray.data_engine.shards import stage_digest
    from tdmm_ray.main_job.corpus import corpus_rows

    store = Storage(cfg.storage)
    tr = Translator.load(cfg.storage)
    tr.guidance = cfg.lm.guidance  # the evaluated setting (`tdmm eval RUN --set lm.guidance=2` compares scales)
    ev = Evaluation(cfg, tr, corpus_rows(cfg))
    results = ev.run()
    fits = read_stage(store, "fit", stage_digest(cfg, "fit")).to_pylist()
    synth = read_stage(store, "synthesize", stage_digest(cfg, "synthesize"))
    truth = {r["clip_id"]: r for r in synth.select(["clip_id", "gt_identity", "gt_expression", "gt_rotation"]).to_pylist()
             if r["gt_expression"] is not None}
    results["fitting"] = fitting_errors(tr.face, fits, truth)
    results["tokenizer"] = store.read_json("tokenizer/report.json") if store.exists("tokenizer/report.json") else {}
    results["audit"] = run_audit(cfg, {s: d.get("m2l_outputs", []) for s, d in results["splits"].items()})
    doc = write_report(cfg, results, _figures(ev, results, store, cfg))
    md, page = doc.render()
    store.write_text("report.md", md)
    store.write_text("report.html", page)
    clean = {k: v for k, v in results.items() if k != "splits"}
    clean["fitting"] = {k: v for k, v in results["fitting"].items() if k != "nme_values"}
    clean["splits"] = {s: {k: v for k, v in d.items() if k != "examples"} for s, d in results["splits"].items()}
    store.write_text("eval/metrics.json", json.dumps(clean, indent=2, default=float))
    log.info("report: %s", store.url("report.md"))
    summary = {"report": store.url("report.md")}
    for split, d in results["splits"].items():
        if "l2m" in d:
            summary[f"{split}_m2l_emotion_acc"] = round(d["m2l"]["generated"]["emotion_acc"], 3)
            summary[f"{split}_m2l_head_motion_acc"] = round(d["m2l"]["generated"]["head_motion_acc"], 3)
            summary[f"{split}_l2m_r_precision@3"] = round(d["l2m"]["generated"]["r_precision@3"], 3)
    return summary


def audit_section(doc: Doc, audit: dict) -> None:
    """The signal audit (eval/audit.md has the same tables): where the run keeps or loses the signal."""
    from tdmm_ray.evaluation.audit_report import channel_table, intensity_table, probe_table, summary_lines

    doc.heading("Signal audit: emotion, intensity and head motion through the stages")
    for line in summary_lines(audit):
        doc.para(line)
    doc.table(*probe_table(audit))
    for header, rows in (intensity_table(audit), channel_table(audit)):
        if rows:
            doc.table(header, rows)
    doc.image("eval/audit.png", "probe accuracy per stage (held-out compositions)")


def write_report(cfg: TdmmConfig, results: dict, figures: list[tuple[str, str]]) -> Doc:
    doc = Doc(f"tdmm-ray evaluation — {cfg.storage}")
    doc.para(f"preset {cfg.preset}, seed {cfg.seed}, face model {cfg.face.model}. "
             "`ground_truth` rows are references: the corpus motion scored by the same evaluator (FID: one half "
             "against the other), or one corpus caption scored against the others. `retrieval` is the nearest "
             "training example (by prompt TF-IDF for Language2Motion, by evaluator motion embedding for Motion2Language).")
    for split, d in results["splits"].items():
        name = {"test": "in-distribution test prompts", "heldout": "held-out compositions"}[split]
        if "l2m" not in d:
            doc.heading(f"{name}: {d.get('note')}")
            continue
        doc.heading(f"Motion2Language — {name} ({d['clips']} clips)")
        doc.table(["method", *M2L_COLUMNS], [[m, *(d["m2l"][m].get(c) for c in M2L_COLUMNS)] for m in METHODS])
        doc.heading(f"Language2Motion — {name} ({d['clips']} clips)")
        doc.table(["method", *L2M_COLUMNS], [[m, *(d["l2m"][m].get(c) for c in L2M_COLUMNS)] for m in METHODS])
        outs = d["m2l_outputs"][:5]
        doc.table(["clip", "truth (emotion / intensity / head)", "generated description"],
                  [[o["clip_id"], " / ".join(str(v) for v in o["truth"].values()), o["text"]] for o in outs])
    f = results["fitting"]
    doc.heading("Fitting")
    doc.table(["clips", "QC pass", "NME median", "NME mean", "expression MAE", "rotation error (deg)", "vertex error (mm)"],
              [[f["clips"], f["qc_pass"], f.get("nme_median"), f.get("nme_mean"), f.get("expression_mae"),
                f.get("rotation_error_deg"), f.get("vertex_error_mm")]])
    t = results["tokenizer"]
    if t:
        doc.heading("Motion tokenizer (held-out clips)")
        keys = [k for k in ("vertex_error_mm", "vertex_error_mm_expression_only", "rotation_error_deg",
                            "vertex_error_mm_mean_pose", "usage", "perplexity", "codebook_size", "head_codes") if k in t]
        doc.table(keys, [[t[k] for k in keys]])
    if results.get("audit"):
        audit_section(doc, results["audit"])
    doc.heading("Figures")
    for rel, cap in figures:
        doc.image(rel, cap)
    return doc
