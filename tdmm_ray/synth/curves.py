"""Smooth time curves for motion scripts: pure numpy functions of a time axis and a random generator.

Every curve starts and ends with zero velocity where it moves (minimum-jerk ramps, tapered
oscillations), because real facial and head movements have bell-shaped velocity profiles.
Times are in seconds; `t` is the per-frame time axis [T].
"""

from __future__ import annotations

import numpy as np

# Signed head-pose conventions (model space, right-handed, see tdmm_ray.face.geometry):
#   +yaw   turns the nose toward the subject's LEFT (image right)  -> turn_left  = +yaw
#   +pitch tips the nose DOWN                                      -> look_down = +pitch, nods go down first
#   +roll  lifts the subject's left side, head top toward their right -> tilt_left = -roll
HEAD_SIGNS = {"turn_left": +1.0, "turn_right": -1.0, "look_down": +1.0, "look_up": -1.0,
              "tilt_left": -1.0, "tilt_right": +1.0}


def min_jerk(x: np.ndarray) -> np.ndarray:
    """Minimum-jerk ramp 0 -> 1 on x in [0,1] (clamped): 10x^3 - 15x^4 + 6x^5."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * x * (10.0 + x * (-15.0 + 6.0 * x))


def ramp(t: np.ndarray, start: float, duration: float) -> np.ndarray:
    """0 before `start`, min-jerk rise over `duration`, 1 after."""
    return min_jerk((t - start) / max(duration, 1e-6))


def pulse(t: np.ndarray, start: float, rise: float, hold: float, fall: float) -> np.ndarray:
    """A bump: min-jerk rise, hold at 1, min-jerk fall back to 0."""
    return ramp(t, start, rise) * (1.0 - ramp(t, start + rise + hold, fall))


def taper(t: np.ndarray, start: float, duration: float, edge: float = 0.15) -> np.ndarray:
    """Window that is 1 inside [start, start+duration] and eases to 0 over `edge` of it at each end,
    so an oscillation multiplied by it starts and stops at rest."""
    tau = (t - start) / max(duration, 1e-6)
    return ramp(tau, 0.0, edge) * (1.0 - ramp(tau, 1.0 - edge, edge))


# ---- emotion envelopes (onset / apex / offset by dynamics) ------------------------------------
def envelope(dynamics: str, t: np.ndarray, duration: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Activation of the first emotion and of the target emotion over time, both in [0,1].

    sudden: fast onset (0.1-0.25 s) early, then apex; gradual: slow onset over half the clip;
    building: rises until the very end; fading: starts at apex and decays; transition: the first
    emotion crossfades into the target around the middle. The target curve is zero unless transition."""
    zero = np.zeros_like(t)
    if dynamics == "sudden":
        onset = rng.uniform(0.1, 0.25) * duration
        return ramp(t, onset, rng.uniform(0.1, 0.25)) * (1.0 - 0.15 * ramp(t, 0.7 * duration, 0.3 * duration)), zero
    if dynamics == "gradual":
        onset = rng.uniform(0.03, 0.12) * duration
        return ramp(t, onset, rng.uniform(0.5, 0.65) * duration), zero
    if dynamics == "building":
        # Convex, strictly rising to the last frame: slow start, steepest near the end.
        x = np.clip(t / max(duration, 1e-6), 0.0, 1.0)
        return x ** rng.uniform(1.4, 2.0), zero
    if dynamics == "fading":
        hold = rng.uniform(0.05, 0.15) * duration
        floor = rng.uniform(0.05, 0.15)
        return 1.0 - (1.0 - floor) * ramp(t, hold, duration - hold), zero
    if dynamics == "transition":
        mid = rng.uniform(0.4, 0.6) * duration
        width = min(rng.uniform(0.6, 1.2), 0.5 * duration)
        cross = ramp(t, mid - width / 2, width)
        lead_in = ramp(t, 0.0, min(0.3, 0.1 * duration))  # the first emotion eases in from rest
        return np.maximum(lead_in * (1.0 - cross), 0.0), cross
    raise ValueError(f"unknown dynamics {dynamics!r}")


