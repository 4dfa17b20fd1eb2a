"""Balance report of a prompt suite: counts per axis and per split, as JSON, Markdown and a PNG."""

from __future__ import annotations

import io
from collections import Counter

from tdmm_ray.prompts.taxonomy import ACTIONS, DYNAMICS, EMOTIONS, HEAD_MOTIONS, INTENSITIES

SPLITS = ("train", "test", "heldout")
SPLIT_COLORS = {"train": "#4C72B0", "test": "#DD8452", "heldout": "#55A868"}


def _axes(rows: list[dict]) -> dict[str, tuple[str, ...]]:
    generators = tuple(sorted({r["generator"] for r in rows}))
    return {
        "emotion": EMOTIONS, "intensity": INTENSITIES, "head_motion": HEAD_MOTIONS, "dynamics": DYNAMICS,
        "actions": ACTIONS, "n_actions": ("0", "1", "2"), "target_emotion": EMOTIONS, "generator": generators,
    }


def _values(row: dict, axis: str) -> list[str]:
    if axis == "actions":
        return list(row["actions"])
    if axis == "n_actions":
        return [str(len(row["actions"]))]
    value = row[axis]
    return [] if value is None else [value]


def balance_report(rows: list[dict]) -> dict:
    """{"n", "splits": {split: n}, "axes": {axis: {"total": {value: n}, "by_split": {split: {value: n}},
    "spread": max - min over the axis values}}}. Actions count occurrences; n_actions counts rows."""
    if not rows:
        raise ValueError("balance_report needs at least one prompt row")
    report: dict = {"n": len(rows), "splits": {s: sum(r["split"] == s for r in rows) for s in SPLITS}, "axes": {}}
    for axis, values in _axes(rows).items():
        total: Counter = Counter()
        by_split: dict[str, Counter] = {s: Counter() for s in SPLITS}
        for row in rows:
            for v in _values(row, axis):
                total[v] += 1
                by_split[row["split"]][v] += 1
        counts = [total[v] for v in values]
        report["axes"][axis] = {
            "total": {v: total[v] for v in values},
            "by_split": {s: {v: by_split[s][v] for v in values} for s in SPLITS},
            "spread": (max(counts) - min(counts)) if counts else 0,
        }
    return report


def balance_markdown(report: dict, heldout_pairs: list[tuple[str, str]] | None = None) -> str:
    lines = [f"# Prompt suite balance ({report['n']} prompts)", "",
             "| split | prompts |", "|---|---:|"]
    lines += [f"| {s} | {n} |" for s, n in report["splits"].items()]
    for axis, data in report["axes"].items():
        lines += ["", f"## {axis} (spread {data['spread']})", "",
                  "| value | " + " | ".join(SPLITS) + " | total |", "|---|" + "---:|" * (len(SPLITS) + 1)]
        for value, total in data["total"].items():
            cells = " | ".join(str(data["by_split"][s][value]) for s in SPLITS)
            lines.append(f"| {value} | {cells} | {total} |")
    if heldout_pairs:
        lines += ["", f"## held-out emotion x head-motion pairs ({len(heldout_pairs)})", ""]
        lines += [f"- {e} + {h}" for e, h in heldout_pairs]
    return "\n".join(lines) + "\n"


def balance_png(report: dict) -> bytes:
    """Bar charts per axis, stacked by split. Uses the Agg canvas directly (no pyplot global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    axes_data = report["axes"]
    n_cols = 2
    n_rows = (len(axes_data) + n_cols - 1) // n_cols
    fig = Figure(figsize=(12, 3.2 * n_rows))
    # Fixed margins: a constrained layout would cost seconds per figure for no visible gain here.
    fig.subplots_adjust(left=0.06, right=0.98, top=0.95, bottom=0.07, hspace=0.75, wspace=0.15)
    FigureCanvasAgg(fig)
    for k, (axis, data) in enumerate(axes_data.items()):
        ax = fig.add_subplot(n_rows, n_cols, k + 1)
        values = list(data["total"])
        bottom = [0] * len(values)
        for split in SPLITS:
            heights = [data["by_split"][split][v] for v in values]
            ax.bar(range(len(values)), heights, bottom=bottom, color=SPLIT_COLORS[split], label=split)
            bottom = [b + h for b, h in zip(bottom, heights)]
        ax.set_title(axis)
        ax.set_xticks(range(len(values)), values, rotation=45, ha="right", fontsize=8)
        ax.set_ylabel("prompts" if axis not in ("actions",) else "occurrences")
        if k == 0:
            fig.legend(loc="upper right", ncol=len(SPLITS), fontsize=9)
    fig.suptitle(f"Prompt suite balance ({report['n']} prompts)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()
