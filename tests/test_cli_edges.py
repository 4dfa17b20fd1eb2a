"""CLI edges: hostile or broken --config files give one line on stderr (no traceback, rc 2), and
`tdmm describe` on a video with no face says so instead of describing the neutral face."""

from __future__ import annotations

import numpy as np
import pytest

from tdmm_ray.cli import main
from tdmm_ray.config import ConfigError, load_config

BAD_CONFIGS = {
    "python-tag.yaml": b"train: !!python/object/apply:os.system ['touch pwned']\n",
    "python-object.yaml": b"!!python/object:os.system {}\n",
    "binary.yaml": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe",
    "syntax.yaml": b"train: {steps: [1\n",
    "scalar.yaml": b"just some words\n",
    "list.yaml": b"- train\n- steps\n",
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_bad_config_file_is_one_line(tmp_path, capsys, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / name
    path.write_bytes(BAD_CONFIGS[name])
    rc = main(["config", "--config", str(path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("tdmm: ") and str(path) in err
    assert not (tmp_path / "pwned").exists()


def test_bad_yaml_messages_name_the_problem(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train: !!python/object:os.system {}\n")
    with pytest.raises(ConfigError, match=r"not valid YAML: .*python/object.* at line 1"):
        load_config("tiny", path)
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        path.write_text("[1, 2]\n")
        load_config("tiny", path)
    with pytest.raises(ConfigError, match=r"override 'train.steps=!!python/object:os.system \{\}' is not valid YAML"):
        load_config("tiny", overrides=["train.steps=!!python/object:os.system {}"])
    with pytest.raises(ConfigError, match="is not a file"):
        load_config("tiny", tmp_path)


def test_describe_video_without_face(tmp_path):
    from tdmm_ray.face.registry import load_face_model
    from tdmm_ray.inference.commands import video_motion
    from tdmm_ray.render.video import write_video

    video = write_video(np.full((5, 96, 96, 3), 128, np.uint8), str(tmp_path / "wall.mp4"), fps=25)
    with pytest.raises(ValueError, match=r"no face was found in .*wall.mp4 \(5 frames, dlib"):
        video_motion(str(video), load_face_model("builtin"))
