"""The signal audit as tables (shared by eval/audit.md and the report) and a bar chart."""

from __future__ import annotations

import numpy as np

from tdmm_ray.prompts.taxonomy import INTENSITIES

AXIS_TITLES = (("emotion", "emotion"), ("intensity", "intensity (no neutral)"), ("head_motion", "head motion"))


def _acc(cell) -> str:
    if not cell:
        return "—"
    return f"{cell['accuracy']:.2f}"


def probe_table(result: dict) -> tuple[list[str], list[list[str]]]:
    """One row per source: accuracy on held-out compositions and test for each axis, or n/a + reason."""
    header = ["motion the probe reads"] + [f"{t} held-out / test" for _, t in AXIS_TITLES] + ["most-confused emotions (held-out)"]
    rows = []
    for source, row in result["sources"].items():
        if not row.get("available"):
            rows.append([source, "n/a", "n/a", "n/a", f"n/a: {row.get('reason', '')}"])
            continue
        cells = []
        for axis, _ in AXIS_TITLES:
            a = row.get(axis, {})
            cells.append(f"n/a: {a['reason']}" if "reason" in a else f"{_acc(a.get('heldout'))} / {_acc(a.get('test'))}")
        held = (row.get("emotion") or {}).get("heldout") or {}
        confused = ", ".join(f"{t}→{p} ({n})" for t, p, n in held.get("confused", [])) or "—"
        rows.append([source, *cells, confused])
    chance = next((r for r in result["sources"].values() if r.get("available") and r.get("channels")), None)
    if chance:
        cells = []
        for axis, _ in AXIS_TITLES:
            a = chance.get(axis, {})
            h, t = a.get("heldout") or {}, a.get("test") or {}
            cells.append(f"{h.get('chance', float('nan')):.2f} / {t.get('chance', float('nan')):.2f}" if h and t else "—")
        rows.append(["chance (training majority)", *cells, ""])
    return header, rows


def intensity_table(result: dict) -> tuple[list[str], list[list[str]]]:
    """Emotion accuracy on held-out compositions by intensity level, per source."""
    header = ["emotion accuracy (held-out) by intensity", *INTENSITIES]
    rows = []
    for source, row in result["sources"].items():
        held = ((row.get("emotion") or {}).get("heldout") or {}) if row.get("available") else {}
        by = held.get("by_intensity")
        if by:
            rows.append([source, *(f"{by[lvl]:.2f}" if lvl in by else "—" for lvl in INTENSITIES)])
    return header, rows


def channel_table(result: dict, top: int = 8) -> tuple[list[str], list[list[str]]]:
    fvt = result.get("fit_vs_truth", {})
    if not fvt.get("available"):
        return [], []
    ranked = sorted(fvt["driven"].items(), key=lambda kv: kv[1]["r"])
    pick = ranked[:top] + [kv for kv in ranked[-3:] if kv not in ranked[:top]]
    return ["channel (driven by the generator)", "fit-vs-truth r", "truth std"], [
        [name, f"{v['r']:.2f}", f"{v['truth_std']:.3f}"] for name, v in pick]


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows] + [""]


def summary_lines(result: dict) -> list[str]:
    c = result["clips"]
    lines = [f"Linear probes (per-clip statistics → multinomial logistic regression) trained on {c['train']} training "
             f"clips, scored on {c['heldout']} held-out-composition clips / {c['test']} test clips; every probe row uses "
             "the same clips. Intensity leaves neutral clips out. The model-text row parses Motion2Language's own "
             "descriptions of the eval's clips."]
    fvt = result.get("fit_vs_truth", {})
    if fvt.get("available"):
        lines.append(f"Fit vs ground truth over {fvt['clips']} clips: mean correlation over driven channels "
                     f"{fvt['mean_r_driven']:.2f}; channels the generator never drives get a mean fitted weight of "
                     + (f"{fvt['mean_undriven_weight']:.3f}." if fvt["mean_undriven_weight"] is not None else "— (none)."))
    return lines


def audit_markdown(result: dict) -> str:
    run = result.get("run", {})
    md = [f"# Signal audit — {run.get('storage', '')}", "",
          f"face model {run.get('face_model')}, landmarks {run.get('detector')}.", ""]
    md += [line + "\n" for line in summary_lines(result)]
    md += _md_table(*probe_table(result))
    header, rows = intensity_table(result)
    if rows:
        md += ["## Emotion by intensity level", ""] + _md_table(header, rows)
    header, rows = channel_table(result)
    if rows:
        md += ["## Fit vs truth, per channel (weakest first)", ""] + _md_table(header, rows)
    md += ["![probe accuracy](audit.png)", ""]
    return "\n".join(md)


def audit_plot(result: dict) -> bytes:
    from tdmm_ray.evaluation.plots import _plt, _png

    plt = _plt()
    sources = list(result["sources"])
    fig, ax = plt.subplots(figsize=(9, 3.6))
    width = 0.8 / len(AXIS_TITLES)
    for k, (axis, title) in enumerate(AXIS_TITLES):
        vals = []
        for s in sources:
            cell = ((result["sources"][s].get(axis) or {}).get("heldout") or {}) if result["sources"][s].get("available") else {}
            vals.append(cell.get("accuracy", np.nan))
        ax.bar(np.arange(len(sources)) + (k - 1) * width, vals, width, label=title)
    ax.set_xticks(range(len(sources)), sources, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("probe accuracy (held-out)")
    ax.legend(fontsize=8)
    ax.set_title("Where the signal goes: linear probes per stage")
    return _png(fig)
