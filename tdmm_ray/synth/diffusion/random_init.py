"""Randomly initialised text-to-video pipelines built from config, for tests and benchmarks.

No weights can be downloaded on a machine without the model hub, yet the generator's real loading
path (`DiffusionPipeline.from_pretrained` on a directory) must be exercised. These builders make a
complete diffusers pipeline per family — text encoder(s), a word-level tokenizer trained here,
transformer, VAE, scheduler — and `save_pretrained` it, so the generator loads it exactly as it
would load a downloaded model. "tiny" runs a clip in seconds on a CPU; "full" keeps the published
transformer size (random weights: generation cost does not depend on weight values), for timing
on a GPU. The videos are noise either way.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch

SCALES = ("tiny", "full")


def word_tokenizer(words: list[str] | None = None, max_length: int = 64):
    """A word-level fast tokenizer (pad/eos/unk/bos), trained on `words` or a small default vocabulary."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    text = words or ("a man woman person looks happy sad angry surprised nodding shaking head close up video "
                     "camera static face smiling blinking frowning slowly quickly portrait").split()
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator([" ".join(text)], trainers.WordLevelTrainer(
        special_tokens=["<pad>", "</s>", "<unk>", "<s>"]))
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   bos_token="<s>", model_max_length=max_length)


def _t5_encoder(vocab: int, d_model: int, layers: int, umt5: bool = False):
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    kwargs = dict(vocab_size=vocab, d_model=d_model, d_kv=d_model // 4, d_ff=d_model * 2, num_layers=layers,
                  num_heads=4, relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1,
                  decoder_start_token_id=0)
    return UMT5EncoderModel(UMT5Config(**kwargs)) if umt5 else T5EncoderModel(T5Config(**kwargs))


def build_wan(scale: str, tokenizer):
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel

    text_dim = 32 if scale == "tiny" else 4096
    # full = Wan2.1-T2V-1.3B's transformer (30 layers, 12 heads x 128, ffn 8960).
    dims = dict(num_attention_heads=2, attention_head_dim=12, ffn_dim=32, num_layers=2, freq_dim=32,
                rope_max_seq_len=32) if scale == "tiny" else \
        dict(num_attention_heads=12, attention_head_dim=128, ffn_dim=8960, num_layers=30, freq_dim=256)
    transformer = WanTransformer3DModel(patch_size=(1, 2, 2), in_channels=16, out_channels=16, text_dim=text_dim,
                                        **dims)
    vae = AutoencoderKLWan(base_dim=8 if scale == "tiny" else 96, z_dim=16, num_res_blocks=1 if scale == "tiny" else 2,
                           dim_mult=[1, 1, 1, 1] if scale == "tiny" else [1, 2, 4, 4],
                           temperal_downsample=[False, True, True])
    # The text encoders are 2-layer stand-ins at the real width: their cost is small beside the transformer's.
    encoder = _t5_encoder(len(tokenizer), text_dim, 2, umt5=True)
    return WanPipeline(tokenizer=tokenizer, text_encoder=encoder, vae=vae, transformer=transformer,
                       scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0))


def build_cogvideox(scale: str, tokenizer):
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXPipeline, CogVideoXTransformer3DModel

    text_dim = 32 if scale == "tiny" else 4096
    # full = CogVideoX-2b's transformer (30 layers, 30 heads x 64).
    dims = dict(num_attention_heads=2, attention_head_dim=8, num_layers=1, time_embed_dim=8, max_text_seq_length=16,
                sample_width=8, sample_height=8, sample_frames=9) if scale == "tiny" else \
        dict(num_attention_heads=30, attention_head_dim=64, num_layers=30, time_embed_dim=512)
    latent = 4 if scale == "tiny" else 16
    transformer = CogVideoXTransformer3DModel(in_channels=latent, out_channels=latent, text_embed_dim=text_dim,
                                              patch_size=2, temporal_compression_ratio=4, **dims)
    vae = AutoencoderKLCogVideoX(latent_channels=latent, temporal_compression_ratio=4,
                                 **(dict(block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=2)
                                    if scale == "tiny" else {}))
    return CogVideoXPipeline(tokenizer=tokenizer, text_encoder=_t5_encoder(len(tokenizer), text_dim, 2), vae=vae,
                             transformer=transformer, scheduler=CogVideoXDDIMScheduler())


