"""Motion-token embeddings that start from what each code means.

A fresh `<motion_k>` row knows nothing about code k, so with a few hundred clips the LM memorises
token ids instead of reading motion (audit of the tiny preset: 0.95 emotion on train clips, 0.15
on held-out ones). Each code of the VQ tokenizer decodes to a motion: its signature is the decoded
feature frame of a constant run of that code (normalised features: expression weights, then head
rotation). Rows are set to a fixed random projection of the signatures, scaled to the base rows'
norm, so codes that decode alike start alike, and — because a two-stream tokenizer's decoders read
only their own stream — a product code's row is the sum of an expression part and a head part:
the same smile under another head motion starts near its known neighbours. Each stream is weighted
equally (three rotation channels would otherwise be drowned by ~50 expression channels).
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from tdmm_ray.lm.vocab import motion_token_range
from tdmm_ray.tokenizer.motion_tokenizer import MotionTokenizer

RUN = 16  # frames of the constant run; the decoder's receptive field settles well inside it


def code_signatures(tokenizer: MotionTokenizer) -> np.ndarray:
    """[codebook_size, D] standardised decoded frame of every code, each stream scaled to unit share."""
    n = tokenizer.codebook_size
    codes = torch.arange(n, device=tokenizer.device)[:, None].expand(n, RUN)
    with torch.no_grad():
        frames = tokenizer.model.decode(codes)[:, RUN * tokenizer.downsample // 2].cpu().numpy()
    sig = (frames - frames.mean(0)) / (frames.std(0) + 1e-6)
    ne = tokenizer.n_expression
    sig[:, :ne] /= np.sqrt(ne)
    sig[:, ne:] /= np.sqrt(sig.shape[1] - ne)
    return sig.astype(np.float32)


def init_motion_embeddings(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, signatures: np.ndarray,
                           seed: int = 0) -> None:
    """Set the `<motion_k>` input rows (and untied output rows) from `signatures[k]`."""
    ids = motion_token_range(tokenizer)
    if signatures.shape[0] != len(ids):
        raise ValueError(f"{signatures.shape[0]} code signatures for {len(ids)} motion tokens: the LM's motion "
                         "vocabulary and the motion tokenizer's codebook differ")
    weight = model.get_input_embeddings().weight
    gen = torch.Generator().manual_seed(seed)
    proj = torch.randn(signatures.shape[1], weight.shape[1], generator=gen) / np.sqrt(signatures.shape[1])
    rows = torch.from_numpy(signatures) @ proj
    with torch.no_grad():
        target = weight[:ids.start].norm(dim=1).mean()
        rows = rows / rows.norm(dim=1, keepdim=True).mean() * target
        weight[ids.start:ids.stop] = rows.to(weight.dtype)
        out = model.get_output_embeddings()
        if out is not None and out.weight.data_ptr() != weight.data_ptr():
            out.weight[ids.start:ids.stop] = rows.to(out.weight.dtype)
