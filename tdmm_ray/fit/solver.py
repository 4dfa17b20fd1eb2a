"""Batched 3D face fitting to 2D landmarks: Levenberg-Marquardt over many clips at once (torch).

Unknowns per clip: identity beta and log focal (shared by its frames); per frame: expression psi,
head rotation (axis-angle, updated on the left by a small angle) and translation. Energy, with
landmark residuals r measured in inter-ocular distances (so weights do not depend on resolution):

    sum c * rho(|r|^2) + l_exp |psi|^2 + l_id |beta|^2 + l_f (log f - log f0)^2
        + l_s sum_t |p_t - p_t-1|^2                          (temporal smoothness of psi, pose)

rho is a robust loss solved by IRLS with a scale annealed from coarse to fine (graduated
non-convexity), c the landmark confidence. Each step solves the normal equations exactly in the
per-clip parameters by a Schur complement over the per-frame blocks; the smoothness coupling
between neighbouring frames enters Jacobi-style (neighbours held at their current values), and
a step is kept only where it lowers a clip's energy (per-clip Marquardt damping). Expression
bounds are an active set: channels pressed against a bound are frozen for that step.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
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

log = logging.getLogger(__name__)

FLIP = torch.tensor([1.0, -1.0, -1.0])  # model -> camera axes (geometry.MODEL_TO_CAMERA's diagonal)
TRANSLATION_SMOOTH_SCALE = 100.0  # 1 cm of translation ~ as visible as 0.01 rad of rotation
SOLVE_DTYPE = torch.float64  # the small normal-equation solves; the Jacobians stay in float32


@contextmanager
def _lapack_threads(device: torch.device):
    """Run torch's batched CPU LAPACK calls (thousands of tiny matrices) on one thread: with more,
    every tiny call pays OpenMP synchronisation and the batch is 10-30x slower on a busy machine."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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


