"""Face models: the built-in face, ICT-FaceKit, FLAME (synthetic files in FLAME's format), ARKit
mapping and the registry. Real arrays, real pickles, real renders; no mocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tdmm_ray.config import FaceConfig
from tdmm_ray.face.arkit import ARKIT_NAMES, LIVE_LINK_NAMES, arkit_index, from_arkit, to_arkit
from tdmm_ray.face.builtin import BuiltinFaceModel, builtin_arrays
from tdmm_ray.face.ict import load_ict
from tdmm_ray.face.registry import available_models, load_face_model

REQUIRED_CHANNELS = (
    "jawOpen", "eyeBlink_L", "eyeBlink_R", "eyeSquint_L", "eyeSquint_R", "eyeWide_L", "eyeWide_R", "mouthSmile_L",
    "mouthSmile_R", "mouthFrown_L", "mouthFrown_R", "mouthPucker", "mouthFunnel", "mouthPress_L", "mouthPress_R",
    "browDown_L", "browDown_R", "browOuterUp_L", "browOuterUp_R", "cheekSquint_L", "cheekSquint_R", "noseSneer_L",
    "noseSneer_R",
)


@pytest.fixture(scope="module")
def builtin() -> BuiltinFaceModel:
    return BuiltinFaceModel()


@pytest.fixture(scope="module")
def ict(ict_path):
    return load_ict(ict_path)


def _landmarks(model, weights: dict[str, float] | None = None, beta: torch.Tensor | None = None) -> torch.Tensor:
    psi = model.expression_vector(weights or {})
    beta = torch.zeros(1, model.n_identity) if beta is None else beta
    return model.landmarks(model.vertices(beta, psi))[0]


def _channel_split(model, name: str) -> list[str]:
    """ICT splits browInnerUp into _L/_R halves; the built-in face has one channel."""
    return [name] if name in model.expression_names else [name + "_L", name + "_R"]


# ---- anatomy shared by the built-in face and ICT-FaceKit -------------------------------------
@pytest.fixture(params=["builtin", "ict"])
def anatomical_model(request, builtin):
    return builtin if request.param == "builtin" else request.getfixturevalue("ict")


def test_landmarks_are_ibug_ordered_and_anatomical(anatomical_model):
    m = anatomical_model
    lm = _landmarks(m)
    v = m.template
    assert lm.shape == (68, 3) and torch.isfinite(lm).all()
    lo, hi = v.min(0).values - 1e-6, v.max(0).values + 1e-6
    assert ((lm >= lo) & (lm <= hi)).all(), "landmarks must lie within the mesh's bounds"
    x, y, z = lm.unbind(-1)
    assert x[36:42].mean() < x[42:48].mean(), "iBUG 36-41 is the image-left eye (-x in model space)"
    assert x[17:22].mean() < x[22:27].mean() and x[48] < x[54] and x[0] < x[8] < x[16]
    assert int(z.argmax()) == 30, "the nose tip is the most forward landmark"
    brows, eyes, nose_base, mouth, chin = y[17:27].mean(), y[36:48].mean(), y[31:36].mean(), y[48:68].mean(), y[8]
    assert brows > eyes > nose_base > mouth > chin
    width = float(v[:, 0].max() - v[:, 0].min())
    assert float(x[16] - x[0]) > 0.6 * width, "the jaw contour spans the face"
    assert 0.11 < width < 0.25
    iod = float(torch.linalg.norm(lm[45] - lm[36]))
    assert 0.07 < iod < 0.11, f"outer-eye-corner distance {iod:.3f} m is not human"
    assert (y[37:39].mean() > y[40:42].mean()) and (y[43:45].mean() > y[46:48].mean()), "upper lids above lower lids"


def test_jaw_open_moves_chin_and_lower_lip_down(anatomical_model):
    m = anatomical_model
    rest, opened = _landmarks(m), _landmarks(m, {"jawOpen": 1.0})
    dy = opened[:, 1] - rest[:, 1]
    assert dy[8] < -0.01 and dy[57] < -0.008 and dy[66] < -0.008
    assert abs(float(dy[51])) < 0.3 * abs(float(dy[57])), "the upper lip stays"
    assert abs(dy[list(range(17, 27)) + list(range(36, 48))]).max() < 2e-3, "brows and eyes stay"


def test_blink_closes_only_that_eye(anatomical_model):
    m = anatomical_model
    rest, blink = _landmarks(m), _landmarks(m, {"eyeBlink_L": 1.0})
    gap = lambda lm: float((lm[[43, 44], 1] - lm[[47, 46], 1]).mean())  # subject's left eye (+x)  # noqa: E731
    assert gap(rest) > 0.005
    assert gap(blink) < 0.25 * gap(rest)
    assert torch.allclose(rest[36:42], blink[36:42], atol=3e-4), "the other eye stays open"


def test_expressions_move_the_named_features(anatomical_model):
    m = anatomical_model
    rest = _landmarks(m)
    smile = _landmarks(m, {"mouthSmile_L": 1.0}) - rest
    assert smile[54, 1] > 0.002 and smile[54, 1] > 3 * abs(float(smile[48, 1]))
    brow_up = _landmarks(m, {n: 1.0 for n in _channel_split(m, "browInnerUp")}) - rest
    assert brow_up[[21, 22], 1].min() > 0.002
    brow_down = _landmarks(m, {"browDown_L": 1.0}) - rest
    assert brow_down[22:27, 1].mean() < -0.001 and abs(brow_down[17:22, 1]).max() < 1e-3
    pucker = _landmarks(m, {"mouthPucker": 1.0}) - rest
    assert pucker[54, 0] < -0.002 and pucker[48, 0] > 0.002, "pucker draws the corners together"


# ---- the built-in face ---------------------------------------------------------------------------
def test_builtin_sizes_names_and_units(builtin):
    assert builtin.n_vertices >= 2000 and builtin.faces.shape[0] >= 4000
    assert builtin.n_identity >= 10 and builtin.n_expression >= 20
    assert set(REQUIRED_CHANNELS) <= set(builtin.expression_names)
    skin = builtin.vertex_regions["skin"] | builtin.vertex_regions["lips"] | builtin.vertex_regions["brows"]
    width = float(builtin.template[skin, 0].max() - builtin.template[skin, 0].min())
    assert 0.12 < width < 0.17, f"face width {width:.3f} m"
    assert int(builtin.faces.min()) == 0 and int(builtin.faces.max()) == builtin.n_vertices - 1


# iBUG index of each landmark's mirror image (left <-> right).
IBUG_MIRROR = (list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
               + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40] + [54, 53, 52, 51, 50, 49, 48]
               + [59, 58, 57, 56, 55] + [64, 63, 62, 61, 60] + [67, 66, 65])


def test_builtin_is_mirror_symmetric(builtin):
    lm = _landmarks(builtin)
    mirrored = lm[IBUG_MIRROR] * torch.tensor([-1.0, 1.0, 1.0])
    assert torch.allclose(mirrored, lm, atol=5e-4)
    smile_l = _landmarks(builtin, {"mouthSmile_L": 1.0, "eyeBlink_L": 1.0})
    smile_r = _landmarks(builtin, {"mouthSmile_R": 1.0, "eyeBlink_R": 1.0})
    assert torch.allclose(smile_r[IBUG_MIRROR] * torch.tensor([-1.0, 1.0, 1.0]), smile_l, atol=5e-4)


def test_builtin_is_deterministic():
    first = builtin_arrays()
    builtin_arrays.cache_clear()
    second = builtin_arrays()
    assert first is not second
    for name in ("template", "identity_basis", "expression_basis", "faces", "landmark_faces", "landmark_bary"):
        assert np.array_equal(getattr(first, name), getattr(second, name)), name


def test_builtin_regions_partition_the_vertices(builtin):
    regions = builtin.vertex_regions
    assert {"skin", "lips", "brows", "eye_white", "iris", "pupil", "teeth", "mouth_interior", "nostrils"} <= set(regions)
    count = sum(mask.long() for mask in regions.values())
    assert (count == 1).all(), "every vertex has exactly one region"
    assert all(mask.any() for mask in regions.values())
    lm = _landmarks(builtin)
    lips = builtin.template[regions["lips"]]
    assert lm[48, 0] - 0.005 < lips[:, 0].min() and lips[:, 0].max() < lm[54, 0] + 0.005
    moved = BuiltinFaceModel().to(torch.float64)  # regions are buffers: they follow .to() and stay bool
    assert moved.template.dtype == torch.float64 and moved.vertex_regions["lips"].dtype == torch.bool


def test_builtin_channels_are_localized_and_one_sided(builtin):
    basis = builtin.expression_basis  # [K,V,3]
    magnitude = basis.norm(dim=-1)
    x = builtin.template[:, 0]
    for k, name in enumerate(builtin.expression_names):
        peak = float(magnitude[k].max())
        assert 0.001 < peak < 0.04, f"{name}: peak displacement {peak * 1000:.1f} mm"
        share = float((magnitude[k] > 1e-4).float().mean())
        assert share < 0.5, f"{name} moves {share:.0%} of the mesh"
        if name.endswith(("_L", "_R")):
            left = float(magnitude[k][x > 0.005].sum())
            right = float(magnitude[k][x < -0.005].sum())
            major, minor = (left, right) if name.endswith("_L") else (right, left)
            assert major > 5 * minor, f"{name} should act on the subject's {'left' if name.endswith('_L') else 'right'}"


def test_builtin_identity_modes_are_plausible(builtin):
    per_mode = builtin.identity_basis.norm(dim=-1).amax(1)
    assert (per_mode > 0.001).all() and (per_mode < 0.012).all(), per_mode
    betas = torch.randn(32, builtin.n_identity, generator=torch.Generator().manual_seed(0))
    v = builtin.vertices(betas, torch.zeros(32, builtin.n_expression))
    lm = builtin.landmarks(v)
    iod = torch.linalg.norm(lm[:, 45] - lm[:, 36], dim=-1)
    assert torch.isfinite(v).all() and (iod > 0.07).all() and (iod < 0.12).all()
    assert (lm[:, 30, 2] == lm[:, :, 2].amax(1)).all(), "the nose stays the most forward point"
    assert BuiltinFaceModel(n_identity=5).n_identity == 5
    with pytest.raises(ValueError, match="identity modes"):
        BuiltinFaceModel(n_identity=99)


def test_builtin_renders_as_a_face_to_dlib(builtin):
    """The real check of its looks: dlib's HOG frontal face detector finds it, frontal and turned."""
    import dlib  # heavy: only this test needs it

    from tdmm_ray.render import raster
    from tdmm_ray.face import geometry

    colours = {"skin": (0.85, 0.66, 0.55), "lips": (0.7, 0.35, 0.35), "brows": (0.25, 0.17, 0.12),
               "eye_white": (0.92, 0.9, 0.88), "iris": (0.35, 0.25, 0.15), "pupil": (0.03, 0.03, 0.03),
               "teeth": (0.9, 0.88, 0.8), "mouth_interior": (0.25, 0.05, 0.05), "nostrils": (0.3, 0.15, 0.12)}
    albedo = torch.zeros(1, builtin.n_vertices, 3)
    for name, mask in builtin.vertex_regions.items():
        albedo[0, mask] = torch.tensor(colours[name])
    detector = dlib.get_frontal_face_detector()
    size = 200
    for yaw in (0.0, 0.35):
        rotation = geometry.euler_to_axis_angle(torch.tensor([yaw]), torch.tensor([0.05]), torch.tensor([0.0]))
        v = builtin.vertices(torch.zeros(1, builtin.n_identity), torch.zeros(1, builtin.n_expression),
                             rotation, torch.tensor([[0.0, 0.01, 0.5]]))
        frags = raster.rasterize(v, builtin.faces, torch.tensor([size * 1.5]), torch.tensor([[size / 2, size / 2]]),
                                 size, size)
        normals = torch.nn.functional.normalize(raster.interpolate(raster.vertex_normals(v, builtin.faces),
                                                                   builtin.faces, frags), dim=-1)
        light = torch.nn.functional.normalize(torch.tensor([0.3, -0.4, -1.0]), dim=0)
        shade = 0.25 + 0.75 * (normals @ light).clamp(min=0)
        image = torch.full((size * size, 3), 0.5)
        image[frags.pixel] = (raster.interpolate(albedo, builtin.faces, frags) * shade[:, None]).clamp(0, 1)
        rgb = (image.reshape(size, size, 3).numpy() * 255).astype(np.uint8)
        assert len(detector(rgb, 1)) == 1, f"dlib finds no face in the built-in face at yaw {yaw}"


