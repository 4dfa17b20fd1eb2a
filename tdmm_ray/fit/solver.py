"""Batched 3D face fitting to 2D landmarks: Levenberg-Marquardt over many clips at once (torch).

Unknowns per clip: identity beta and log focal (shared by its frames); per frame: expression psi,
head rotation (axis-angle, updated on the left by a small angle) and translation. Energy, with
landmark residuals r measured in inter-ocular distances (so weights do not depend on resolution):

    sum c * rho(|r|^2) + l_exp |psi|^2 + l_id |beta|^2 + l_f (log f - log f0)^2
        + l_s sum_t |p_t - p_t-1|^2                          (temporal smoothness of psi, pose)

rho is a robust loss solved by IRLS with a scale annealed from coarse to fine (graduated
non-convexity), c the landmark confidence. The steps (BatchedFitter.schedule): pose only; then
joint steps that solve the normal equations exactly in the per-clip parameters by a Schur
complement over the per-frame blocks; then per-frame steps alternating with per-clip steps. The
smoothness coupling between neighbouring frames enters Jacobi-style (neighbours held at their
current values), and a step is kept only where it lowers a clip's energy (per-clip Marquardt
damping). Expression bounds are an active set: channels pressed against a bound are frozen for
that step. The camera model (pose, flip into camera axes, projection and their Jacobians) is
tdmm_ray.face.geometry's, the same functions the face models and the renderer use.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from tdmm_ray.config import FitConfig
from tdmm_ray.face import geometry
from tdmm_ray.face.model import FaceModel
from tdmm_ray.fit import problem as prob
from tdmm_ray.fit.landmark_basis import landmark_function
from tdmm_ray.fit.priors import expression_prior_vector
from tdmm_ray.fit.qc import qc_verdicts
from tdmm_ray.threads import torch_threads

log = logging.getLogger(__name__)

TRANSLATION_SMOOTH_SCALE = 100.0  # 1 cm of translation ~ as visible as 0.01 rad of rotation
# The shared (identity, focal) systems sum over a clip's frames: float64. Per-frame blocks stay in
# the Jacobians' float32: a Gauss-Newton step needs no more, and float32 Cholesky and products are
# ~1.7x faster on the CPU.
SOLVE_DTYPE = torch.float64
MIN_DEPTH = 1e-4  # metres: a fit never lets landmarks reach the camera plane
RIGID, FRAME, SHARED, JOINT = "rigid", "frame", "shared", "joint"  # what a step moves (BatchedFitter.schedule)


def _lapack_threads(device: torch.device):
    """Torch's batched CPU LAPACK calls (thousands of tiny matrices) on one thread; GPUs as they are."""
    return torch_threads(1) if device.type == "cpu" else nullcontext()


@dataclass
class FitResult:
    """Per clip (N) and frame (T); numpy arrays on the CPU."""

    identity: np.ndarray  # [N,K_id]
    expression: np.ndarray  # [N,T,K_exp]
    rotation: np.ndarray  # [N,T,3] axis-angle
    translation: np.ndarray  # [N,T,3] metres, camera space
    focal: np.ndarray  # [N] pixels
    principal: np.ndarray  # [2] pixels
    reprojection_px: np.ndarray  # [N,T] mean landmark error (NaN where a frame had no landmarks)
    nme: np.ndarray  # [N,T] reprojection_px / inter-ocular distance
    frame_valid: np.ndarray  # [N,T] bool: the frame had landmarks
    qc_pass: np.ndarray  # [N] bool
    qc_reason: list[str]  # "ok" or why the clip was rejected

    def clip(self, i: int) -> dict:
        """One clip's parameters as a dict (the columns of the fit stage)."""
        return {"identity": self.identity[i], "expression": self.expression[i], "rotation": self.rotation[i],
                "translation": self.translation[i], "focal": float(self.focal[i]),
                "reprojection_px": self.reprojection_px[i], "nme": self.nme[i],
                "qc_pass": bool(self.qc_pass[i]), "qc_reason": self.qc_reason[i]}


