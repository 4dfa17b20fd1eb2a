"""Computing every number of the report, per evaluation split (in-distribution test, held-out).

Methods compared on Language2Motion: `generated` (the model), `ground_truth` (the corpus motion,
the reference) and `retrieval` (the training motion whose prompt is most similar, by TF-IDF).
Motion2Language: `generated` (the model describing the corpus motion tokens), `ground_truth`
(one reference caption scored against the others) and `retrieval` (the caption of the training
motion nearest in the evaluator's space).
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter

import numpy as np

from tdmm_ray.evaluation import motion_metrics as mm
from tdmm_ray.evaluation.evaluator import MotionClassifier, TextMotionEvaluator, Vocabulary
from tdmm_ray.evaluation.text_metrics import ATTRIBUTE_AXES, attribute_accuracy, caption_scores
from tdmm_ray.lm.generate import describe_codes
from tdmm_ray.tokenizer.features import features_from

log = logging.getLogger(__name__)
M2L_MAX_NEW_TOKENS = 96


class TfIdf:
    """Prompt similarity for the retrieval baseline (word TF-IDF, cosine)."""

    def __init__(self, texts: list[str]):
        docs = [Counter(re.findall(r"[a-z]+", t.lower())) for t in texts]
        df = Counter(w for d in docs for w in d)
        self.idf = {w: math.log((1 + len(docs)) / (1 + c)) + 1 for w, c in df.items()}
        self.matrix = self._vectors(docs)

    def _vectors(self, docs: list[Counter]) -> dict:
        vecs = []
        for d in docs:
            v = {w: c * self.idf.get(w, 0.0) for w, c in d.items()}
            norm = math.sqrt(sum(x * x for x in v.values())) or 1.0
            vecs.append({w: x / norm for w, x in v.items()})
        return vecs

    def nearest(self, text: str) -> int:
        q = self._vectors([Counter(re.findall(r"[a-z]+", text.lower()))])[0]
        scores = [sum(q.get(w, 0.0) * x for w, x in v.items()) for v in self.matrix]
        return int(np.argmax(scores))


def _sample(rows: list[dict], limit: int, seed: int) -> list[dict]:
    if len(rows) <= limit:
        return rows
    idx = np.random.default_rng(seed).choice(len(rows), limit, replace=False)
    return [rows[i] for i in sorted(idx)]


class Evaluation:
    def __init__(self, cfg, translator, rows: list[dict]):
        self.cfg, self.tr = cfg, translator
        self.train = [r for r in rows if r["split"] == "train"]
        self.splits = {s: _sample([r for r in rows if r["split"] == s], cfg.eval.max_clips, cfg.seed)
                       for s in ("test", "heldout")}
        if len(self.train) < 4:
            raise ValueError(f"evaluation needs >= 4 training clips, the corpus has {len(self.train)}")

    def features(self, expression, rotation) -> np.ndarray:
        return self.tr.motion.stats.normalize(features_from(np.asarray(expression, np.float32),
                                                            np.asarray(rotation, np.float32)))

    def fit_evaluators(self) -> dict:
        e = self.cfg.eval
        texts = [r["text"] for r in self.train]
        motions = [self.features(r["expression"], r["rotation"]) for r in self.train]
        dim = motions[0].shape[1]
        self.evaluator = TextMotionEvaluator(Vocabulary(texts), dim, dim=e.evaluator_dim)
        losses = self.evaluator.fit(texts, motions, epochs=e.evaluator_epochs, seed=self.cfg.seed)
        self.classifier = MotionClassifier(dim, dim=e.evaluator_dim)
        self.classifier.fit(motions, self.train, epochs=e.evaluator_epochs, seed=self.cfg.seed)
        self.train_motion_emb = self.evaluator.embed_motion(motions)
        self.tfidf = TfIdf(texts)
        return {"evaluator_loss_first": losses[0], "evaluator_loss_last": losses[-1], "train_clips": len(self.train)}

    # ---- Language2Motion ---------------------------------------------------------------------
    def generate(self, rows: list[dict], seed: int) -> list[dict]:
        out = []
        for i in range(0, len(rows), 16):
            chunk = rows[i:i + 16]
            reqs = [{"prompt": r["text"], "duration_s": r["n_frames"] / r["fps"], "fps": r["fps"], "seed": seed,
                     "temperature": self.cfg.eval.temperature, "formats": ["params"]} for r in chunk]
            out.extend(self.tr.text_to_motion_batch(reqs))
        return out

    def l2m(self, rows: list[dict]) -> tuple[dict, dict]:
        texts = [r["text"] for r in rows]
        t_emb = self.evaluator.embed_text(texts)
        gen = self.generate(rows, self.cfg.seed)
        retrieved = [self.train[self.tfidf.nearest(t)] for t in texts]
        motions = {
            "ground_truth": [self.features(r["expression"], r["rotation"]) for r in rows],
            "generated": [self.features(g["parameters"]["expression"], g["parameters"]["rotation"]) for g in gen],
            "retrieval": [self.features(r["expression"], r["rotation"]) for r in retrieved],
        }
        tokens = {"ground_truth": [r["tokens"] for r in rows], "generated": [g["tokens"] for g in gen],
                  "retrieval": [r["tokens"] for r in retrieved]}
        gt_emb = self.evaluator.embed_motion(motions["ground_truth"])
        table = {}
        for method, mot in motions.items():
            emb = self.evaluator.embed_motion(mot)
            rp = mm.r_precision(t_emb, emb, top_k=3, pool=32, seed=self.cfg.seed) if len(rows) >= 2 else [float("nan")] * 3
            pred = self.classifier.predict(mot)
            row = {"r_precision@1": rp[0], "r_precision@2": rp[1], "r_precision@3": rp[2],
                   "mm_distance": mm.matching_distance(t_emb, emb),
                   "diversity": mm.diversity(emb) if len(rows) >= 2 else float("nan"),
                   **{f"{a}_acc": float(np.mean([p[a] == r[a] for p, r in zip(pred, rows)])) for a in ATTRIBUTE_AXES}}
            if method == "ground_truth":
                half = len(rows) // 2  # noise floor: one half of the real motion against the other
                row["fid"] = mm.fid(gt_emb[:half], gt_emb[half:]) if half >= 2 else float("nan")
                row["l2"], row["token_acc"] = 0.0, 1.0
            else:
                row["fid"] = mm.fid(gt_emb, emb) if len(rows) >= 2 else float("nan")
                row["l2"] = mm.l2_error(mot, motions["ground_truth"])
                row["token_acc"] = mm.token_accuracy(tokens[method], tokens["ground_truth"])
            table[method] = row
        table["generated"]["multimodality"] = self._multimodality(rows)
        examples = {"rows": rows[:4], "generated": gen[:4]}
        return table, examples

    def _multimodality(self, rows: list[dict]) -> float:
        e = self.cfg.eval
        subset = rows[:e.multimodality_prompts]
        if not subset:
            return float("nan")
        runs = [self.generate(subset, self.cfg.seed + 1000 + k) for k in range(e.multimodality_repeats)]
        groups = [self.evaluator.embed_motion([self.features(run[i]["parameters"]["expression"],
                                                             run[i]["parameters"]["rotation"]) for run in runs])
                  for i in range(len(subset))]
        return mm.multimodality(groups, seed=self.cfg.seed)

    # ---- Motion2Language ---------------------------------------------------------------------
    def m2l(self, rows: list[dict]) -> tuple[dict, list[str]]:
        hyps = []
        for i in range(0, len(rows), 16):
            # Room for the attribute header (~15 tokens) and the longest captions (~60): a cut
            # caption would be scored as a disfluent one.
            hyps.extend(describe_codes(self.tr.model, self.tr.tokenizer, [r["tokens"] for r in rows[i:i + 16]],
                                       max_new_tokens=M2L_MAX_NEW_TOKENS))
        refs = [list(r["captions"]) for r in rows]
        emb = self.evaluator.embed_motion([self.features(r["expression"], r["rotation"]) for r in rows])
        nearest = np.argmin(((emb[:, None] - self.train_motion_emb[None]) ** 2).sum(-1), 1)
        retrieval = [self.train[j]["captions"][0] for j in nearest]
        table = {}
        for method, texts, references in (
            ("generated", hyps, refs),
            ("retrieval", retrieval, refs),
            # one reference against the others: how well a human-like caption scores (needs >= 2 refs)
            ("ground_truth", [r[0] for r in refs], [r[1:] or r for r in refs]),
        ):
            table[method] = {**caption_scores(references, texts),
                             **{f"{a}_acc": v for a, v in attribute_accuracy(rows, texts).items()}}
        return table, hyps

    def run(self) -> dict:
        out = {"evaluators": self.fit_evaluators(), "splits": {}}
        for split, rows in self.splits.items():
            if len(rows) < 2:
                out["splits"][split] = {"clips": len(rows), "note": "too few clips to evaluate"}
                continue
            log.info("eval %s: %d clips", split, len(rows))
            l2m, examples = self.l2m(rows)
            m2l, hyps = self.m2l(rows)
            out["splits"][split] = {"clips": len(rows), "l2m": l2m, "m2l": m2l,
                                    "m2l_outputs": [{"clip_id": r["clip_id"], "truth": {a: r[a] for a in ATTRIBUTE_AXES},
                                                     "text": h} for r, h in zip(rows, hyps)],
                                    "examples": examples}
        return out
