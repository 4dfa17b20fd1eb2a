"""A lean forward pass for decoding with the project's own small Qwen3/Llama models.

Hugging Face's forward costs about 2 ms of Python per step on a 2-layer, 96-wide model (masks,
cache objects, hooks), which is most of a Language2Motion request (100 steps for 4 s at 25 fps).
This runs the same arithmetic with the model's own weights (q/k/v and gate/up fused once), a
preallocated KV cache of static shape [layers, B, heads, max_len, head_dim] and one boolean mask,
so a step is a few dozen tensor ops. `supports(model)` says which configs it covers; anything else
keeps the Hugging Face path. Logits match the Hugging Face forward to float tolerance (tested).
Rotary angles come from one table per call (positions are known up front: prompt + max_new).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel


def supports(model: PreTrainedModel) -> bool:
    c = model.config
    rope = getattr(c, "rope_parameters", None) or {}
    return (c.model_type in ("qwen3", "llama") and getattr(c, "hidden_act", "") == "silu"
            and not getattr(c, "attention_bias", False) and not getattr(c, "mlp_bias", False)
            and rope.get("rope_type", "default") == "default" and "rope_theta" in rope
            and all(t == "full_attention" for t in (getattr(c, "layer_types", None) or ["full_attention"]))
            and not getattr(c, "sliding_window", None))


class StaticDecoder:
    """prefill(ids, mask) then step(tokens) repeatedly; both return last-position logits [B, V]."""

    def __init__(self, model: PreTrainedModel):
        assert supports(model), f"no lean decoder for {model.config.model_type}"
        c = model.config
        self.heads, self.kv_heads = c.num_attention_heads, c.num_key_value_heads
        self.head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        self.eps, self.qk_norm = c.rms_norm_eps, c.model_type == "qwen3"
        base = model.model
        self.embed = base.embed_tokens.weight
        self.norm = base.norm.weight
        self.head = model.get_output_embeddings().weight
        self.layers = []
        for layer in base.layers:
            a, m = layer.self_attn, layer.mlp
            self.layers.append({
                "in_norm": layer.input_layernorm.weight, "post_norm": layer.post_attention_layernorm.weight,
                "qkv": torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]).detach(),
                "o": a.o_proj.weight, "gate_up": torch.cat([m.gate_proj.weight, m.up_proj.weight]).detach(),
                "down": m.down_proj.weight,
                # q and k are normalised (Qwen3) and rotated together: one weight row per head
                "qk_norm": torch.cat([a.q_norm.weight.expand(self.heads, -1), a.k_norm.weight.expand(self.kv_heads, -1)])
                if self.qk_norm else None,
            })
        theta = c.rope_parameters["rope_theta"]
        self.inv_freq = 1.0 / (theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float) / self.head_dim))
        self.inv_freq = self.inv_freq.to(self.embed.device)

    def _rms(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), w, self.eps)

    @staticmethod
    def _rope(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
        # rotate_half(x) * sin == roll(x, half) * signed_sin (the first half's sine negated): same values, fewer ops
        return x * cos + x.roll(x.shape[-1] // 2, -1) * signed_sin

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor, attend: torch.Tensor, start: int) -> torch.Tensor:
        """ids/positions [B,T] written at cache slots start..start+T; attend [B,1,T,start+T] bool."""
        b, t = ids.shape
        cos, sin = self.cos[positions][:, None], self.sin[positions][:, None]  # [B,1,T,hd]
        x = F.embedding(ids, self.embed)
        q_size, kv_size = self.heads * self.head_dim, self.kv_heads * self.head_dim
        for i, p in enumerate(self.layers):
            h = self._rms(x, p["in_norm"])
            qk, v = F.linear(h, p["qkv"]).split([q_size + kv_size, kv_size], -1)
            qk = qk.view(b, t, self.heads + self.kv_heads, self.head_dim)
            if self.qk_norm:
                qk = F.rms_norm(qk, (self.head_dim,), None, self.eps) * p["qk_norm"]
            q, k = self._rope(qk.transpose(1, 2), cos, sin).split([self.heads, self.kv_heads], 1)
            self.k[i, :, :, start:start + t] = k
            self.v[i, :, :, start:start + t] = v.view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
            keys, values = self.k[i, :, :, :start + t], self.v[i, :, :, :start + t]
            out = F.scaled_dot_product_attention(q, keys, values, attn_mask=attend,
                                                 enable_gqa=self.kv_heads != self.heads)
            x = x + F.linear(out.transpose(1, 2).reshape(b, t, q_size), p["o"])
            gate, up = F.linear(self._rms(x, p["post_norm"]), p["gate_up"]).chunk(2, -1)
            x = x + F.linear(F.silu(gate) * up, p["down"])
        return F.linear(self._rms(x[:, -1], self.norm), self.head)

    def prefill(self, ids: torch.Tensor, mask: torch.Tensor, max_new: int) -> torch.Tensor:
        """Left-padded prompts ids/mask [B,T]; reserves room for max_new more tokens."""
        b, t = ids.shape
        device, dtype = self.embed.device, self.embed.dtype
        shape = (len(self.layers), b, self.kv_heads, t + max_new, self.head_dim)
        self.k, self.v = torch.zeros(shape, dtype=dtype, device=device), torch.zeros(shape, dtype=dtype, device=device)
        self.real = torch.zeros((b, t + max_new), dtype=torch.bool, device=device)
        self.real[:, :t] = mask.bool()
        self.length = t
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        causal = torch.ones((t, t), dtype=torch.bool, device=device).tril()
        # a padding position attends to itself only, so no row of the mask is empty (no NaN)
        attend = (causal[None] & self.real[:, None, :t]) | torch.eye(t, dtype=torch.bool, device=device)[None]
        self.next_position = mask.sum(-1, keepdim=True)
        freqs = torch.arange(t + max_new, device=device, dtype=torch.float)[:, None] * self.inv_freq
        emb = torch.cat((freqs, freqs), -1)  # the rotary table for every position this call can reach
        half = self.head_dim // 2
        sin = emb.sin()
        self.cos, self.sin = emb.cos().to(dtype), torch.cat((-sin[:, :half], sin[:, half:]), -1).to(dtype)
        return self._forward(ids, positions, attend[:, None], 0)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B] appended at the next slot -> logits [B, V]."""
        start = self.length
        self.real[:, start] = True
        self.length += 1
        logits = self._forward(tokens[:, None], self.next_position, self.real[:, None, None, :start + 1], start)
        self.next_position = self.next_position + 1
        return logits
