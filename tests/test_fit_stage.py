"""The data engine's fit stage: one clip that breaks the batched solve does not reject its batch."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from tdmm_ray.config import load_config
from tdmm_ray.data_engine.stages import FitStage
from tdmm_ray.fit.synthetic import make_clips


def _rows(landmarks: np.ndarray, names: list[str]) -> list[dict]:
    return [{"clip_id": name, "prompt_id": "p", "fps": 25, "n_frames": len(lm), "width": 128, "height": 128,
             "status": "ok", "error": None, "landmarks": lm.tolist(), "confidence": [1.0] * len(lm),
             "detector": "projected"} for name, lm in zip(names, landmarks)]


@pytest.mark.slow  # two fits of a small shard: ~20 s on a busy 2-core machine
def test_a_failing_clip_is_retried_alone(tmp_path):
    cfg = load_config("tiny", overrides=[f"storage={tmp_path / 'run'}"])
    stage = FitStage(cfg.model_dump_json(), cfg.storage)
    clips = make_clips(stage.model, 2, 10, image_size=(128, 128), seed=1)
    good = _rows(clips.landmarks, ["a", "b"])
    broken = {**good[0], "clip_id": "broken", "landmarks": clips.landmarks[0][:, :67].tolist()}  # 67 points
    alone = {r["clip_id"]: r for r in stage.process("00000", pa.Table.from_pylist(good)).to_pylist()}
    mixed = {r["clip_id"]: r for r in
             stage.process("00001", pa.Table.from_pylist([good[0], broken, good[1]])).to_pylist()}
    assert list(mixed) == ["a", "broken", "b"]
    assert mixed["broken"]["qc_pass"] is False and mixed["broken"]["qc_reason"].startswith("fit failed: ValueError")
    assert mixed["broken"]["expression"] is None
    for name in ("a", "b"):  # fitted as if the broken clip had not been there
        assert alone[name]["qc_pass"] and mixed[name]["qc_pass"], alone[name]["qc_reason"]
        np.testing.assert_allclose(mixed[name]["expression"], alone[name]["expression"], atol=1e-4)
        assert mixed[name]["nme"] < 0.05
