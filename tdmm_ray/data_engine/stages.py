"""The four data-engine stages as Ray Data actors (see base.py for the shared shard handling).

synthesize: prompt rows -> clips (video on storage, procedural ground truth)
landmarks:  clips -> landmarks per frame (projected ground truth, dlib or FAN: 68; MediaPipe: 468)
fit:        landmarks of the whole shard -> one batched fit (identity, expression, pose, QC)
corpus:     fitted clips that pass QC + prompt attributes + captions -> the text <-> motion corpus
Every bad clip becomes a row with a status and an error; nothing raises out of a shard.
"""

from __future__ import annotations

import logging
import random

import numpy as np
import pyarrow as pa
import torch

from tdmm_ray.data_engine.base import ShardStage, error_text, rows_to_table
from tdmm_ray.face.registry import load_face_model
from tdmm_ray.fit.solver import BatchedFitter
from tdmm_ray.landmarks import make_detector, point_set_of
from tdmm_ray.fit.landmark_basis import landmark_embedding
from tdmm_ray.landmarks.projected import ProjectedDetector, project_embedded
from tdmm_ray.prompts.render import caption
from tdmm_ray.render.video import read_video
from tdmm_ray.schema import CLIP_COLUMNS, CORPUS_COLUMNS, FIT_COLUMNS, LANDMARK_COLUMNS, from_nested, to_nested

log = logging.getLogger(__name__)
CARRIED = ("prompt_id", "fps", "n_frames", "width", "height")  # what later stages need from a clip row


class SynthStage(ShardStage):
    """Procedural clips (CPU actors)."""

    stage = "synthesize"

    def process(self, shard: str, table: pa.Table) -> pa.Table:
        from tdmm_ray.synth.procedural import synthesize_row

        rows = [synthesize_row(row, self.cfg, self.storage, seed=row["seed"]) for row in table.to_pylist()]
        return rows_to_table(rows, CLIP_COLUMNS)


class DiffusionSynthStage(ShardStage):
    """One text-to-video family's clips (GPU actors); a shard holds a single family's clips."""

    stage = "synthesize"

    def __init__(self, cfg_json: str, storage_root: str, family: str):
        super().__init__(cfg_json, storage_root)
        from tdmm_ray.synth.diffusion.generator import DiffusionGenerator

        diffusion = self.cfg.diffusion
        self.generator = DiffusionGenerator.load(family, diffusion.family(family), diffusion.cache_dir)

    def process(self, shard: str, table: pa.Table) -> pa.Table:
        from tdmm_ray.synth.diffusion.generator import synthesize_batch

        rows = table.to_pylist()
        assert {r["generator"] for r in rows} == {self.generator.name}, f"shard {shard} mixes generators"
        return rows_to_table(synthesize_batch(rows, self.generator, self.cfg, self.storage), CLIP_COLUMNS)


