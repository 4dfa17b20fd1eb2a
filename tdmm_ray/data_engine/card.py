"""The dataset card written at the end of `tdmm generate`: what the corpus holds and what was rejected."""

from __future__ import annotations

import io
from collections import Counter

from matplotlib.figure import Figure

from tdmm_ray.config import TdmmConfig
from tdmm_ray.data_engine.read import read_stage
from tdmm_ray.data_engine.shards import stage_digest
from tdmm_ray.storage import Storage

AXES = ("generator", "split", "emotion", "intensity", "head_motion", "dynamics")


def summarize(corpus: list[dict], fits: list[dict], clips: list[dict]) -> dict:
    rejected = Counter()
    for c in clips:
        if c.get("status") != "ok":
            rejected[f"synthesis: {(c.get('error') or 'error').split(':')[0]}"] += 1
    for f in fits:
        if not f.get("qc_pass"):
            rejected[f.get("qc_reason") or "unknown"] += 1
    seconds = sum(r["n_frames"] / r["fps"] for r in corpus if r.get("fps"))
    return {
        "clips_planned": len(clips),
        "clips_in_corpus": len(corpus),
        "hours": round(seconds / 3600, 4),
        "minutes": round(seconds / 60, 2),
        "counts": {axis: dict(sorted(Counter(str(r.get(axis)) for r in corpus).items())) for axis in AXES},
        "actions": dict(sorted(Counter(a for r in corpus for a in (r.get("actions") or [])).items())),
        "rejections": dict(rejected.most_common()),
        "fit_nme_median": _median([f["nme"] for f in fits if f.get("nme") is not None]),
    }


def _median(values: list[float]) -> float | None:
    values = sorted(v for v in values if v == v)
    return None if not values else float(values[len(values) // 2])


def _markdown(card: dict) -> str:
    lines = ["# Dataset card", "",
             f"- clips planned: {card['clips_planned']}",
             f"- clips in corpus: {card['clips_in_corpus']} ({card['minutes']} min, {card['hours']} h)",
             f"- median fit NME: {card['fit_nme_median']}", ""]
    for axis, counts in card["counts"].items():
        lines += [f"## {axis}", "", "| value | clips |", "|---|---|"] + [f"| {k} | {v} |" for k, v in counts.items()] + [""]
    lines += ["## actions", "", "| action | clips |", "|---|---|"] + [f"| {k} | {v} |" for k, v in card["actions"].items()] + [""]
    lines += ["## QC rejections", "", "| reason | clips |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in card["rejections"].items()] or ["| (none) | 0 |"]
    return "\n".join(lines) + "\n\n![dataset card](dataset_card.png)\n"


def _plot(card: dict) -> bytes:
    panels = list(card["counts"].items()) + [("actions", card["actions"]), ("QC rejections", card["rejections"])]
    fig = Figure(figsize=(16, 7))  # no pyplot: no global figure state, no GUI backend
    axes = fig.subplots(2, 4)
    for ax, (title, counts) in zip(axes.ravel(), panels):
        ax.bar(range(len(counts)), list(counts.values()), color="#4c72b0")
        ax.set_xticks(range(len(counts)), list(counts.keys()), rotation=60, ha="right", fontsize=7)
        ax.set_title(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


def write_dataset_card(cfg: TdmmConfig, storage: Storage) -> dict:
    corpus = read_stage(storage, "corpus", stage_digest(cfg, "corpus"))
    fits = read_stage(storage, "fit", stage_digest(cfg, "fit"))
    clips = read_stage(storage, "synthesize", stage_digest(cfg, "synthesize"))
    keep = ["clip_id", "n_frames", "fps", "actions", *AXES]
    card = summarize(corpus.select([c for c in keep if c in corpus.column_names]).to_pylist(),
                     fits.select(["clip_id", "qc_pass", "qc_reason", "nme"]).to_pylist(),
                     clips.select(["clip_id", "status", "error"]).to_pylist())
    storage.write_json("dataset_card.json", card)
    storage.write_text("dataset_card.md", _markdown(card))
    storage.write_bytes("dataset_card.png", _plot(card))
    return card
