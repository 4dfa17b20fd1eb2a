"""Train the motion-language model in one process on a toy corpus, and measure what a lever changes.

The same pieces as `tdmm train-lm` (base model, instruction examples, validation split, checkpoint
selection), without Ray: seconds on a CPU, for tests and for measuring levers before a real run.

    python -m tdmm_ray.lm.toy            # held-out vs in-distribution attribute accuracy, per lever
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from tdmm_ray.config import LMConfig
from tdmm_ray.evaluation.text_metrics import ATTRIBUTE_AXES, attribute_accuracy
from tdmm_ray.lm.data import VAL, build_examples, collate, validation_split
from tdmm_ray.lm.decoding_rules import has_immediate_repeat
from tdmm_ray.lm.generate import describe_codes
from tdmm_ray.lm.model import prepare_base
from tdmm_ray.lm.runners import warmup_cosine
from tdmm_ray.lm.selection import VAL_KEY, is_new_best
from tdmm_ray.lm.train import tokenizer_texts

TOY_LM = LMConfig(hidden_size=64, layers=2, heads=4, vocab_size=400, max_length=192)


def _loss(model, packed, idx: Sequence[int], pad_id: int) -> torch.Tensor:
    return model(**collate([packed.example(i) for i in idx], pad_id)).loss


def train_in_process(rows: Sequence[Mapping], lm: LMConfig = TOY_LM, codebook_size: int = 64, steps: int = 300,
                     batch_size: int = 16, lr: float = 3e-3, eval_every: int = 25, header: bool = True,
                     val_fraction: float = 0.1, seed: int = 0) -> tuple[Any, Any, list[dict]]:
    """(model with the lowest validation loss, tokenizer, history) after `steps` AdamW steps."""
    rows = validation_split(rows, val_fraction, seed)
    model, tok = prepare_base(lm, codebook_size, tokenizer_texts(rows), seed)
    common = dict(max_length=lm.max_length, seed=seed, header=header)
    train = build_examples(rows, tok, "train", **common)
    val = build_examples(rows, tok, VAL, per_row=2, **common)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(min(20, steps // 10), steps))
    gen = torch.Generator().manual_seed(seed)
    history: list[dict] = []
    best_state = None
    model.train()
    for step in range(1, steps + 1):
        idx = torch.randint(len(train), (batch_size,), generator=gen).tolist()
        loss = _loss(model, train, idx, tok.pad_token_id)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        history.append({"step": step, "loss": loss.item()})
        if len(val) and (step % eval_every == 0 or step == steps):
            model.eval()
            with torch.no_grad():
                v = float(sum(_loss(model, val, [i], tok.pad_token_id) for i in range(len(val))) / len(val))
            model.train()
            if is_new_best(history, v):
                best_state = copy.deepcopy(model.state_dict())
            history.append({"step": step, VAL_KEY: v})
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval(), tok, history


def m2l_accuracy(model, tok, rows: Sequence[Mapping], rule: bool = True) -> tuple[dict[str, float], list[str]]:
    """Attribute accuracy of greedy Motion2Language output (read back by the prompt parser); with
    `rule`, decoded with the no-immediate-repeat rule, else exactly as generate.describe_codes."""
    texts: list[str] = []
    for i in range(0, len(rows), 32):
        codes = [r["tokens"] for r in rows[i:i + 32]]
        texts.extend(describe_codes(model, tok, codes, word_repeat_rule=rule))
    return attribute_accuracy(list(rows), texts), texts


def measure(levers: Mapping[str, dict], rows: Sequence[Mapping], steps: int, seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, kwargs in levers.items():
        start = time.process_time()
        model, tok, history = train_in_process(rows, steps=steps, seed=seed, **kwargs)
        result: dict[str, Any] = {"cpu_s_train": round(time.process_time() - start, 1)}
        for split in ("test", "heldout"):
            split_rows = [r for r in rows if r["split"] == split]
            acc, texts = m2l_accuracy(model, tok, split_rows)
            result[split] = {a: round(acc[a], 3) for a in ATTRIBUTE_AXES}
            result[f"{split}_example"] = texts[0]
            _, plain = m2l_accuracy(model, tok, split_rows, rule=False)
            result[f"{split}_repeats"] = {"with_rule": sum(map(has_immediate_repeat, texts)),
                                          "without_rule": sum(map(has_immediate_repeat, plain)), "of": len(texts)}
        result["best_val_loss"] = min(r[VAL_KEY] for r in history if VAL_KEY in r)
        out[name] = result
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from tdmm_ray.lm.synthetic import compositional_corpus

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seeds", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    levers = {"caption only": {"header": False}, "attribute header + caption": {"header": True}}
    runs = [measure(levers, compositional_corpus(seed=s), args.steps, s) for s in range(args.seeds)]
    print(json.dumps(runs, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