def robust_weights(e: torch.Tensor, sigma: float, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared residual norms e -> (rho(e), d rho / d e), the IRLS weight."""
    if kind == "geman_mcclure":
        s2 = sigma * sigma
        return s2 * e / (s2 + e), (s2 / (s2 + e)) ** 2
    if kind == "huber":
        r = torch.sqrt(e + 1e-20)
        inlier = r <= sigma
        return torch.where(inlier, e, 2 * sigma * r - sigma * sigma), torch.where(inlier, 1.0, sigma / r)
    return e, torch.ones_like(e)


class BatchedFitter:
    """Fits one face model to batches of landmark sequences; keeps the landmark rows on `device`."""

    def __init__(self, model: FaceModel, config: FitConfig | None = None, device: str | torch.device = "cpu",
                 point_set: str = "ibug68"):
        """point_set: the detector's points ("ibug68", or "mediapipe468" with the model's embedding)."""
        self.model = model
        self.config = config or FitConfig()
        self.device = torch.device(device)
        self.lmf = landmark_function(model, self.device, point_set=point_set)
        self.point_set = point_set
        lo, hi = model.expression_range
        self.bounds = (float(lo), float(hi))
        self.k_id, self.k_exp = model.n_identity, model.n_expression
        # [K] per channel: stronger where no landmark sees the channel or the generator never drives it
        self.expression_prior = torch.as_tensor(expression_prior_vector(model, self.config, self.lmf, self.device),
                                                device=self.device)
        self.linear = not self.lmf.articulated
        self._jacobians = None  # (state, per-frame landmark Jacobians) of an articulated model
        if self.linear:  # constant landmark rows [L,3,K]; [L*3,K_id] for the shared block (see _shared)
            self.id_rows, self.exp_rows = self.lmf.jacobians(None, None)
            self.id_flat = self.id_rows.reshape(-1, self.k_id)

    def schedule(self) -> list[str]:
        """Pose-only steps; then `shared_iterations` exact joint steps (identity and focal with the
        per-frame parameters, by a Schur complement over the clip); then the remaining iterations
        alternate a per-frame step with a cheap shared step (block Gauss-Seidel: each holds the
        other block at its latest value). The joint step costs ~4x a per-frame one; after the
        first, the coupling is weak enough for alternation to converge as fast per CPU second."""
        c = self.config
        joint = min(c.shared_iterations, c.iterations)
        tail = []
        for _ in range(c.iterations - joint):
            tail += [FRAME, SHARED]
        return [RIGID] * c.rigid_iterations + [JOINT] * joint + tail

    # ---- forward model ---------------------------------------------------------------------
    def _forward(self, s: prob.State, d: prob.Data):
        """Per frame (B = N*T): model points x, rotation matrix, rotated y, camera points p, focal,
        pixel projections uv."""
        B = d.N * d.T
        x = self.lmf.points(s.identity.repeat_interleave(d.T, 0), s.expression.reshape(B, self.k_exp))
        rot = geometry.axis_angle_to_matrix(s.rotation.reshape(B, 3))
        y, p = geometry.pose_points(x, rot, s.translation.reshape(B, 3))
        f = s.log_focal.exp().repeat_interleave(d.T)
        return x, rot, y, p, f, geometry.project(p, f, d.principal, MIN_DEPTH)

    def energy(self, s: prob.State, d: prob.Data, sigma: float) -> torch.Tensor:
        """Per-clip energy [N] (the quantity each step must lower)."""
        uv = self._forward(s, d)[-1]
        r = (uv - d.obs) / d.scale_b[:, None, None]
        rho, _ = robust_weights((r * r).sum(-1), sigma, self.config.robust)
        data = (d.weight.reshape(rho.shape) * rho).reshape(d.N, -1).sum(1)
        c = self.config
        prior = ((self.expression_prior.to(s.expression.dtype) * s.expression**2).sum((1, 2))
                 + c.identity_prior * (s.identity**2).sum(1)
                 + c.focal_prior * (s.log_focal - d.log_focal0) ** 2)
        smooth = sum(((p[:, 1:] - p[:, :-1]) ** 2 * d.pair[..., None] * w).sum((1, 2))
                     for p, w in self._smooth_terms(s))
        return data + prior + c.smoothness * smooth

    def _smooth_terms(self, s: prob.State):
        return ((s.expression, 1.0), (s.rotation, 1.0), (s.translation, TRANSLATION_SMOOTH_SCALE))

    # ---- one Levenberg-Marquardt step ------------------------------------------------------
    def _normal_equations(self, s: prob.State, d: prob.Data, sigma: float, mode: str):
        """Gauss-Newton blocks. Per frame: h_pp [B,D,D], g_p [B,D] over (expression, rotation,
        translation), or (rotation, translation) for a rigid step, none for a shared step; per
        clip (JOINT, SHARED): h_ss [N,S,S], g_s [N,S] over (identity, log focal), and for JOINT the
        coupling h_ps [B,D,S]. Rows are pre-multiplied by the square-root IRLS weights, so every
        block is a plain J^T J."""
        B = d.N * d.T
        x, rot, y, p, f, uv = self._forward(s, d)
        L = uv.shape[1]
        scale = d.scale_b[:, None]
        r = (uv - d.obs) / scale[..., None]
        _, w_rob = robust_weights((r * r).sum(-1), sigma, self.config.robust)
        sw = torch.sqrt(d.weight.reshape(B, L) * w_rob)  # [B,L]
        j_cam = geometry.project_jacobian(p, f, MIN_DEPTH) * (sw / scale)[..., None, None]  # [B,L,2,3]
        j_x, j_rot = geometry.pose_jacobians(j_cam, y, rot)
        rw = r * sw[..., None]  # [B,L,2]
        h_pp = g_p = shared = None
        if mode != SHARED:
            blocks = [j_rot, j_cam] if mode == RIGID else [self._through_rows(j_x, s, d, "expression"), j_rot, j_cam]
            jp = torch.cat(blocks, -1).reshape(B, 2 * L, -1)
            h_pp = jp.transpose(1, 2) @ jp
            g_p = (rw.reshape(B, 1, 2 * L) @ jp)[:, 0]  # a row times J: far faster than J^T times a column
        if mode in (JOINT, SHARED):
            j_f = (uv - d.principal) / scale[..., None] * sw[..., None]  # d uv / d log f [B,L,2]
            j_id = None if self.linear and mode == SHARED else self._through_rows(j_x, s, d, "identity")
            h_ss, g_s = self._shared_blocks(j_x, j_id, j_f, rw, d)
            h_ps = None
            if mode == JOINT:
                h_ps = torch.empty(B, jp.shape[-1], self.k_id + 1, dtype=jp.dtype, device=self.device)
                h_ps[..., :-1] = jp.transpose(1, 2) @ j_id.reshape(B, 2 * L, -1)
                h_ps[..., -1] = (j_f.reshape(B, 1, 2 * L) @ jp)[:, 0]
            shared = (h_ps, h_ss, g_s)
        self._add_priors(s, d, h_pp, g_p, shared, mode)
        return h_pp, g_p, shared

    def _through_rows(self, j_x: torch.Tensor, s: prob.State, d: prob.Data, which: str) -> torch.Tensor:
        """d uv / d (identity or expression) [B,L,2,K] = d uv / d x . d x / d params."""
        if self.linear:
            rows = self.exp_rows if which == "expression" else self.id_rows  # [L,3,K]
            return torch.einsum("blij,ljk->blik", j_x, rows)
        # Autograd Jacobians are the costly part of an articulated model's step: one pass per state.
        if self._jacobians is None or self._jacobians[0] is not s:
            B = d.N * d.T
            self._jacobians = (s, self.lmf.jacobians(s.identity.repeat_interleave(d.T, 0),
                                                     s.expression.reshape(B, self.k_exp)))
        j_id, j_exp = self._jacobians[1]
        return j_x @ (j_exp if which == "expression" else j_id)

    def _shared_blocks(self, j_x, j_id, j_f, rw, d) -> tuple[torch.Tensor, torch.Tensor]:
        """h_ss [N,S,S] and g_s [N,S] over (identity, log focal), summed over each clip's frames.
        A linear model never forms the [T*2L, K_id] identity Jacobian here: its rows are constant,
        so the clip's 3x3 point metrics (and 3-vectors) are summed over frames first and the rows
        applied once per clip (K_id^2 * 3L work per clip instead of K_id^2 * 2L per frame)."""
        N, T = d.N, d.T
        L = j_x.shape[1]
        S = self.k_id + 1
        per_clip = lambda a: a.reshape(N, T, *a.shape[1:]).sum(1)  # noqa: E731
        h = torch.empty(N, S, S, device=self.device, dtype=SOLVE_DTYPE)
        g = torch.empty(N, S, device=self.device, dtype=SOLVE_DTYPE)
        if self.linear:
            # Elementwise over the two image rows: B*L tiny matmuls would cost more than the work.
            metric = per_clip(j_x[..., 0, :, None] * j_x[..., 0, None, :]
                              + j_x[..., 1, :, None] * j_x[..., 1, None, :])  # [N,L,3,3]
            h[:, :-1, :-1] = self.id_flat.T @ (metric @ self.id_rows).reshape(N, 3 * L, self.k_id)
            h[:, :-1, -1] = per_clip((j_x * j_f[..., None]).sum(2)).reshape(N, 3 * L) @ self.id_flat
            g[:, :-1] = per_clip((j_x * rw[..., None]).sum(2)).reshape(N, 3 * L) @ self.id_flat
        else:
            j_id_c = j_id.reshape(N, T * 2 * L, -1)
            h[:, :-1, :-1] = j_id_c.transpose(1, 2) @ j_id_c
            h[:, :-1, -1] = (j_id_c.transpose(1, 2) @ j_f.reshape(N, -1, 1))[..., 0]
            g[:, :-1] = (j_id_c.transpose(1, 2) @ rw.reshape(N, -1, 1))[..., 0]
        h[:, -1, :-1] = h[:, :-1, -1]
        h[:, -1, -1] = (j_f * j_f).reshape(N, -1).sum(1)
        g[:, -1] = (j_f * rw).reshape(N, -1).sum(1)
        return h, g

    def _add_priors(self, s, d, h_pp, g_p, shared, mode) -> None:
        c, K, B = self.config, self.k_exp, d.N * d.T
        if shared is not None:
            _, h_ss, g_s = shared
            ids = torch.arange(self.k_id, device=self.device)
            h_ss[:, ids, ids] += c.identity_prior
            g_s[:, : self.k_id] += c.identity_prior * s.identity.to(SOLVE_DTYPE)
            h_ss[:, -1, -1] += c.focal_prior
            g_s[:, -1] += c.focal_prior * (s.log_focal - d.log_focal0).to(SOLVE_DTYPE)
        if h_pp is None:
            return
        D = h_pp.shape[-1]
        dd = torch.arange(D, device=self.device)
        if mode != RIGID:
            h_pp[:, dd[:K], dd[:K]] += self.expression_prior.to(h_pp.dtype)
            g_p[:, :K] += self.expression_prior.to(g_p.dtype) * s.expression.reshape(B, K).to(g_p.dtype)
        if c.smoothness <= 0:
            return
        # Jacobi coupling: each frame is pulled towards its neighbours' current values.
        values = [s.rotation, s.translation]
        weights = [torch.full((3,), 1.0), torch.full((3,), TRANSLATION_SMOOTH_SCALE)]
        if mode != RIGID:
            values.insert(0, s.expression)
            weights.insert(0, torch.full((K,), 1.0))
        values = torch.cat(values, -1)  # [N,T,D]
        weights = torch.cat(weights).to(self.device) * c.smoothness
        pair = d.pair[..., None]  # [N,T-1,1]: frames t and t+1 both exist
        diff = (values[:, 1:] - values[:, :-1]) * pair
        grad = torch.zeros_like(values)
        grad[:, 1:] += diff
        grad[:, :-1] -= diff
        count = torch.zeros_like(values[..., :1])
        count[:, 1:] += pair
        count[:, :-1] += pair
        h_pp[:, dd, dd] += (count * weights).reshape(B, D).to(h_pp.dtype)
        g_p += (grad * weights).reshape(B, D).to(g_p.dtype)

    def _solve(self, s, d, h_pp, g_p, shared, mu: torch.Tensor, mode: str):
        """Damped step: per-frame blocks by Cholesky; with shared parameters, their Schur
        complement over the clip's frames (JOINT) or their block alone (SHARED).
        -> (per-frame step [N,T,D] or None, shared step [N,S] or None)."""
        N, T = d.N, d.T
        if mode == SHARED:
            _, h_ss, g_s = shared
            return None, self._solve_shared(h_ss, g_s, mu, d)
        B, D = N * T, h_pp.shape[-1]
        frozen = torch.zeros(B, D, dtype=torch.bool, device=self.device)
        if mode != RIGID:  # expression channels pressed against a bound stay there this step
            lo, hi = self.bounds
            K = self.k_exp
            psi = s.expression.reshape(B, K)
            frozen[:, :K] = ((psi <= lo + 1e-6) & (g_p[:, :K] > 0)) | ((psi >= hi - 1e-6) & (g_p[:, :K] < 0))
        frozen |= ~d.exists.reshape(B, 1)
        keep = (~frozen).to(h_pp.dtype)
        dd = torch.arange(D, device=self.device)
        mu_b = mu.to(h_pp.dtype).repeat_interleave(T)[:, None]
        diag = h_pp[:, dd, dd]
        h_pp.mul_(keep[:, :, None]).mul_(keep[:, None, :])  # in place: the blocks are this step's own
        h_pp[:, dd, dd] = diag * keep * (1 + mu_b) + mu_b * 1e-6 + frozen.to(h_pp.dtype) + 1e-9
        g_p = g_p * keep
        with _lapack_threads(self.device):
            chol, info = torch.linalg.cholesky_ex(h_pp)
            if bool((info > 0).any()):  # never expected with the damping above; keep going safely
                log.warning("fit: %d singular frame blocks; regularising", int((info > 0).sum()))
                chol = torch.linalg.cholesky(h_pp + 1e-3 * torch.eye(D, dtype=h_pp.dtype, device=self.device))
            if shared is None:
                step_p = -torch.cholesky_solve(g_p[..., None], chol)[..., 0]
                return step_p.float().reshape(N, T, D), None
            # An explicit inverse of the small blocks, then batched products: far cheaper on the
            # CPU than a batched cholesky_solve with S right-hand sides.
            h_inv = torch.cholesky_inverse(chol)
        h_ps, h_ss, g_s = shared
        h_ps.mul_(keep[:, :, None])
        S = h_ps.shape[-1]
        x_g, x_s = (h_inv @ g_p[..., None])[..., 0], h_inv @ h_ps
        h_ps_c = h_ps.reshape(N, T * D, S).transpose(1, 2)
        # The frame-side products are float32; the clip sums are subtracted in float64 (the
        # identity prior keeps the complement well away from singular).
        step_s = self._solve_shared(h_ss - (h_ps_c @ x_s.reshape(N, T * D, S)).to(SOLVE_DTYPE),
                                    g_s - (h_ps_c @ x_g.reshape(N, T * D, 1))[..., 0].to(SOLVE_DTYPE), mu, d)
        step_p = -(x_g + (x_s @ step_s.repeat_interleave(T, 0)[..., None])[..., 0])
        return step_p.float().reshape(N, T, D), step_s

    def _solve_shared(self, h: torch.Tensor, g: torch.Tensor, mu: torch.Tensor, d: prob.Data) -> torch.Tensor:
        """Damped solve of a clip's (identity, log focal) system [N,S,S] -> step [N,S]."""
        sd = torch.arange(h.shape[-1], device=self.device)
        h[:, sd, sd] = h[:, sd, sd] * (1 + mu[:, None]) + 1e-9
        if d.fix_focal:  # a known camera: the focal row becomes "no change"
            h[:, -1, :] = 0
            h[:, :, -1] = 0
            h[:, -1, -1] = 1
            g[:, -1] = 0
        with _lapack_threads(self.device):
            return -torch.linalg.solve(h, g).float()

    def _apply(self, s: prob.State, step_p: torch.Tensor | None, step_s: torch.Tensor | None) -> prob.State:
        if step_p is None:
            return prob.State(identity=s.identity + step_s[:, : self.k_id], log_focal=s.log_focal + step_s[:, -1],
                              expression=s.expression, rotation=s.rotation, translation=s.translation)
        lo, hi = self.bounds
        K = step_p.shape[-1] - 6  # 0 for a rigid step
        rot = geometry.axis_angle_to_matrix(step_p[..., K:K + 3]) @ geometry.axis_angle_to_matrix(s.rotation)
        return prob.State(
            identity=s.identity if step_s is None else s.identity + step_s[:, : self.k_id],
            log_focal=s.log_focal if step_s is None else s.log_focal + step_s[:, -1],
            expression=(s.expression + step_p[..., :K]).clamp(lo, hi) if K else s.expression,
            rotation=geometry.matrix_to_axis_angle(rot),
            translation=s.translation + step_p[..., K + 3:],
        )

    # ---- public ----------------------------------------------------------------------------
    @torch.no_grad()
    def fit(self, landmarks, image_size: tuple[int, int], confidence=None, lengths=None,
            focal: float | None = None) -> FitResult:
        """landmarks [N,T,L,2] pixels (NaN where missing; L points of this fitter's point set),
        image_size (width, height), confidence [N,T] or [N,T,L] (None: 1), lengths [N] real frames
        per clip (None: all T). The point set's per-point weights multiply the confidence."""
        c = self.config
        emb = self.lmf.embedding
        d = prob.prepare(landmarks, image_size, confidence, lengths, self.device, c.fov_init_deg, focal,
                         point_weight=emb.weight.to(self.device), eye_outer=emb.eye_outer)
        s = prob.initial_state(d, self.lmf, self.k_id, self.k_exp, self.bounds)
        mu = torch.full((d.N,), 1e-3, device=self.device)
        e0, last_sigma = None, None
        for it, mode in enumerate(self.schedule()):
            sigma = max(c.robust_scale, 0.5 * 0.5**it)
            if sigma != last_sigma:  # otherwise the kept energy of the last step is still exact
                e0, last_sigma = self.energy(s, d, sigma), sigma
            h_pp, g_p, shared = self._normal_equations(s, d, sigma, mode)
            step_p, step_s = self._solve(s, d, h_pp, g_p, shared, mu=mu.to(SOLVE_DTYPE), mode=mode)
            cand = self._apply(s, step_p, step_s)
            e1 = self.energy(cand, d, sigma)
            accept = torch.isfinite(e1) & (e1 <= e0)
            s = prob.select(accept, cand, s)
            e0 = torch.where(accept, e1, e0)
            mu = torch.where(accept, mu / 3, mu * 4).clamp(1e-7, 1e7)
            log.debug("fit iter %d (%s) sigma %.3f energy %.5g accepted %d/%d", it, mode, sigma,
                      float(e0.mean()), int(accept.sum()), d.N)
        self._jacobians = None
        return self._result(s, d)

    def _result(self, s: prob.State, d: prob.Data) -> FitResult:
        uv = self._forward(s, d)[-1].reshape(d.N, d.T, -1, 2)
        err = torch.linalg.norm(uv - d.obs.reshape(uv.shape), dim=-1)
        seen = d.seen.reshape(err.shape)
        n = seen.sum(-1)
        rep = torch.where(n > 0, (err * seen).sum(-1) / n.clamp(min=1), torch.nan)
        nme = rep / d.iod
        out = dict(identity=s.identity, expression=s.expression, rotation=s.rotation,
                   translation=s.translation, focal=s.log_focal.exp(), reprojection_px=rep, nme=nme,
                   frame_valid=d.frame_valid)
        arrays = {k: v.detach().cpu().numpy() for k, v in out.items()}
        passed, reasons = qc_verdicts(arrays, d.exists.cpu().numpy(), self.config)
        return FitResult(principal=d.principal.cpu().numpy(), qc_pass=passed, qc_reason=reasons, **arrays)


def fit_landmarks(model: FaceModel, landmarks, image_size: tuple[int, int], confidence=None, lengths=None,
                  config: FitConfig | None = None, device: str | torch.device = "cpu",
                  focal: float | None = None, point_set: str = "ibug68") -> FitResult:
    """One-call form of BatchedFitter(model, config, device, point_set).fit(...)."""
    return BatchedFitter(model, config, device, point_set).fit(landmarks, image_size, confidence, lengths, focal)
