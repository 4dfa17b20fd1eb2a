"""H.264 encode/decode round trips on local paths and a real S3 API, and clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest

from tdmm_ray.render.video import VideoError, probe, read_video, write_video


def smooth_frames(t: int = 12, h: int = 48, w: int = 64) -> np.ndarray:
    """Moving smooth colour ramps: like renders, unlike noise (which yuv420p cannot keep)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = []
    for i in range(t):
        r = 128 + 100 * np.sin((xx + 2 * i) / 9.0)
        g = 128 + 100 * np.cos((yy - i) / 7.0)
        b = np.full_like(xx, 60 + 8 * i)
        frames.append(np.stack([r, g, b], -1))
    return np.clip(frames, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("fps", [25.0, 29.97])
def test_round_trip_keeps_count_rate_size_and_pixels(tmp_path, fps):
    frames = smooth_frames()
    path = write_video(frames, str(tmp_path / "sub" / "clip.mp4"), fps)
    info = probe(path)
    assert (info.n_frames, info.width, info.height, info.codec, info.pix_fmt) == (12, 64, 48, "h264", "yuv420p")
    assert info.fps == pytest.approx(fps, abs=1e-3)
    assert info.duration_s == pytest.approx(12 / fps, rel=1e-3)
    decoded, rate, n = read_video(path)
    assert decoded.shape == frames.shape and n == 12 and rate == pytest.approx(fps, abs=1e-3)
    # yuv420p halves chroma resolution and limited range costs ~1 level: saturated ramps come back
    # within a few levels; a channel swap or a shifted frame would be tens of levels off.
    error = np.abs(decoded[:, None].astype(int) - frames[None]).mean(axis=(2, 3, 4))  # [decoded, source]
    assert np.diag(error).max() < 5.0
    assert (error.argmin(1) == np.arange(12)).all()  # every frame decodes in its own place
    first, _, n_first = read_video(path, max_frames=5)
    assert n_first == 5 and np.array_equal(first, decoded[:5])
    assert not list(tmp_path.joinpath("sub").glob("*.partial*"))  # no temp file left behind


def test_round_trip_through_s3(s3_env):
    from tdmm_ray.storage import preflight

    preflight("s3://videos/run")
    frames = smooth_frames(t=5)
    url = write_video(frames, "s3://videos/run/clips/a.mp4", 25)
    assert probe(url).n_frames == 5
    decoded, fps, n = read_video(url)
    assert n == 5 and fps == 25.0 and np.abs(decoded.astype(int) - frames).mean() < 5.0
    with pytest.raises(VideoError, match="s3://videos/run/clips/missing.mp4 does not exist"):
        read_video("s3://videos/run/clips/missing.mp4")


def test_bad_files_raise_video_error_naming_the_file(tmp_path):
    good = write_video(smooth_frames(t=4), str(tmp_path / "good.mp4"), 25)
    data = open(good, "rb").read()
    cases = {
        "missing.mp4": (None, "does not exist"),
        "empty.mp4": (b"", "empty"),
        "garbage.mp4": (b"not a video at all " * 50, "cannot be opened"),
        "truncated.mp4": (data[: len(data) // 2], "cannot be opened|corrupt|no decodable"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        for fn in (read_video, probe):
            with pytest.raises(VideoError, match=message) as err:
                fn(str(path))
            assert str(path) in str(err.value)
            assert isinstance(err.value, ValueError)


def test_bad_frames_are_rejected(tmp_path):
    with pytest.raises(VideoError, match="even width and height"):
        write_video(np.zeros((2, 31, 32, 3), np.uint8), str(tmp_path / "a.mp4"), 25)
    with pytest.raises(VideoError, match="uint8"):
        write_video(np.zeros((2, 32, 32, 3), np.float32), str(tmp_path / "a.mp4"), 25)
    with pytest.raises(VideoError, match="fps"):
        write_video(np.zeros((2, 32, 32, 3), np.uint8), str(tmp_path / "a.mp4"), 0)
    with pytest.raises(VideoError, match="no frames"):
        write_video(np.zeros((0, 32, 32, 3), np.uint8), str(tmp_path / "a.mp4"), 25)
    assert not (tmp_path / "a.mp4").exists()
