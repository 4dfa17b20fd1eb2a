"""Rasterizer, shading and the `tdmm render` command on hand-built scenes and the ICT face."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from render_support import load_builtin, load_ict
from tdmm_ray.render import appearance
from tdmm_ray.render.appearance import Look
from tdmm_ray.render.raster import interpolate, rasterize
from tdmm_ray.render.renderer import FaceRenderer, default_camera
from tdmm_ray.render.video import probe, read_video

F = 40.0  # focal (pixels) for hand-built scenes
C = 11.5  # principal point


def unproject(pixels: list[tuple[float, float]], z: float | list[float]) -> torch.Tensor:
    """Pixel positions at depth z -> camera-space points [1,N,3] that project back onto them."""
    zs = [z] * len(pixels) if np.isscalar(z) else z
    return torch.tensor([[((u - C) * d / F, (v - C) * d / F, d) for (u, v), d in zip(pixels, zs)]])


def raster(vertices, faces, size=24, cull=True):
    b = vertices.shape[0]
    return rasterize(vertices, torch.tensor(faces), torch.full((b,), F), torch.full((b, 2), C), size, size,
                     cull_backfaces=cull)


def brute_force_inside(tri: np.ndarray, size: int) -> np.ndarray:
    """Reference coverage: pixel centre (x=j, y=i) inside the 2D triangle [3,2] (edges included)."""
    jj, ii = np.meshgrid(np.arange(size), np.arange(size))
    p = np.stack([jj, ii], -1).astype(np.float64)

    def edge(a, b):
        return (b[0] - a[0]) * (p[..., 1] - a[1]) - (b[1] - a[1]) * (p[..., 0] - a[0])

    e = np.stack([edge(tri[0], tri[1]), edge(tri[1], tri[2]), edge(tri[2], tri[0])])
    return (e >= 0).all(0) | (e <= 0).all(0)


FRONT_TRIANGLE = [(3.3, 2.6), (6.1, 19.4), (20.7, 7.2)]  # counter-clockwise as seen on screen = front facing


def test_single_triangle_covers_exactly_its_pixels():
    frags = raster(unproject(FRONT_TRIANGLE, 2.0), [[0, 1, 2]])
    expected = brute_force_inside(np.array(FRONT_TRIANGLE), 24)
    assert expected.sum() > 50
    np.testing.assert_array_equal(frags.mask()[0].numpy(), expected)
    np.testing.assert_allclose(frags.depth_map()[0][torch.from_numpy(expected)].numpy(), 2.0, rtol=1e-5)


def test_back_faces_are_culled_unless_asked():
    back = [FRONT_TRIANGLE[0], FRONT_TRIANGLE[2], FRONT_TRIANGLE[1]]
    assert raster(unproject(back, 2.0), [[0, 1, 2]]).pixel.numel() == 0
    both = raster(unproject(back, 2.0), [[0, 1, 2]], cull=False).mask()[0].numpy()
    np.testing.assert_array_equal(both, brute_force_inside(np.array(FRONT_TRIANGLE), 24))


@pytest.mark.parametrize("near_first", [True, False])
def test_nearer_triangle_wins(near_first):
    far = unproject([(0.2, 0.3), (0.5, 23.3), (23.6, 0.4)], 3.0)[0]
    near = unproject(FRONT_TRIANGLE, 2.0)[0]
    verts = torch.cat([near, far] if near_first else [far, near])[None]
    near_face = 0 if near_first else 1
    frags = raster(verts, [[0, 1, 2], [3, 4, 5]])
    face_map = frags.face_map()[0].numpy()
    inside_near = brute_force_inside(np.array(FRONT_TRIANGLE), 24)
    assert (face_map[inside_near] == near_face).all()
    assert ((face_map == 1 - near_face) & ~inside_near).sum() > 50  # the far one shows elsewhere


def test_random_scene_matches_brute_force_and_batches_agree():
    """Many random overlapping triangles at random depths: the nearest triangle per pixel, as a
    per-pixel x per-triangle reference computes it; rendering in one batch changes nothing."""
    rng = np.random.default_rng(0)
    size, n = 24, 30
    frames = []
    for _ in range(3):
        px = rng.uniform(-3, 27, (n, 3, 2))
        z = rng.uniform(1.5, 4.0, (n, 1)).repeat(3, 1)  # flat triangles: depth order is exact
        pts = ((px - C) * z[..., None] / F)
        frames.append(np.concatenate([pts, z[..., None]], -1).reshape(-1, 3))
    verts = torch.tensor(np.stack(frames), dtype=torch.float32)
    faces = np.arange(3 * n).reshape(n, 3).tolist()
    batch = raster(verts, faces, size, cull=False).face_map().numpy()
    for b, frame in enumerate(frames):
        px = frame.reshape(n, 3, 3)
        expected = np.full((size, size), -1)
        best = np.full((size, size), np.inf)
        for t in range(n):
            uv = px[t, :, :2] / px[t, :, 2:] * F + C
            inside = brute_force_inside(uv, size) & (px[t, 0, 2] < best)
            expected[inside], best[inside] = t, px[t, 0, 2]
        np.testing.assert_array_equal(batch[b], expected)
        single = raster(verts[b:b + 1], faces, size, cull=False).face_map()[0].numpy()
        np.testing.assert_array_equal(single, expected)


def test_interpolation_is_perspective_correct():
    """A steeply tilted triangle: the interpolated 3D point of every pixel lies on that pixel's ray."""
    verts = unproject(FRONT_TRIANGLE, [1.0, 4.0, 2.0])
    faces = torch.tensor([[0, 1, 2]])
    frags = raster(verts, faces.tolist())
    points = interpolate(verts, faces, frags)
    rows, cols = frags.pixel // 24, frags.pixel % 24
    np.testing.assert_allclose((points[:, 0] / points[:, 2] * F + C).numpy(), cols.float().numpy(), atol=1e-3)
    np.testing.assert_allclose((points[:, 1] / points[:, 2] * F + C).numpy(), rows.float().numpy(), atol=1e-3)
    np.testing.assert_allclose(points[:, 2].numpy(), frags.depth.numpy(), rtol=1e-5)


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="vertices must be"):
        rasterize(torch.zeros(5, 3), torch.tensor([[0, 1, 2]]), torch.ones(1), torch.zeros(1, 2), 8, 8)
    with pytest.raises(ValueError, match="faces index vertices"):
        rasterize(torch.zeros(1, 3, 3), torch.tensor([[0, 1, 3]]), torch.ones(1), torch.zeros(1, 2), 8, 8)
    with pytest.raises(ValueError, match="focal"):
        rasterize(torch.zeros(2, 3, 3), torch.tensor([[0, 1, 2]]), torch.ones(1), torch.zeros(2, 2), 8, 8)
    with pytest.raises(ValueError, match="background"):
        Look(background="plaid")


