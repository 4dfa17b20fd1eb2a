import numpy as np
import pytest

from tdmm_ray.evaluation.evaluator import MotionClassifier, TextMotionEvaluator, Vocabulary
from tdmm_ray.evaluation.motion_metrics import r_precision

pytestmark = pytest.mark.slow  # trains the evaluator networks: 17-42 CPU-s each


def _toy(n: int, seed: int):
    """Texts name an emotion and a head motion; motions carry a matching signature."""
    rng = np.random.default_rng(seed)
    emotions, heads = ["happy", "sad", "angry", "surprised"], ["nod", "shake", "still"]
    texts, motions, labels = [], [], []
    for _ in range(n):
        e, h = rng.integers(len(emotions)), rng.integers(len(heads))
        t = np.linspace(0, 4 * np.pi, int(rng.integers(30, 50)))
        m = np.zeros((len(t), 6), np.float32)
        m[:, e] = 1.0 + 0.1 * rng.normal(size=len(t))
        if h < 2:
            m[:, 4 + h] = np.sin(t * (1 + h))
        m += 0.05 * rng.normal(size=m.shape)
        texts.append(f"a {emotions[e]} face that does a {heads[h]}")
        motions.append(m)
        labels.append({"emotion": ["happy", "sad", "angry", "surprised"][e], "intensity": "mild",
                       "head_motion": ["nod", "shake", "still"][h]})
    return texts, motions, labels


def test_evaluator_ranks_matching_pairs_above_chance():
    texts, motions, _ = _toy(256, 0)
    ev = TextMotionEvaluator(Vocabulary(texts), feature_dim=6, dim=32)
    losses = ev.fit(texts, motions, epochs=12, seed=0)
    assert losses[-1] < losses[0]
    tt, tm, _ = _toy(128, 1)
    top = r_precision(ev.embed_text(tt), ev.embed_motion(tm), pool=32)
    # 12 distinct compositions: a perfect model reaches ~1.0 at top-3 only up to ties; chance is 3/32
    assert top[2] > 0.5, top


def test_classifier_learns_attributes():
    texts, motions, labels = _toy(256, 0)
    clf = MotionClassifier(feature_dim=6, dim=32)
    clf.fit(motions, labels, epochs=25)
    _, tm, tl = _toy(64, 2)
    pred = clf.predict(tm)
    acc = np.mean([p["emotion"] == t["emotion"] for p, t in zip(pred, tl)])
    assert acc > 0.8