# ---- head motion ------------------------------------------------------------------------------
def sway(t: np.ndarray, amplitude_rad: float, rng: np.random.Generator) -> np.ndarray:
    """Small natural drift: a sum of three slow sinusoids (0.1-0.6 Hz) with random phases."""
    out = np.zeros_like(t)
    for _ in range(3):
        f = rng.uniform(0.1, 0.6)
        out += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return amplitude_rad * out / 2.0


def head_euler(head_motion: str, t: np.ndarray, duration: float, level: int, rng: np.random.Generator) -> np.ndarray:
    """Yaw, pitch, roll [T,3] in radians for one head motion, on top of a small sway."""
    deg = np.pi / 180.0
    gain = 0.85 + 0.1 * level  # stronger emotions move the head a little more
    euler = np.stack([sway(t, rng.uniform(0.6, 1.2) * deg, rng) for _ in range(3)], -1)
    if head_motion == "still":
        return euler
    start = rng.uniform(0.05, 0.25) * duration
    if head_motion in ("nod", "shake"):
        cycles = int(rng.integers(1, 4))
        period = rng.uniform(0.5, 0.8) if head_motion == "nod" else rng.uniform(0.45, 0.7)
        span = min(cycles * period, duration - start - 0.05)
        tau = np.clip((t - start) / span, 0.0, 1.0)
        damping = np.exp(-rng.uniform(0.3, 1.0) * tau)  # each swing a little smaller than the last
        if head_motion == "nod":
            amp = rng.uniform(8.0, 14.0) * deg * gain
            # Down and back up, `cycles` times; (1-cos)/2 starts and ends every cycle at rest.
            euler[:, 1] += amp * 0.5 * (1.0 - np.cos(2 * np.pi * cycles * tau)) * damping * (t >= start)
        else:
            amp = rng.uniform(10.0, 18.0) * deg * gain
            sign = rng.choice([-1.0, 1.0])
            euler[:, 0] += sign * amp * np.sin(2 * np.pi * cycles * tau) * damping * taper(t, start, span)
        return euler
    if head_motion in HEAD_SIGNS:
        axis = {"turn": 0, "look": 1, "tilt": 2}[head_motion.split("_")[0]]
        lo, hi = {0: (15.0, 28.0), 1: (10.0, 18.0), 2: (10.0, 18.0)}[axis]
        amp = HEAD_SIGNS[head_motion] * rng.uniform(lo, hi) * deg * gain
        hold = ramp(t, start, rng.uniform(0.4, 0.8))
        if rng.random() < 0.5:  # sometimes ease back part way before the clip ends
            back_start = rng.uniform(0.75, 0.85) * duration
            hold = hold * (1.0 - 0.5 * ramp(t, back_start, duration - back_start))
        euler[:, axis] += amp * hold
        return euler
    raise ValueError(f"unknown head motion {head_motion!r}")


# ---- blinks -------------------------------------------------------------------------------------
def blink_shape(t: np.ndarray, start: float, duration: float) -> np.ndarray:
    """One blink: a fast close (~40% of it) and a slower reopening, peak 1."""
    close = 0.4 * duration
    return ramp(t, start, close) * (1.0 - ramp(t, start + close, duration - close))


def blink_times(duration: float, rate_per_min: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Spontaneous blinks as a Poisson process: (start, length) pairs, 150-250 ms each, with a
    refractory gap so two blinks never merge into one long closure."""
    events: list[tuple[float, float]] = []
    mean_gap = 60.0 / rate_per_min
    t = rng.exponential(mean_gap) * rng.uniform(0.2, 1.0)  # the clip starts mid-interval
    while t < duration:
        length = rng.uniform(0.15, 0.25)
        events.append((t, length))
        t += length + 0.2 + rng.exponential(max(mean_gap - length - 0.2, 0.1))
    return events


def blink_curve(t: np.ndarray, events: list[tuple[float, float]]) -> np.ndarray:
    out = np.zeros_like(t)
    for start, length in events:
        out = np.maximum(out, blink_shape(t, start, length))
    return out