class LandmarkStage(ShardStage):
    stage = "landmarks"

    def __init__(self, cfg_json: str, storage_root: str):
        super().__init__(cfg_json, storage_root)
        lm = self.cfg.landmarks
        self.detector = None
        self.dense = None  # (face model, embedding) when projected points are computed, not read from the clip
        if lm.detector != "projected":
            self.detector = make_detector(lm.detector)
        elif lm.points != "ibug68":
            model = load_face_model(self.cfg.face)
            self.dense = (model, landmark_embedding(model, lm.points))

    @staticmethod
    def _found(points: np.ndarray, conf: np.ndarray, name: str) -> dict:
        return {"landmarks": points.tolist(), "confidence": conf.tolist(), "detector": name}

    @staticmethod
    def _failed(err: Exception) -> dict:
        return {"status": "error", "error": f"landmarks: {error_text(err)}"}

    def _projected(self, rows: list[dict]) -> list[dict]:
        """Per clip the row fields from its (noised) procedural ground truth, or its error."""
        fields = []
        for row in rows:
            try:
                if row.get("gt_landmarks") is None:
                    raise ValueError("projected landmarks need procedural ground truth; this clip has none")
                lm = self.cfg.landmarks
                det = ProjectedDetector(lm.noise_px, seed=int(row["seed"]), points=lm.points)
                fields.append(self._found(*det.detect(ground_truth=self._truth(row)), det.name))
            except Exception as err:  # noqa: BLE001 - the clip gets the error, the shard goes on
                fields.append(self._failed(err))
        return fields

    def _truth(self, row: dict) -> np.ndarray:
        """The clip's noiseless projected points: its gt_landmarks (68), or the embedded points of
        its face model posed and projected from the ground-truth parameters."""
        if self.dense is None:
            return np.asarray(row["gt_landmarks"], np.float32)
        model, emb = self.dense
        if row.get("face_model") != model.name:
            raise ValueError(f"clip of face model {row.get('face_model')!r}, but this run's model is {model.name!r}")
        return project_embedded(model, emb.faces, emb.bary, from_nested(row["gt_identity"]),
                                from_nested(row["gt_expression"]), from_nested(row["gt_rotation"]),
                                from_nested(row["gt_translation"]), row["gt_focal"], row["width"], row["height"])

    def _from_videos(self, rows: list[dict]) -> list[dict]:
        """Per clip the row fields from the detector on its video, or its error. The readable videos
        of the shard go to the detector in one call (FAN batches across clips); if that call fails,
        the clips are retried one by one so only the failing clip gets the error."""
        fields: list[dict | None] = [None] * len(rows)
        clips = {}
        for i, row in enumerate(rows):
            try:
                clips[i] = read_video(row["video_uri"])[0]
            except Exception as err:  # noqa: BLE001 - the clip gets the error, the shard goes on
                fields[i] = self._failed(err)

        def one(frames: np.ndarray) -> dict:
            try:
                return self._found(*self.detector.detect(frames), self.detector.name)
            except Exception as err:  # noqa: BLE001 - the clip gets the error, the shard goes on
                return self._failed(err)

        try:
            found = [self._found(*res, self.detector.name) for res in self.detector.detect_clips(list(clips.values()))]
        except Exception as err:  # noqa: BLE001 - find the failing clip(s) below
            log.warning("landmarks: batched detection failed (%s); retrying clip by clip", error_text(err))
            found = [one(frames) for frames in clips.values()]
        assert len(found) == len(clips)
        for i, res in zip(clips, found):
            fields[i] = res
        return fields

    def process(self, shard: str, table: pa.Table) -> pa.Table:
        rows = table.to_pylist()
        ok = [i for i, row in enumerate(rows) if row["status"] == "ok"]
        fields: dict[int, dict] = {}
        if self.detector is None:
            fields.update(zip(ok, self._projected([rows[i] for i in ok])))
        else:  # decoded videos of a whole shard can be many GB: detect on groups of bounded size
            for group in _groups_by_bytes([rows[i] for i in ok], ok, VIDEO_BYTES_PER_CALL):
                fields.update(zip(group, self._from_videos([rows[i] for i in group])))
        out = [{"clip_id": row["clip_id"], **{k: row.get(k) for k in CARRIED}, "status": row["status"],
                "error": row.get("error"), **fields.get(i, {})} for i, row in enumerate(rows)]
        return rows_to_table(out, LANDMARK_COLUMNS + CARRIED)


VIDEO_BYTES_PER_CALL = 2 << 30  # decoded RGB frames handed to the detector in one call (~2 GiB)


def consecutive_groups(items: list, sizes: list[int], budget: int) -> list[list]:
    """`items` cut, in order, into groups whose sizes add up to at most `budget`; an item larger
    than the budget is a group of its own."""
    groups: list[list] = []
    used = 0
    for item, size in zip(items, sizes):
        if not groups or used + size > budget:
            groups.append([])
            used = 0
        groups[-1].append(item)
        used += size
    return groups


def _groups_by_bytes(rows: list[dict], index: list[int], budget: int) -> list[list[int]]:
    """Groups of `index` whose decoded videos (frames x height x width x 3) fit `budget`."""
    sizes = [int(r.get("n_frames") or 0) * int(r.get("height") or 0) * int(r.get("width") or 0) * 3 for r in rows]
    return consecutive_groups(list(index), sizes, budget)


