"""Motion tokenizer: per-frame face parameters <-> discrete motion tokens (a geometry VQ-VAE)."""

from tdmm_ray.tokenizer.features import MotionStats, features_from, split_features
from tdmm_ray.tokenizer.motion_tokenizer import MotionTokenizer

__all__ = ["MotionStats", "MotionTokenizer", "features_from", "split_features"]