def build_ltx(scale: str, tokenizer):
    from diffusers import (AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXPipeline,
                           LTXVideoTransformer3DModel)

    text_dim = 32 if scale == "tiny" else 4096
    latent = 8 if scale == "tiny" else 128
    # full = LTX-Video 2B (28 layers, 32 heads x 64) and its 32x32x8 VAE.
    dims = dict(num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16, num_layers=1) \
        if scale == "tiny" else {}
    transformer = LTXVideoTransformer3DModel(in_channels=latent, out_channels=latent, caption_channels=text_dim, **dims)
    vae = AutoencoderKLLTXVideo(
        latent_channels=latent, block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, False, False), decoder_spatio_temporal_scaling=(True, True, False, False),
        decoder_inject_noise=(False,) * 5, upsample_residual=(False,) * 4, upsample_factor=(1,) * 4,
        patch_size=1, patch_size_t=1) if scale == "tiny" else AutoencoderKLLTXVideo()
    return LTXPipeline(tokenizer=tokenizer, text_encoder=_t5_encoder(len(tokenizer), text_dim, 2), vae=vae,
                       transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler())


def build_hunyuan(scale: str, tokenizer):
    from diffusers import (AutoencoderKLHunyuanVideo, FlowMatchEulerDiscreteScheduler, HunyuanVideoPipeline,
                           HunyuanVideoTransformer3DModel)
    from transformers import CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel

    text_dim, pooled = (16, 8) if scale == "tiny" else (4096, 768)
    # full = HunyuanVideo's 13B transformer (20 dual + 40 single blocks, 24 heads x 128).
    dims = dict(num_attention_heads=2, attention_head_dim=10, num_layers=1, num_single_layers=1,
                num_refiner_layers=1, rope_axes_dim=(2, 4, 4)) if scale == "tiny" else {}
    latent, patch = (4, 1) if scale == "tiny" else (16, 2)
    transformer = HunyuanVideoTransformer3DModel(in_channels=latent, out_channels=latent, patch_size=patch,
                                                 text_embed_dim=text_dim, pooled_projection_dim=pooled, **dims)
    vae = AutoencoderKLHunyuanVideo(latent_channels=4, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
                                    norm_num_groups=4) if scale == "tiny" else AutoencoderKLHunyuanVideo()
    llama = LlamaModel(LlamaConfig(vocab_size=len(tokenizer), hidden_size=text_dim, intermediate_size=2 * text_dim,
                                   num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                                   pad_token_id=0, bos_token_id=3, eos_token_id=1))
    clip = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=pooled, intermediate_size=2 * pooled,
                                        num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77,
                                        pad_token_id=0, bos_token_id=3, eos_token_id=1))
    return HunyuanVideoPipeline(text_encoder=llama, tokenizer=tokenizer, transformer=transformer, vae=vae,
                                scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0), text_encoder_2=clip,
                                tokenizer_2=word_tokenizer(max_length=77))


BUILDERS = {"wan": build_wan, "cogvideox": build_cogvideox, "ltx": build_ltx, "hunyuan": build_hunyuan}


@contextmanager
def _default_dtype(dtype: torch.dtype):
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def build_random_pipeline(family: str, scale: str = "tiny", seed: int = 0, device: str = "cpu",
                          dtype: torch.dtype = torch.float32):
    """A randomly initialised diffusers pipeline of `family` at `scale` (see the module docstring),
    created directly on `device` in `dtype` (a full-size model never exists in float32 on the host)."""
    if family not in BUILDERS:
        raise ValueError(f"unknown diffusion family {family!r}; known: {', '.join(BUILDERS)}")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    torch.manual_seed(seed)
    with torch.device(device), _default_dtype(dtype):
        return BUILDERS[family](scale, word_tokenizer())


def save_random_pipeline(family: str, folder: str | Path, scale: str = "tiny", seed: int = 0) -> Path:
    """Build and `save_pretrained` a random pipeline; returns the folder (a diffusers model directory)."""
    folder = Path(folder)
    build_random_pipeline(family, scale, seed).save_pretrained(folder)
    return folder