# ---- bad input -------------------------------------------------------------------------------------
def test_bad_parameters_are_rejected(anatomical_model):
    check_bad_parameters(anatomical_model)


def check_bad_parameters(m) -> None:
    """Shared with the FLAME tests: shapes, NaN and unknown channel names are clear errors."""
    beta, psi = torch.zeros(2, m.n_identity), torch.zeros(2, m.n_expression)
    assert m.vertices(beta, psi, torch.zeros(2, 3), torch.tensor([[0.0, 0.0, 0.5]] * 2)).shape == (2, m.n_vertices, 3)
    with pytest.raises(ValueError, match="identity must have shape"):
        m.vertices(torch.zeros(2, m.n_identity + 1), psi)
    with pytest.raises(ValueError, match="expression must have shape"):
        m.vertices(beta, torch.zeros(3, m.n_expression))
    with pytest.raises(ValueError, match="rotation"):
        m.vertices(beta, psi, torch.zeros(2, 4))
    bad = psi.clone()
    bad[1, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        m.vertices(beta, bad)
    with pytest.raises(ValueError, match="no expression channel 'smileee'"):
        m.expression_vector({"smileee": 1.0})


# ---- ICT-FaceKit files -------------------------------------------------------------------------------
def test_ict_units_sizes_and_truncation(ict, ict_path):
    assert ict.n_vertices == 3077 and ict.n_identity == 100 and ict.n_expression == 53
    assert ict.template.dtype == torch.float32 and ict.expression_basis.dtype == torch.float32
    assert 0.15 < float(ict.template[:, 0].max() - ict.template[:, 0].min()) < 0.25, "metres, not cm"
    assert load_ict(ict_path, n_identity=20).n_identity == 20
    with pytest.raises(ValueError, match="n_identity"):
        load_ict(ict_path, n_identity=101)


def test_ict_bad_files(tmp_path, ict_path):
    with pytest.raises(FileNotFoundError, match="ICT-FaceKit model not found"):
        load_ict(tmp_path / "missing.npz")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(ValueError, match="not a readable .npz"):
        load_ict(corrupt)
    with np.load(ict_path) as npz:
        partial = {k: npz[k] for k in npz.files if k != "landmarks_ibug68"}
    np.savez(tmp_path / "partial.npz", **partial)
    with pytest.raises(ValueError, match="landmarks_ibug68"):
        load_ict(tmp_path / "partial.npz")
    partial["landmarks_ibug68"] = np.arange(60)
    np.savez(tmp_path / "short.npz", **partial)
    with pytest.raises(ValueError, match=r"must be \[68\]"):
        load_ict(tmp_path / "short.npz")


# ---- ARKit ---------------------------------------------------------------------------------------------
def test_arkit_names_follow_live_link_face():
    assert len(ARKIT_NAMES) == 52 == len(set(ARKIT_NAMES))
    assert LIVE_LINK_NAMES[:3] == ("EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft")
    assert LIVE_LINK_NAMES[14:18] == ("JawForward", "JawRight", "JawLeft", "JawOpen")
    assert LIVE_LINK_NAMES[-1] == "TongueOut"
    for alias in ("eyeBlink_L", "eyeBlinkLeft", "EyeBlinkLeft"):
        assert arkit_index(alias) == 0
    assert arkit_index("browInnerUp_R") == ARKIT_NAMES.index("browInnerUp") and arkit_index("jaw_rx") is None


def test_arkit_round_trip_builtin(builtin):
    psi = torch.rand(5, builtin.n_expression, generator=torch.Generator().manual_seed(1))
    curves = to_arkit(builtin, psi)
    assert curves.shape == (5, 52)
    assert torch.allclose(from_arkit(builtin, curves), psi)
    assert torch.equal(curves[:, ARKIT_NAMES.index("tongueOut")], torch.zeros(5))
    assert float(curves[0, ARKIT_NAMES.index("eyeBlinkLeft")]) == float(psi[0, builtin.expression_index("eyeBlink_L")])
    as_numpy = to_arkit(builtin, psi.numpy())
    assert isinstance(as_numpy, np.ndarray) and np.allclose(as_numpy, curves.numpy())
    with pytest.raises(ValueError, match=r"\[T,52\]"):
        from_arkit(builtin, torch.zeros(3, 51))


def test_arkit_split_channels_ict(ict):
    curves = torch.rand(4, 52, generator=torch.Generator().manual_seed(2))
    psi = from_arkit(ict, curves)
    inner = ARKIT_NAMES.index("browInnerUp")
    assert torch.equal(psi[:, ict.expression_index("browInnerUp_L")], curves[:, inner])
    assert torch.equal(psi[:, ict.expression_index("browInnerUp_R")], curves[:, inner])
    back = to_arkit(ict, psi)
    keep = [i for i, n in enumerate(ARKIT_NAMES) if n != "tongueOut"]
    assert torch.allclose(back[:, keep], curves[:, keep])
    psi = torch.zeros(1, ict.n_expression)
    psi[0, ict.expression_index("cheekPuff_L")] = 1.0
    assert float(to_arkit(ict, psi)[0, ARKIT_NAMES.index("cheekPuff")]) == pytest.approx(0.5)


# ---- registry -----------------------------------------------------------------------------------------
def test_registry(ict_path, monkeypatch):
    assert load_face_model(FaceConfig()).name == "ict"  # the default face (issue 14)
    assert load_face_model(FaceConfig(model="builtin")).name == "builtin"
    m = load_face_model(FaceConfig(model="ict", path=str(ict_path), n_identity=12))
    assert m.name == "ict" and m.n_identity == 12
    with pytest.raises(ValueError, match="unknown face model 'bfm'"):
        load_face_model("bfm")
    with pytest.raises(ValueError, match="needs a path"):
        load_face_model("flame")
    status = available_models(ict_path=ict_path)
    assert status["builtin"].startswith("available") and status["ict"].startswith("available")
    monkeypatch.delenv("TDMM_FLAME_PATH", raising=False)
    assert status["flame"].startswith("not configured") and "TDMM_FLAME_PATH" in status["flame"]
    broken = available_models(ict_path=ict_path.parent / "nope.npz")["ict"]
    assert broken.startswith("unavailable") and "not found" in broken