def test_shading_lit_side_is_brighter():
    normals = torch.tensor([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
    look = Look(light_direction=(-1.0, 0.0, -0.2), specular=0.0)
    out = appearance.shade(normals, torch.full((3, 3), 0.5), torch.tensor([[0.0, 0.0, 1.0]] * 3), look)
    assert out[0].mean() > out[2].mean() > out[1].mean()
    assert torch.allclose(out[1], torch.full((3,), 0.5 * look.ambient))


@pytest.fixture(scope="module")
def ict_renderer(ict_path):
    return FaceRenderer(load_ict(ict_path), default_camera(128, 128))


def test_ict_face_mask_is_plausible_and_centred(ict_renderer):
    model = ict_renderer.model
    out = ict_renderer.render(torch.zeros(model.n_identity), torch.zeros(2, model.n_expression))
    mask = out.mask[0].numpy()
    assert 0.15 < mask.mean() < 0.7
    rows, cols = np.nonzero(mask)
    assert abs(cols.mean() - 63.5) < 6 and abs(rows.mean() - 63.5) < 20
    lm = out.landmarks[0].numpy()
    on_face = mask[lm[:, 1].round().astype(int), lm[:, 0].round().astype(int)]
    assert on_face[17:].all() and on_face.sum() >= 64  # jaw-line points may sit on the silhouette
    assert np.isfinite(out.depth[0].numpy()[mask]).all() and np.isinf(out.depth[0].numpy()[~mask]).all()
    assert ict_renderer.openings.kinds == ["eye_left", "eye_right", "mouth"]
    # eyes are capped: the pixel at each eye centre is face, and a dark pupil is drawn there
    for idx in (range(36, 42), range(42, 48)):
        x, y = lm[list(idx)].mean(0).round().astype(int)
        assert mask[y, x] and out.images[0, y - 1:y + 2, x - 1:x + 2].float().mean() < 60


def test_ict_side_light_brightens_that_side(ict_renderer):
    model = ict_renderer.model
    zero_id, zero_exp = torch.zeros(model.n_identity), torch.zeros(1, model.n_expression)
    means = []
    for side in (-1.0, 1.0):
        look = Look(light_direction=(side, 0.0, -0.3), background="solid", specular=0.0, albedo_noise=0.0)
        out = ict_renderer.render(zero_id, zero_exp, look=look)
        img, mask = out.images[0].float().mean(-1).numpy(), out.mask[0].numpy()
        left = img[:, :64][mask[:, :64]].mean()
        right = img[:, 64:][mask[:, 64:]].mean()
        means.append(left - right)
    assert means[0] > 15 and means[1] < -15  # light from camera-left (-x) brightens the left half


def test_regions_from_landmarks_are_where_features_are(ict_renderer):
    regions, model = ict_renderer.regions, ict_renderer.model
    lm = model.landmarks(model.template[None])[0].numpy()
    v = model.template.numpy()
    for name, idx in (("lips", range(48, 60)), ("brows", range(17, 27))):
        assert regions[name].sum() >= 5, name
        centre = v[regions[name]].mean(0)
        assert np.linalg.norm(centre[:2] - lm[list(idx), :2].mean(0)) < 0.01, name  # within 1 cm


def test_sample_look_varies_and_is_reproducible():
    looks = [appearance.sample_look(np.random.default_rng(s)) for s in range(8)]
    assert looks[0] == appearance.sample_look(np.random.default_rng(0))
    assert len({lk.skin_tone for lk in looks}) == 8 and len({lk.background for lk in looks}) > 1
    for lk in looks:
        img = appearance.background(lk, 16, 16)
        assert img.shape == (16, 16, 3) and 0 <= float(img.min()) and float(img.max()) <= 1


# ---- the command --------------------------------------------------------------------------
def _run_cli(argv: list[str]) -> int:
    from tdmm_ray.cli import build_parser, main

    names = build_parser()._subparsers._group_actions[0].choices  # noqa: SLF001
    if "render" in names:
        return main(argv)
    # the lead wires tdmm_ray.render.commands into cli.COMMAND_MODULES; until then register here
    from tdmm_ray.render.commands import register

    parser = argparse.ArgumentParser(prog="tdmm")
    register(parser.add_subparsers())
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:
        print(f"tdmm: error: {err}")
        return 2


def test_render_command_validates_input(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, expression=np.zeros((4, 53)), rotation=np.full((4, 3), np.nan))
    assert _run_cli(["render", str(bad), "--out", str(tmp_path / "x.mp4")]) == 2
    captured = capsys.readouterr()
    assert "rotation" in captured.out + captured.err
    short = tmp_path / "short.npz"
    np.savez(short, expression=np.zeros((4, 53)), rotation=np.zeros((3, 3)))
    from tdmm_ray.render.commands import load_params

    with pytest.raises(ValueError, match=r"rotation must be \[T=4,3\]"):
        load_params(str(short))
    with pytest.raises(ValueError, match="does not exist"):
        load_params(str(tmp_path / "missing.npz"))


def test_render_command_writes_a_video(tmp_path, ict_path):
    t = 6
    expression = np.zeros((t, 53), np.float32)
    expression[:, 26] = np.linspace(0, 0.8, t)  # jawOpen
    params = tmp_path / "params.npz"
    np.savez(params, expression=expression, rotation=np.zeros((t, 3)), fps=np.array(12.0), face_model="ict")
    out = tmp_path / "clip.mp4"
    assert _run_cli(["render", str(params), "--out", str(out), "--face-path", str(ict_path),
                     "--width", "96", "--height", "96"]) == 0
    info = probe(str(out))
    assert (info.n_frames, info.fps, info.width, info.height, info.codec) == (t, 12.0, 96, 96, "h264")
    frames, _, _ = read_video(str(out))
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 0.5  # the jaw moved


def test_render_params_follows_the_parameters(tmp_path, ict_renderer):
    """The command's renderer path with the test's ICT model: per-frame pose changes the frames."""
    from tdmm_ray.render.commands import load_params, render_params

    rotation = np.zeros((3, 3), np.float32)
    rotation[2, 1] = 0.5  # last frame turns the head
    path = tmp_path / "p.npz"
    np.savez(path, expression=np.zeros((3, 53), np.float32), rotation=rotation, identity=np.zeros(10))
    frames = render_params(load_params(str(path)), ict_renderer.model, 64, 48, batch_size=2)
    assert frames.shape == (3, 48, 64, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames[0], frames[1]) and not np.array_equal(frames[0], frames[2])
    with pytest.raises(ValueError, match="channels"):
        render_params(load_params(str(path)).__class__(np.zeros((1, 7), np.float32), np.zeros((1, 3), np.float32),
                                                       None, None, 25.0, "ict"), ict_renderer.model)


def test_chunked_render_matches_one_batch(ict_renderer):
    model = ict_renderer.model
    gen = torch.Generator().manual_seed(0)
    expression = torch.rand(3, model.n_expression, generator=gen) * 0.5
    rotation = (torch.rand(3, 3, generator=gen) - 0.5) * 0.4
    look = appearance.sample_look(np.random.default_rng(3))
    whole = ict_renderer.render(torch.zeros(model.n_identity), expression, rotation, look=look)
    ict_renderer.cpu_chunk = 2
    try:
        chunked = ict_renderer.render(torch.zeros(model.n_identity), expression, rotation, look=look)
    finally:
        ict_renderer.cpu_chunk = 16
    assert torch.equal(whole.images, chunked.images) and torch.equal(whole.mask, chunked.mask)
    assert not torch.equal(whole.images[0], whole.images[1])


def test_model_with_eyeballs_gets_no_caps():
    model = load_builtin()
    renderer = FaceRenderer(model, default_camera(96, 96))
    assert renderer.openings.kinds == [] and "eyes" not in renderer.regions  # it has eyeballs and a mouth
    albedo = renderer.albedo(Look())
    assert albedo[torch.from_numpy(renderer.regions["pupil"])].max() < 0.1