def skew(v: torch.Tensor) -> torch.Tensor:
    """[...,3] -> cross-product matrices [...,3,3]."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(*v.shape, 3)


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

    def __init__(self, model: FaceModel, config: FitConfig | None = None, device: str | torch.device = "cpu"):
        self.model = model
        self.config = config or FitConfig()
        self.device = torch.device(device)
        self.lmf = landmark_function(model, self.device)
        self.flip = FLIP.to(self.device)
        lo, hi = model.expression_range
        self.bounds = (float(lo), float(hi))
        self.k_id, self.k_exp = model.n_identity, model.n_expression
        # [K] per channel: stronger where no landmark sees the channel or the generator never drives it
        self.expression_prior = torch.as_tensor(expression_prior_vector(model, self.config, self.lmf, self.device),
                                                device=self.device)

    # ---- forward model ---------------------------------------------------------------------
    def _project(self, s: prob.State, d: prob.Data):
        """Camera points and pixel projections for every frame ([B,...], B = N*T)."""
        b_id = s.identity.repeat_interleave(d.T, 0)
        x = self.lmf.points(b_id, s.expression.reshape(-1, self.k_exp))  # [B,68,3]
        rot = geometry.axis_angle_to_matrix(s.rotation.reshape(-1, 3))
        y = x @ rot.transpose(1, 2)  # R X
        p = y * self.flip + s.translation.reshape(-1, 1, 3)
        z = p[..., 2:].clamp(min=1e-4)
        f = s.log_focal.exp().repeat_interleave(d.T)[:, None, None]
        uv = f * p[..., :2] / z + d.principal
        return b_id, x, rot, y, p, z, f, uv

    def energy(self, s: prob.State, d: prob.Data, sigma: float) -> torch.Tensor:
        """Per-clip energy [N] (the quantity each step must lower)."""
        uv = self._project(s, d)[-1]
        r = (uv - d.obs) / d.scale_b[:, None, None]
        rho, _ = robust_weights((r * r).sum(-1), sigma, self.config.robust)
        data = (d.weight.reshape(-1, 68) * rho).reshape(d.N, -1).sum(1)
        c = self.config
        prior = ((self.expression_prior.to(s.expression.dtype) * s.expression**2).sum((1, 2)) + c.identity_prior * (s.identity**2).sum(1)
                 + c.focal_prior * (s.log_focal - d.log_focal0) ** 2)
        smooth = sum(((p[:, 1:] - p[:, :-1]) ** 2 * d.pair[..., None] * w).sum((1, 2))
                     for p, w in self._smooth_terms(s))
        return data + prior + c.smoothness * smooth

    def _smooth_terms(self, s: prob.State):
        return ((s.expression, 1.0), (s.rotation, 1.0), (s.translation, TRANSLATION_SMOOTH_SCALE))

    # ---- one Levenberg-Marquardt step ------------------------------------------------------
    def _normal_equations(self, s: prob.State, d: prob.Data, sigma: float):
        N, T, K, B = d.N, d.T, self.k_exp, d.N * d.T
        b_id, x, rot, y, p, z, f, uv = self._project(s, d)
        scale = d.scale_b[:, None, None]
        r = (uv - d.obs) / scale  # [B,68,2]
        _, w_rob = robust_weights((r * r).sum(-1), sigma, self.config.robust)
        wt = (d.weight.reshape(B, 68) * w_rob).repeat_interleave(2, 1)  # [B,136]
        # d uv / d P, already divided by the clip's face scale: [B,68,2,3]
        a = torch.zeros(B, 68, 2, 3, device=self.device)
        a[..., 0, 0] = a[..., 1, 1] = (f / z)[..., 0]
        a[..., :, 2] = -f * p[..., :2] / (z * z)
        a = a / scale[..., None]
        af = a * self.flip  # d uv / d (R X)
        j_rot = -af @ skew(y)  # left small-angle update: d(exp(w) R X)/dw = -[R X]x
        afr = af @ rot[:, None]
        j_id, j_exp = self.lmf.jacobians(b_id, s.expression.reshape(B, K))
        pattern = "blij,ljk->blik" if j_exp.ndim == 3 else "blij,bljk->blik"
        jp = torch.cat([torch.einsum(pattern, afr, j_exp), j_rot, a], -1).reshape(B, 136, K + 6)
        js = torch.cat([torch.einsum(pattern, afr, j_id), ((uv - d.principal) / scale)[..., None]],
                       -1).reshape(B, 136, self.k_id + 1)
        rw = (r.reshape(B, 136) * wt)[..., None]
        jpw = jp * wt[..., None]
        h_pp = (jp.transpose(1, 2) @ jpw).to(SOLVE_DTYPE)
        g_p = (jp.transpose(1, 2) @ rw)[..., 0].to(SOLVE_DTYPE)
        h_ps = (jpw.transpose(1, 2) @ js).to(SOLVE_DTYPE)
        js_c = js.reshape(N, T * 136, -1)
        h_ss = (js_c.transpose(1, 2) @ (js_c * wt.reshape(N, T * 136, 1))).to(SOLVE_DTYPE)
        g_s = (js_c.transpose(1, 2) @ rw.reshape(N, T * 136, 1))[..., 0].to(SOLVE_DTYPE)
        self._add_priors(s, d, h_pp, g_p, h_ss, g_s)
        return h_pp, g_p, h_ps, h_ss, g_s

    def _add_priors(self, s, d, h_pp, g_p, h_ss, g_s) -> None:
        c, K, B = self.config, self.k_exp, d.N * d.T
        idx = torch.arange(K, device=self.device)
        h_pp[:, idx, idx] += self.expression_prior.to(SOLVE_DTYPE)
        g_p[:, :K] += self.expression_prior.to(SOLVE_DTYPE) * s.expression.reshape(B, K).to(SOLVE_DTYPE)
        ids = torch.arange(self.k_id, device=self.device)
        h_ss[:, ids, ids] += c.identity_prior
        g_s[:, : self.k_id] += c.identity_prior * s.identity.to(SOLVE_DTYPE)
        h_ss[:, -1, -1] += c.focal_prior
        g_s[:, -1] += c.focal_prior * (s.log_focal - d.log_focal0).to(SOLVE_DTYPE)
        if c.smoothness <= 0:
            return
        # Jacobi coupling: each frame is pulled towards its neighbours' current values.
        values = torch.cat([s.expression, s.rotation, s.translation], -1)  # [N,T,D]
        weights = torch.cat([torch.full((K,), 1.0), torch.full((3,), 1.0),
                             torch.full((3,), TRANSLATION_SMOOTH_SCALE)]).to(self.device) * c.smoothness
        pair = d.pair[..., None]  # [N,T-1,1]: frames t and t+1 both exist
        diff = (values[:, 1:] - values[:, :-1]) * pair
        grad = torch.zeros_like(values)
        grad[:, 1:] += diff
        grad[:, :-1] -= diff
        count = torch.zeros_like(values[..., :1])
        count[:, 1:] += pair
        count[:, :-1] += pair
        D = K + 6
        dd = torch.arange(D, device=self.device)
        h_pp[:, dd, dd] += (count * weights).reshape(B, D).to(SOLVE_DTYPE)
        g_p += (grad * weights).reshape(B, D).to(SOLVE_DTYPE)

    def _solve(self, s, d, h_pp, g_p, h_ps, h_ss, g_s, mu: torch.Tensor, rigid: bool):
        N, T, K, B = d.N, d.T, self.k_exp, d.N * d.T
        D = K + 6
        lo, hi = self.bounds
        psi = s.expression.reshape(B, K)
        frozen = torch.zeros(B, D, dtype=torch.bool, device=self.device)
        frozen[:, :K] = ((psi <= lo + 1e-6) & (g_p[:, :K] > 0)) | ((psi >= hi - 1e-6) & (g_p[:, :K] < 0))
        if rigid:
            frozen[:, :K] = True
        frozen |= ~d.exists.reshape(B, 1)
        keep = (~frozen).to(SOLVE_DTYPE)
        dd = torch.arange(D, device=self.device)
        mu_b = mu.repeat_interleave(T)[:, None]
        diag = h_pp[:, dd, dd]
        h_pp = h_pp * keep[:, :, None] * keep[:, None, :]
        h_pp[:, dd, dd] = diag * keep * (1 + mu_b) + mu_b * 1e-6 + frozen.to(SOLVE_DTYPE) + 1e-9
        g_p = g_p * keep
        h_ps = h_ps * keep[:, :, None]
        with _lapack_threads(self.device):
            chol, info = torch.linalg.cholesky_ex(h_pp)
            if bool((info > 0).any()):  # never expected with the damping above; keep going safely
                log.warning("fit: %d singular frame blocks; regularising", int((info > 0).sum()))
                chol = torch.linalg.cholesky(h_pp + 1e-3 * torch.eye(D, dtype=SOLVE_DTYPE, device=self.device))
            # Explicit inverses of the small blocks: then everything else is batched matmul.
            h_inv = torch.cholesky_inverse(chol)
        x_g = h_inv @ g_p[..., None]  # [B,D,1]
        if rigid:
            step_p = -x_g[..., 0]
            step_s = torch.zeros(N, self.k_id + 1, dtype=SOLVE_DTYPE, device=self.device)
        else:
            x_s = h_inv @ h_ps  # [B,D,S]
            S = self.k_id + 1
            h_ps_c = h_ps.reshape(N, T, D, S)
            schur = h_ss - torch.einsum("ntds,ntde->nse", h_ps_c, x_s.reshape(N, T, D, S))
            g_red = g_s - torch.einsum("ntds,ntd->ns", h_ps_c, x_g.reshape(N, T, D))
            sd = torch.arange(S, device=self.device)
            schur[:, sd, sd] = schur[:, sd, sd] * (1 + mu[:, None]) + 1e-9
            if d.fix_focal:  # a known camera: the focal row becomes "no change"
                schur[:, -1, :] = 0
                schur[:, :, -1] = 0
                schur[:, -1, -1] = 1
                g_red[:, -1] = 0
            with _lapack_threads(self.device):
                step_s = -torch.linalg.solve(schur, g_red)
            step_p = -(x_g[..., 0] + (x_s @ step_s.repeat_interleave(T, 0)[..., None])[..., 0])
        return step_p.float().reshape(N, T, D), step_s.float()

    def _apply(self, s: prob.State, step_p: torch.Tensor, step_s: torch.Tensor) -> prob.State:
        K = self.k_exp
        lo, hi = self.bounds
        rot = geometry.axis_angle_to_matrix(step_p[..., K:K + 3]) @ geometry.axis_angle_to_matrix(s.rotation)
        return prob.State(
            identity=s.identity + step_s[:, : self.k_id],
            log_focal=s.log_focal + step_s[:, -1],
            expression=(s.expression + step_p[..., :K]).clamp(lo, hi),
            rotation=geometry.matrix_to_axis_angle(rot),
            translation=s.translation + step_p[..., K + 3:],
        )

    # ---- public ----------------------------------------------------------------------------
    @torch.no_grad()
    def fit(self, landmarks, image_size: tuple[int, int], confidence=None, lengths=None,
            focal: float | None = None) -> FitResult:
        """landmarks [N,T,68,2] pixels (NaN where missing), image_size (width, height),
        confidence [N,T] or [N,T,68] (None: 1), lengths [N] real frames per clip (None: all T)."""
        c = self.config
        d = prob.prepare(landmarks, image_size, confidence, lengths, self.device, c.fov_init_deg, focal)
        s = prob.initial_state(d, self.lmf, self.k_id, self.k_exp, self.bounds)
        mu = torch.full((d.N,), 1e-3, device=self.device)
        total = c.rigid_iterations + c.iterations
        for it in range(total):
            rigid = it < c.rigid_iterations
            sigma = max(c.robust_scale, 0.5 * 0.5**it)
            e0 = self.energy(s, d, sigma)
            eqs = self._normal_equations(s, d, sigma)
            step_p, step_s = self._solve(s, d, *eqs, mu=mu.to(SOLVE_DTYPE), rigid=rigid)
            cand = self._apply(s, step_p, step_s)
            e1 = self.energy(cand, d, sigma)
            accept = torch.isfinite(e1) & (e1 <= e0)
            s = prob.select(accept, cand, s)
            mu = torch.where(accept, mu / 3, mu * 4).clamp(1e-7, 1e7)
            log.debug("fit iter %d sigma %.3f energy %.5g accepted %d/%d", it, sigma,
                      float(torch.where(accept, e1, e0).mean()), int(accept.sum()), d.N)
        return self._result(s, d)

    def _result(self, s: prob.State, d: prob.Data) -> FitResult:
        uv = self._project(s, d)[-1].reshape(d.N, d.T, 68, 2)
        err = torch.linalg.norm(uv - d.obs.reshape(d.N, d.T, 68, 2), dim=-1)
        seen = d.seen.reshape(d.N, d.T, 68)
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
                  focal: float | None = None) -> FitResult:
    """One-call form of BatchedFitter(model, config, device).fit(...)."""
    return BatchedFitter(model, config, device).fit(landmarks, image_size, confidence, lengths, focal)
