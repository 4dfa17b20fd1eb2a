import pytest

from tdmm_ray.config import PRESETS, ConfigError, load_config, parse_overrides


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_load(preset):
    cfg = load_config(preset)
    assert cfg.preset == preset
    assert len(cfg.digest()) == 16


def test_overrides_and_digest():
    base = load_config("tiny")
    cfg = load_config("tiny", overrides=["train.steps=7", "face.model=ict", "face.path=/x.npz", "seed=3"])
    assert cfg.train.steps == 7 and cfg.face.model == "ict" and cfg.seed == 3
    assert cfg.digest("prompts") == base.digest("prompts")  # prompts untouched
    assert cfg.digest("seed", "train") != base.digest("seed", "train")


def test_literal_error_names_field_and_allowed_values():
    with pytest.raises(ConfigError) as e:
        load_config("tiny", overrides=["train.strategy=fsdp"])
    msg = str(e.value)
    assert "train.strategy" in msg and "'ddp'" in msg and "'deepspeed'" in msg


def test_range_and_unknown_field_errors():
    with pytest.raises(ConfigError, match=r"synth.fps"):
        load_config("tiny", overrides=["synth.fps=0"])
    with pytest.raises(ConfigError, match=r"synth.fsp: unknown field"):
        load_config("tiny", overrides=["synth.fsp=25"])
    with pytest.raises(ConfigError, match=r"face.path is required"):
        load_config("tiny", overrides=["face.model=flame"])
    with pytest.raises(ConfigError, match=r"unknown generator 'sora'"):
        load_config("tiny", overrides=["prompts.generators={sora: 1.0}"])
    with pytest.raises(ConfigError, match=r"max_seconds"):
        load_config("tiny", overrides=["synth.min_seconds=5", "synth.max_seconds=4"])


def test_unknown_preset_and_bad_override_syntax(tmp_path):
    with pytest.raises(ConfigError, match="allowed: tiny, small, paper"):
        load_config("huge")
    with pytest.raises(ConfigError, match="section.field=value"):
        parse_overrides(["train.steps"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("tiny", file=tmp_path / "nope.yaml")


def test_config_file_merges_over_preset(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  steps: 11\nsynth:\n  width: 64\n")
    cfg = load_config("tiny", file=f, overrides=["train.steps=12"])
    assert cfg.train.steps == 12 and cfg.synth.width == 64 and cfg.synth.fps == 25


def test_cli_reports_config_error(capsys):
    from tdmm_ray.cli import main

    assert main(["config", "--set", "landmarks.detector=magic"]) == 2
    err = capsys.readouterr().err
    assert "landmarks.detector" in err and "'dlib'" in err
