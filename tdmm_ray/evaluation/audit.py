"""The signal audit: where a run keeps or loses the prompt's emotion, intensity and head motion.

Every stage's motion is read the same way: per-clip statistics (probe.sequence_stats) into a linear
probe trained on the run's training clips and scored on held-out compositions and test clips.

| source               | what a clip's motion is                                                     |
|----------------------|-----------------------------------------------------------------------------|
| ground truth         | the procedural generator's own expression + rotation (procedural clips)     |
| landmarks            | the detector's points, IOD-normalised and roll-aligned, plus the pose taken out |
| fit                  | fitted expression + rotation (QC-passed clips)                              |
| tokenizer recon.     | the fit encoded to motion tokens and decoded back (the corpus tokens)       |
| motion codes         | the share of each code in the clip's tokens (a bag of codes)                |
| model text           | Motion2Language's own description, parsed (from the eval, when it ran)      |

All probe rows use the same clips (those every available source has), so rows compare like with like.
Intensity is scored with neutral clips left out (a neutral face has no intensity to see). A source a
run does not have yet is kept in the table as "n/a" with the reason. `tdmm audit RUN` writes
eval/audit.{json,md,png}; `tdmm eval` runs it too and puts the table into the report.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from tdmm_ray.evaluation.probe import (
    code_histogram, confused_pairs, landmark_channels, one_thread, probe_accuracy, sequence_stats,
)
from tdmm_ray.manifest import Manifest
from tdmm_ray.prompts.taxonomy import EMOTIONS, HEAD_MOTIONS, INTENSITIES
from tdmm_ray.storage import Storage

log = logging.getLogger(__name__)
AXES = {"emotion": EMOTIONS, "intensity": INTENSITIES, "head_motion": HEAD_MOTIONS}
EVAL_SPLITS = ("heldout", "test")
SOURCES = ("ground truth", "landmarks", "fit", "tokenizer reconstruction", "motion codes")
MODEL_TEXT = "model text (M2L)"


def _dense(arr: pa.Array) -> np.ndarray:
    """A nested Arrow list array (one clip's [T,K] or [T,68,2]) -> a dense float32 array."""
    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        inner = _dense(arr.flatten())
        return inner.reshape((len(arr), -1) + inner.shape[1:]) if len(arr) else inner
    return arr.to_numpy(zero_copy_only=False).astype(np.float32)


def _column(table: pa.Table, name: str) -> list[np.ndarray | None]:
    """Per-row dense arrays of a nested column, None for nulls: much faster than to_pylist."""
    if name not in table.column_names:
        return [None] * table.num_rows
    out: list[np.ndarray | None] = []
    for chunk in table.column(name).chunks:
        for i in range(len(chunk)):
            item = chunk[i]
            out.append(_dense(item.values) if item.is_valid and len(item.values) else None)
    return out


def _read_stage(store: Storage, stage: str) -> tuple[pa.Table | None, str]:
    """The stage's shards as the run finished them (the digest in its stage record, so a config
    schema that grew since does not hide them), or None with the reason."""
    from tdmm_ray.data_engine.run import read_stage

    record = Manifest(store).stage_record(stage)
    if record is None:
        return None, f"no finished {stage} stage in this run"
    try:
        return read_stage(store, stage, record["digest"]), ""
    except ValueError as err:
        return None, str(err)


class RunMotion:
    """Everything the audit reads from a run folder, keyed by clip id."""

    def __init__(self, store: Storage):
        self.store = store
        self.labels: dict[str, dict] = {}
        self.motion: dict[str, dict[str, np.ndarray]] = {s: {} for s in SOURCES}
        self.reason: dict[str, str] = {}
        self.channels: list[str] = []
        self._load()

    def _load(self) -> None:
        store = self.store
        if not store.exists("prompts/prompts.parquet"):
            raise ValueError(f"{store.root} has no prompts/prompts.parquet: not a tdmm run folder (run `tdmm generate`)")
        prompts = {r["prompt_id"]: r for r in store.read_table("prompts/prompts.parquet").to_pylist()}
        synth, why = _read_stage(store, "synthesize")
        if synth is None:
            raise ValueError(f"the audit needs synthesized clips: {why}")
        ids = synth.column("clip_id").to_pylist()
        for cid, pid, status in zip(ids, synth.column("prompt_id").to_pylist(), synth.column("status").to_pylist()):
            p = prompts.get(pid)
            if p is not None and status == "ok":
                self.labels[cid] = {"emotion": p["emotion"], "intensity": p["intensity"],
                                    "head_motion": p["head_motion"], "split": p["split"]}
        self._pairs("ground truth", ids, _column(synth, "gt_expression"), _column(synth, "gt_rotation"),
                    "no ground truth: clips from a generator without procedural parameters")
        self._load_landmarks()
        fit, why = _read_stage(store, "fit")
        if fit is None:
            for s in ("fit", "tokenizer reconstruction", "motion codes"):
                self.reason[s] = why
            return
        passed = fit.filter(pc.equal(fit.column("qc_pass"), True))
        self._pairs("fit", passed.column("clip_id").to_pylist(), _column(passed, "expression"),
                    _column(passed, "rotation"), "no clip passed the fit's QC")
        self._load_tokens()

    def _pairs(self, source: str, ids, expressions, rotations, empty_reason: str) -> None:
        for cid, e, r in zip(ids, expressions, rotations):
            if e is not None and r is not None and cid in self.labels:
                self.motion[source][cid] = np.concatenate([e, r], 1)
        if not self.motion[source]:
            self.reason[source] = empty_reason

    def _load_landmarks(self) -> None:
        table, why = _read_stage(self.store, "landmarks")
        if table is None:
            self.reason["landmarks"] = why
            return
        for cid, pts, status in zip(table.column("clip_id").to_pylist(), _column(table, "landmarks"),
                                    table.column("status").to_pylist()):
            if status == "ok" and pts is not None and cid in self.labels:
                # Kept as per-clip statistics: a 468-point sequence for every clip would not fit in memory.
                self.motion["landmarks"][cid] = sequence_stats(landmark_channels(pts)).astype(np.float32)
        if not self.motion["landmarks"]:
            self.reason["landmarks"] = "no clip has landmarks"

    @torch.inference_mode()
    def _load_tokens(self) -> None:
        from tdmm_ray.tokenizer.motion_tokenizer import MotionTokenizer

        store = self.store
        if not store.exists("tokenizer/config.json"):
            self.reason["tokenizer reconstruction"] = self.reason["motion codes"] = "no motion tokenizer yet (`tdmm train-tokenizer`)"
            return
        with one_thread():
            self._reconstruct(MotionTokenizer.load(store.url("tokenizer")))

    def _reconstruct(self, tok) -> None:
        from tdmm_ray.tokenizer.features import split_features

        store = self.store
        fits = self.motion["fit"]
        tokens: dict[str, np.ndarray] = {}
        for name in store.list("tokens", suffix=".parquet"):
            t = store.read_table(f"tokens/{name}")
            for cid, seq, version in zip(t.column("clip_id").to_pylist(), t.column("tokens").to_pylist(),
                                         t.column("tokenizer_version").to_pylist()):
                if cid in fits and version == tok.version:
                    tokens[cid] = np.asarray(seq, np.int64)
        missing = [c for c in fits if c not in tokens]
        if missing:  # not tokenized (yet, or by another tokenizer): encode the fits here, batched by length
            for cid, seq in zip(missing, tok.encode_many([fits[c] for c in missing])):
                tokens[cid] = seq
        # Decode in batches of equal (token count, frame count): one forward per group, as decode_features
        # would give each clip alone (no padding).
        groups: dict[tuple[int, int], list[str]] = defaultdict(list)
        for cid, seq in tokens.items():
            groups[(len(seq), len(fits[cid]))].append(cid)
        for (_, frames), members in groups.items():
            for start in range(0, len(members), 256):
                chunk = members[start:start + 256]
                codes = torch.from_numpy(np.stack([tokens[c] for c in chunk])).to(tok.device)
                out = tok.stats.denormalize(tok.model.decode(codes, frames).cpu().numpy())
                for cid, feats in zip(chunk, out):
                    e, r = split_features(feats, tok.n_expression)
                    self.motion["tokenizer reconstruction"][cid] = np.concatenate([e, r], 1)
                    self.motion["motion codes"][cid] = tokens[cid]
        self.codebook_size = tok.codebook_size
        if not tokens:
            self.reason["tokenizer reconstruction"] = self.reason["motion codes"] = "no fitted clip to tokenize"


def _features(run: RunMotion, source: str, clips: list[str]) -> np.ndarray:
    if source == "motion codes":
        return np.stack([code_histogram(run.motion[source][c], run.codebook_size) for c in clips])
    if source == "landmarks":  # already per-clip statistics
        return np.stack([run.motion[source][c] for c in clips])
    return np.stack([sequence_stats(run.motion[source][c]) for c in clips])


def _axis_clips(run: RunMotion, clips: list[str], axis: str) -> list[str]:
    return [c for c in clips if axis != "intensity" or run.labels[c]["emotion"] != "neutral"]


def probe_sources(run: RunMotion, seed: int = 0) -> dict:
    """The probe table: per source, per axis, accuracy on each eval split (+ chance, by intensity,
    most-confused emotion pairs)."""
    available = [s for s in SOURCES if run.motion[s]]
    common = [c for c in run.labels if all(c in run.motion[s] for s in available)]
    split_of = {c: run.labels[c]["split"] for c in common}
    train = [c for c in common if split_of[c] == "train"]
    out: dict = {"clips": {s: sum(split_of[c] == s for c in common) for s in ("train", *EVAL_SPLITS)}, "sources": {}}
    for source in SOURCES:
        if source not in available:
            out["sources"][source] = {"available": False, "reason": run.reason.get(source, "not in this run")}
            continue
        feats = dict(zip(common, _features(run, source, common)))
        row: dict = {"available": True, "channels": int(next(iter(feats.values())).shape[0])}
        for axis, labels in AXES.items():
            tr = _axis_clips(run, train, axis)
            if len({run.labels[c][axis] for c in tr}) < 2:
                row[axis] = {"reason": "fewer than 2 classes among training clips"}
                continue
            evals = {}
            for split in EVAL_SPLITS:
                ev = _axis_clips(run, [c for c in common if split_of[c] == split], axis)
                if ev:
                    evals[split] = (np.stack([feats[c] for c in ev]), [run.labels[c][axis] for c in ev])
            scores = probe_accuracy(np.stack([feats[c] for c in tr]), [run.labels[c][axis] for c in tr], evals,
                                    labels, seed=seed) if evals else {}
            row[axis] = {}
            for split in EVAL_SPLITS:
                if split not in scores:
                    row[axis][split] = None
                    continue
                res, (_, truth) = scores[split], evals[split]
                ev = _axis_clips(run, [c for c in common if split_of[c] == split], axis)
                cell = {"accuracy": res["accuracy"], "chance": res["chance"], "n": len(ev), "l2": res["l2"]}
                if axis == "emotion":
                    cell["confused"] = confused_pairs(truth, res["pred"])
                    cell["by_intensity"] = {
                        lvl: float(np.mean([p == t for p, t, c in zip(res["pred"], truth, ev)
                                            if run.labels[c]["intensity"] == lvl]))
                        for lvl in INTENSITIES if any(run.labels[c]["intensity"] == lvl for c in ev)}
                row[axis][split] = cell
        out["sources"][source] = row
    return out


def model_text_row(m2l_outputs: dict[str, list[dict]] | None) -> dict:
    """Attribute accuracy of the model's own descriptions (from `tdmm eval`), split by split."""
    from tdmm_ray.prompts.parser import parse_attributes

    if not m2l_outputs or not any(m2l_outputs.values()):
        return {"available": False, "reason": "no Motion2Language outputs (run `tdmm eval` after `tdmm train-lm`)"}
    row: dict = {"available": True, "channels": None}
    for axis in AXES:
        row[axis] = {}
        for split in EVAL_SPLITS:
            outs = [o for o in m2l_outputs.get(split, []) if axis != "intensity" or o["truth"]["emotion"] != "neutral"]
            if not outs:
                row[axis][split] = None
                continue
            pred = [parse_attributes(o["text"]).get(axis) for o in outs]
            truth = [o["truth"][axis] for o in outs]
            row[axis][split] = {"accuracy": float(np.mean([p == t for p, t in zip(pred, truth)])), "n": len(outs),
                                "chance": None}
            if axis == "emotion":
                row[axis][split]["confused"] = confused_pairs(truth, [p or "(none)" for p in pred])
    return row


def channel_agreement(run: RunMotion, names: list[str]) -> dict:
    """Per channel, fit-vs-truth Pearson correlation over every frame of the clips that have both;
    channels the generator never drives are listed with the mean weight the fit puts into them."""
    gt, fit = run.motion["ground truth"], run.motion["fit"]
    clips = [c for c in fit if c in gt and gt[c].shape == fit[c].shape]
    if not clips:
        return {"available": False, "reason": "no clip has both ground truth and a fit"}
    g = np.concatenate([gt[c] for c in clips]).astype(np.float64)
    f = np.concatenate([fit[c] for c in clips]).astype(np.float64)
    names = list(names) + ["rot_x", "rot_y", "rot_z"] if len(names) + 3 == g.shape[1] else [f"ch{k}" for k in range(g.shape[1])]
    driven, undriven = {}, {}
    for k, name in enumerate(names):
        if g[:, k].std() < 1e-3:
            undriven[name] = float(np.abs(f[:, k]).mean())
        else:
            r = np.corrcoef(g[:, k], f[:, k])[0, 1] if f[:, k].std() > 1e-9 else 0.0
            driven[name] = {"r": float(r), "truth_std": float(g[:, k].std())}
    return {"available": True, "clips": len(clips), "driven": driven, "undriven_mean_weight": undriven,
            "mean_r_driven": float(np.mean([v["r"] for v in driven.values()])) if driven else None,
            "mean_undriven_weight": float(np.mean(list(undriven.values()))) if undriven else None}


def _detector_label(lm) -> str:
    """The detector as its landmark rows name it, without the noise: 'projected468' for dense projections."""
    return "projected468" if lm.detector == "projected" and lm.points == "mediapipe468" else lm.detector


def run_audit(cfg, m2l_outputs: dict[str, list[dict]] | None = None, write: bool = True) -> dict:
    """Audit the run at cfg.storage; writes eval/audit.{json,md,png} unless write=False."""
    from tdmm_ray.evaluation.audit_report import audit_markdown, audit_plot
    from tdmm_ray.face.registry import load_face_model

    store = Storage(cfg.storage)
    if m2l_outputs is None and store.exists("eval/metrics.json"):
        splits = json.loads(store.read_text("eval/metrics.json")).get("splits", {})
        m2l_outputs = {s: d.get("m2l_outputs", []) for s, d in splits.items()}
    run = RunMotion(store)
    result = probe_sources(run, seed=cfg.seed)
    result["sources"][MODEL_TEXT] = model_text_row(m2l_outputs)
    result["fit_vs_truth"] = channel_agreement(run, load_face_model(cfg.face).expression_names)
    result["run"] = {"storage": cfg.storage, "face_model": cfg.face.model, "detector": _detector_label(cfg.landmarks)}
    if write:
        store.write_text("eval/audit.json", json.dumps(result, indent=2))
        store.write_text("eval/audit.md", audit_markdown(result))
        store.write_bytes("eval/audit.png", audit_plot(result))
        log.info("audit: %s", store.url("eval/audit.md"))
    return result
