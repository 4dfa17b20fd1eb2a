"""The face layer's pure functions (as smplx's lbs.py): blend shapes, head pose, the model->camera
convention, pinhole projection and their Jacobians. No state; batched; CPU or CUDA. Every caller
(face models, renderer, fitter, synthetic data, benchmarks) goes through these, so the camera
convention is written down once, here."""

from __future__ import annotations

import torch

# Model space: x to the face's left->right (viewer's right), y up, z out of the face towards the viewer.
# Camera space (OpenCV): x right, y down, z forward. A face looking at the camera is model space
# flipped about x, then moved forward by its distance.
CAMERA_AXES = torch.tensor([1.0, -1.0, -1.0])  # model -> camera is this diagonal flip
MODEL_TO_CAMERA = torch.diag(CAMERA_AXES)
MIN_DEPTH = 1e-6  # metres; points at or behind the camera are clamped to this depth when projected


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula, [..., 3] axis-angle (radians) -> [..., 3, 3]; smooth at zero angle."""
    angle_sq = (axis_angle * axis_angle).sum(-1, keepdim=True)
    angle = torch.sqrt(angle_sq + 1e-16)
    # sin(a)/a and (1-cos a)/a^2 with Taylor fallbacks so gradients stay finite near zero.
    small = angle_sq < 1e-8
    sinc = torch.where(small, 1.0 - angle_sq / 6.0, torch.sin(angle) / angle)
    cosc = torch.where(small, 0.5 - angle_sq / 24.0, (1.0 - torch.cos(angle)) / (angle_sq + 1e-16))
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*axis_angle.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(k)
    return eye + sinc[..., None] * k + cosc[..., None] * (k @ k)


def euler_to_axis_angle(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """Head yaw (about y), pitch (about x), roll (about z) in radians -> axis-angle [..., 3]."""
    return matrix_to_axis_angle(euler_to_matrix(yaw, pitch, roll))


def euler_to_matrix(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """R = Ry(yaw) @ Rx(pitch) @ Rz(roll), the usual head-pose convention."""
    zero = torch.zeros_like(yaw)
    ry = axis_angle_to_matrix(torch.stack([zero, yaw, zero], -1))
    rx = axis_angle_to_matrix(torch.stack([pitch, zero, zero], -1))
    rz = axis_angle_to_matrix(torch.stack([zero, zero, roll], -1))
    return ry @ rx @ rz


def matrix_to_euler(r: torch.Tensor) -> torch.Tensor:
    """Inverse of euler_to_matrix: [..., 3, 3] -> [..., 3] as (yaw, pitch, roll) radians."""
    pitch = torch.asin((-r[..., 1, 2]).clamp(-1.0, 1.0))
    yaw = torch.atan2(r[..., 0, 2], r[..., 2, 2])
    roll = torch.atan2(r[..., 1, 0], r[..., 1, 1])
    return torch.stack([yaw, pitch, roll], -1)


def matrix_to_axis_angle(r: torch.Tensor) -> torch.Tensor:
    """[..., 3, 3] rotation -> [..., 3] axis-angle (angles below pi)."""
    cos = ((r[..., 0, 0] + r[..., 1, 1] + r[..., 2, 2] - 1.0) / 2.0).clamp(-1.0 + 1e-7, 1.0 - 1e-7)
    angle = torch.acos(cos)
    vee = torch.stack([r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]], -1)
    sin = torch.sin(angle)
    scale = torch.where(sin.abs() < 1e-6, 0.5 + angle**2 / 12.0, angle / (2.0 * sin))
    return vee * scale[..., None]


def blend_shapes(template: torch.Tensor, identity_basis: torch.Tensor, identity: torch.Tensor,
                 expression_basis: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
    """Linear face: template [V,3] + identity_basis [K_id,V,3] . beta [B,K_id]
    + expression_basis [K_exp,V,3] . psi [B,K_exp] -> model-space points [B,V,3]."""
    offsets = torch.einsum("bk,kvc->bvc", identity, identity_basis)
    offsets = offsets + torch.einsum("bk,kvc->bvc", expression, expression_basis)
    return template[None] + offsets


def pose_points(points: torch.Tensor, rotation_matrix: torch.Tensor, translation: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Head pose: model-space points [B,N,3] rotated by [B,3,3] about the model origin (-> y, still
    model axes), then flipped into camera axes and translated by [B,3] (camera space, metres).
    Returns (y, camera points); y is what the rotation Jacobian needs."""
    y = points @ rotation_matrix.transpose(-1, -2)
    return y, y * CAMERA_AXES.to(y) + translation[:, None, :]


def model_to_camera(vertices: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """Rotate model-space vertices [B,V,3] by head rotation (axis-angle [B,3]) about the model origin,
    flip into the camera frame and translate ([B,3], camera space, z = distance in metres)."""
    return pose_points(vertices, axis_angle_to_matrix(rotation), translation)[1]


def camera_offset(points: torch.Tensor) -> torch.Tensor:
    """A model-space offset [...,3] (no rotation) expressed in camera axes."""
    return points * CAMERA_AXES.to(points)


def project(points: torch.Tensor, focal: torch.Tensor, principal: torch.Tensor,
            min_depth: float = MIN_DEPTH) -> torch.Tensor:
    """Pinhole projection of camera-space points [B,N,3] with focal [B] (pixels) and principal
    point [B,2] or [2] (pixels) -> pixel coordinates [B,N,2]."""
    z = points[..., 2:3].clamp(min=min_depth)
    return points[..., :2] / z * focal[:, None, None] + principal.reshape(-1, 1, 2)


def project_jacobian(points: torch.Tensor, focal: torch.Tensor, min_depth: float = MIN_DEPTH) -> torch.Tensor:
    """d project / d camera point: [B,N,3] points, focal [B] -> [B,N,2,3]."""
    z = points[..., 2].clamp(min=min_depth)
    fz = focal[:, None] / z
    zero = torch.zeros_like(fz)
    return torch.stack([fz, zero, -fz * points[..., 0] / z,
                        zero, fz, -fz * points[..., 1] / z], -1).reshape(*fz.shape, 2, 3)


def pose_jacobians(d_camera: torch.Tensor, y: torch.Tensor, rotation_matrix: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Chain any d out / d camera point [B,N,R,3] through pose_points: returns d out / d model point
    [B,N,R,3] and d out / d w [B,N,R,3] for a small rotation w applied on the left
    (exp([w]x) R, so d y / d w = -[y]x)."""
    d_y = d_camera * CAMERA_AXES.to(d_camera)
    # One [N*R,3] x [3,3] product per batch item (not B*N tiny ones).
    d_model = (d_y.reshape(d_y.shape[0], -1, 3) @ rotation_matrix).reshape(d_y.shape)
    # (d_y @ -[y]x)[..., j] = (y x d_y)[..., j] row by row.
    d_rot = torch.linalg.cross(y[:, :, None, :].expand_as(d_y), d_y, dim=-1)
    return d_model, d_rot


def barycentric_points(vertices: torch.Tensor, faces: torch.Tensor, face_index: torch.Tensor, bary: torch.Tensor) -> torch.Tensor:
    """Points embedded in a mesh: vertices [B,V,3], faces [F,3], face_index [L], bary [L,3] -> [B,L,3]."""
    corners = vertices[:, faces[face_index]]  # [B,L,3,3]
    return (corners * bary[None, :, :, None]).sum(-2)