class FitStage(ShardStage):
    stage = "fit"

    def __init__(self, cfg_json: str, storage_root: str):
        super().__init__(cfg_json, storage_root)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = load_face_model(self.cfg.face).to(self.device)
        self.fitters = {"ibug68": BatchedFitter(self.model, self.cfg.fit, self.device)}

    def fitter(self, n_points: int):
        """The fitter for landmarks of n_points points (68 iBUG, 468 MediaPipe), made when first seen."""
        point_set = point_set_of(n_points)
        if point_set not in self.fitters:
            self.fitters[point_set] = BatchedFitter(self.model, self.cfg.fit, self.device, point_set)
        return self.fitters[point_set]

    def process(self, shard: str, table: pa.Table) -> pa.Table:
        rows = table.to_pylist()
        good = [r for r in rows if r["status"] == "ok" and r.get("landmarks")]
        results: dict[str, dict] = {}
        groups = {}  # one batched fit per frame size and landmark point set
        for r in good:
            groups.setdefault((r["width"], r["height"], len(r["landmarks"][0])), []).append(r)
        for (w, h, n_points), group in groups.items():
            for batch in _fit_batches(group, n_points, FIT_POINTS_PER_CALL):
                results.update(self._fit(batch, (w, h), n_points))
        out = []
        for r in rows:
            base = {"clip_id": r["clip_id"], "face_model": self.model.name, **{k: r.get(k) for k in CARRIED}}
            if r["clip_id"] in results:
                out.append({**base, **results[r["clip_id"]]})
            else:
                reason = "no face" if r["status"] == "ok" else f"upstream error: {r.get('error')}"
                out.append({**base, "qc_pass": False, "qc_reason": reason})
        return rows_to_table(out, FIT_COLUMNS + CARRIED)

    def _fit(self, batch: list[dict], size: tuple[int, int], n_points: int) -> dict[str, dict]:
        """One batched solve for clips of one image size and point set. If it raises, the clips are
        fitted one by one (as landmarks and diffusion retry), so only the clip that fails gets the error."""
        try:
            return self._fit_batch(batch, size, n_points)
        except Exception as err:  # noqa: BLE001 - find the failing clip(s) below
            if len(batch) == 1:
                return {batch[0]["clip_id"]: {"qc_pass": False, "qc_reason": f"fit failed: {error_text(err)}"}}
            log.warning("fit: batched solve of %d clips failed (%s); retrying clip by clip", len(batch),
                        error_text(err))
        out: dict[str, dict] = {}
        for r in batch:
            out.update(self._fit([r], size, n_points))
        return out

    def _fit_batch(self, batch: list[dict], size: tuple[int, int], n_points: int) -> dict[str, dict]:
        t_max = max(len(r["landmarks"]) for r in batch)
        lms = np.full((len(batch), t_max, n_points, 2), np.nan, np.float32)
        conf = np.zeros((len(batch), t_max), np.float32)
        for i, r in enumerate(batch):
            lm = np.asarray(r["landmarks"], np.float32)
            lms[i, :len(lm)] = lm
            conf[i, :len(lm)] = np.asarray(r["confidence"], np.float32)
        lengths = np.array([len(r["landmarks"]) for r in batch])
        res = self.fitter(n_points).fit(lms, size, confidence=conf, lengths=lengths)
        out = {}
        for i, r in enumerate(batch):
            n = lengths[i]
            c = res.clip(i)
            out[r["clip_id"]] = {
                "identity": c["identity"].tolist(), "expression": to_nested(c["expression"][:n]),
                "rotation": to_nested(c["rotation"][:n]), "translation": to_nested(c["translation"][:n]),
                "focal": c["focal"], "landmark_error": np.nan_to_num(c["reprojection_px"][:n], nan=-1.0).tolist(),
                "nme": float(np.nanmean(c["nme"][:n])) if np.isfinite(c["nme"][:n]).any() else None,
                "qc_pass": c["qc_pass"], "qc_reason": c["qc_reason"]}
        return out


# Landmark points x frames in one batched fit: the solver's Jacobians are ~0.5 KB per point and
# frame. 68-point shards of every preset fit in one call; 468-point shards are split (~7x larger).
FIT_POINTS_PER_CALL = 4_000_000


def _fit_batches(rows: list[dict], n_points: int, budget: int) -> list[list[dict]]:
    """Groups of clips whose frames x n_points stay within `budget` (at least one clip each)."""
    return consecutive_groups(rows, [len(r["landmarks"]) * n_points for r in rows], budget)


class CorpusStage(ShardStage):
    stage = "corpus"

    def __init__(self, cfg_json: str, storage_root: str):
        super().__init__(cfg_json, storage_root)
        prompts = self.storage.read_table("prompts/prompts.parquet").to_pylist()
        self.prompts = {p["prompt_id"]: p for p in prompts}

    def process(self, shard: str, table: pa.Table) -> pa.Table:
        rows = []
        for r in table.to_pylist():
            if not r["qc_pass"]:
                continue
            p = self.prompts[r["prompt_id"]]
            rng = random.Random(f"{self.cfg.seed}:{r['clip_id']}")
            captions = list(dict.fromkeys(caption(p, rng) for _ in range(3)))
            rows.append({**{k: p.get(k) for k in ("prompt_id", "split", "text", "emotion", "intensity", "head_motion",
                                                   "actions", "dynamics", "target_emotion", "generator")},
                         "clip_id": r["clip_id"], "captions": captions, "fps": r["fps"], "n_frames": r["n_frames"],
                         "face_model": r["face_model"], "expression": r["expression"], "rotation": r["rotation"],
                         "tokens": None})
        if not rows:  # keep the schema even for a shard with no passing clip
            return pa.Table.from_pylist([], schema=_corpus_schema())
        return rows_to_table(rows, CORPUS_COLUMNS).cast(_corpus_schema())


def _corpus_schema() -> pa.Schema:
    seq = pa.list_(pa.list_(pa.float32()))
    types = {"captions": pa.list_(pa.string()), "actions": pa.list_(pa.string()), "fps": pa.int64(),
             "n_frames": pa.int64(), "expression": seq, "rotation": seq, "tokens": pa.list_(pa.int64())}
    return pa.schema([(c, types.get(c, pa.string())) for c in CORPUS_COLUMNS])


__all__ = ["SynthStage", "DiffusionSynthStage", "LandmarkStage", "FitStage", "CorpusStage", "from_nested"]
