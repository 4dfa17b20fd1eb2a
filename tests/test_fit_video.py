"""`tdmm fit-video` on a few frames of real footage: dlib landmarks, both shipped face models, outputs."""

from __future__ import annotations

import cv2
import fsspec
import numpy as np
import pytest

from tdmm_ray import cli
from tdmm_ray.render.video import read_video


def run_fit_video(argv: list[str]) -> int:
    """Through the real `tdmm` entry point."""
    return cli.main(argv)


@pytest.mark.slow  # dlib + fit on real footage
@pytest.mark.parametrize("face_model", ["builtin", "ict"])
def test_fit_video_writes_params_and_contact_sheet(media_dir, tmp_path, capsys, face_model):
    video = media_dir / "real_face_smile.mp4"
    params, sheet = tmp_path / "params.npz", tmp_path / "sheet.png"
    assert run_fit_video(["fit-video", str(video), "--out", str(params), "--face-model", face_model,
                          "--max-frames", "10", "--overlay", str(sheet), "--device", "cpu"]) == 0
    assert "QC ok" in capsys.readouterr().out
    data = np.load(params)
    t = 10
    assert data["expression"].shape[0] == t and data["rotation"].shape == (t, 3) and data["translation"].shape == (t, 3)
    assert data["landmarks"].shape == (t, 68, 2) and data["nme"].shape == (t,)
    assert str(data["qc"]) == "ok" and bool(data["qc_pass"]) and str(data["detector"]) == "dlib"
    assert float(data["fps"]) == pytest.approx(30.0, rel=1e-3)
    assert np.nanmean(data["nme"]) < 0.06  # a real face, fitted: well under QC's 0.08
    assert (data["translation"][:, 2] > 0).all() and float(data["focal"]) > 0
    assert len(data["expression_names"]) == data["expression"].shape[1]
    image = cv2.imread(str(sheet))
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 100


@pytest.mark.slow  # dlib + fit on real footage
def test_fit_video_mp4_overlay(media_dir, tmp_path):
    """The MP4 overlay: same frames, with the fit drawn on them."""
    video = media_dir / "real_face_smile.mp4"
    params, overlay = tmp_path / "params.npz", tmp_path / "overlay.mp4"
    assert run_fit_video(["fit-video", str(video), "--out", str(params), "--face-model", "builtin",
                          "--max-frames", "4", "--overlay", str(overlay)]) == 0
    drawn, fps, n = read_video(str(overlay))
    raw, _, _ = read_video(str(video))
    assert n == 4 and fps == pytest.approx(30.0, rel=1e-3)
    assert np.abs(drawn.astype(int) - raw[:4].astype(int)).mean() > 2.0


def test_fit_video_reads_and_writes_s3(media_dir, s3_env):
    fs = fsspec.filesystem("s3", client_kwargs={"endpoint_url": s3_env})
    fs.mkdir("fitbucket")
    fs.put_file(str(media_dir / "real_face_smile.mp4"), "fitbucket/in/clip.mp4")
    assert run_fit_video(["fit-video", "s3://fitbucket/in/clip.mp4", "--out", "s3://fitbucket/out/params.npz",
                          "--face-model", "builtin", "--max-frames", "6"]) == 0
    with fs.open("fitbucket/out/params.npz", "rb") as fh:
        data = np.load(fh)
        # 6 fitted frames are fewer than QC's min_frames (8): stored, and flagged as such.
        assert data["expression"].shape[0] == 6 and str(data["qc"]) == "too few frames"


def test_fit_video_rejects_bad_arguments(media_dir, tmp_path, capsys):
    assert run_fit_video(["fit-video", str(media_dir / "real_face_smile.mp4"), "--out", str(tmp_path / "p.npz"),
                          "--max-frames", "0"]) == 2
    assert "--max-frames must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "p.npz").exists()
