import numpy as np
import pytest

from tdmm_ray.export.arkit_csv import HEADER, LIVE_LINK_BLENDSHAPES, read_arkit_csv, timecode, write_arkit_csv


def test_round_trip_and_layout():
    rng = np.random.default_rng(0)
    names = ["jawOpen", "eyeBlink_L", "mouthSmileRight"]
    curves = rng.uniform(0, 1, size=(30, 3))
    ypr = rng.normal(scale=0.2, size=(30, 3))
    text = write_arkit_csv(curves, names, ypr, fps=25)
    lines = text.splitlines()
    assert lines[0].split(",") == list(HEADER) and len(HEADER) == 2 + 61
    assert lines[1].startswith("00:00:00:00.000,61,") and lines[26].startswith("00:00:01:00.000,61,")
    back, head, cols = read_arkit_csv(text)
    assert back.shape == (30, 52) and head.shape == (30, 3)
    np.testing.assert_allclose(back[:, LIVE_LINK_BLENDSHAPES.index("JawOpen")], curves[:, 0], atol=1e-6)
    np.testing.assert_allclose(back[:, LIVE_LINK_BLENDSHAPES.index("EyeBlinkLeft")], curves[:, 1], atol=1e-6)
    np.testing.assert_allclose(back[:, LIVE_LINK_BLENDSHAPES.index("MouthSmileRight")], curves[:, 2], atol=1e-6)
    np.testing.assert_allclose(head, ypr, atol=1e-6)
    assert back[:, LIVE_LINK_BLENDSHAPES.index("TongueOut")].max() == 0.0


def test_timecode():
    assert timecode(3 * 3600 * 30 + 61 * 30 + 7, 30) == "03:01:01:07.000"


def test_bad_csv():
    with pytest.raises(ValueError, match="no frames"):
        read_arkit_csv("Timecode,BlendShapeCount\n")
    with pytest.raises(ValueError, match="lacks column"):
        read_arkit_csv("Timecode,JawOpen\n00:00:00:00.000,0.5\n")
    text = write_arkit_csv(np.zeros((2, 1)), ["jawOpen"], np.zeros((2, 3)), 25).replace("0.000000", "nan", 1)
    with pytest.raises(ValueError, match="non-finite"):
        read_arkit_csv(text)
    with pytest.raises(ValueError, match=r"curves must be \[T,2\]"):
        write_arkit_csv(np.zeros((2, 1)), ["a", "b"], np.zeros((2, 3)), 25)
