"""What differs between text-to-video families: pipeline class, frame-count and size rules, and how
the video part of a prompt (camera, framing, look) is worded for each.

The facial part of a prompt — the person, the emotion and its intensity, head motion, actions,
dynamics — is the prompt suite's text with its shot prefix and scene suffix taken off, so every
generator animates the same description; only the video part is worded per generator, in the style
each family's authors recommend (Wan and HunyuanVideo: short comma-separated descriptors; CogVideoX
and LTX-Video: full sentences about the shot, LTX ending on the footage style).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from tdmm_ray.prompts import wording

_NEGATIVE = ("blurry, out of focus, distorted face, deformed eyes, extra faces, text, watermark, subtitles, "
             "cartoon, painting, low quality, jittery, flickering, frozen frame")


@dataclass(frozen=True)
class Family:
    name: str
    pipeline_classes: tuple[str, ...]  # accepted `_class_name` values of model_index.json
    frame_step: int  # num_frames must be frame_step * n + 1 (the VAE's temporal compression; CogVideoX
    # also needs an odd latent count, which its VAE decodes in pairs after the first frame)
    size_multiple: int  # width and height must be multiples (VAE stride x patch size)
    framings: tuple[str, ...]  # video-part wordings; "{face}" is the facial part
    negative_prompt: str | None  # None: the family has no negative prompt at its default guidance

    def frames_for(self, seconds: float, fps: int, max_frames: int) -> int:
        """Native frames covering `seconds` at `fps`: the smallest valid count, capped at `max_frames`."""
        needed = max(1, round(seconds * fps) + 1)
        frames = self.frame_step * math.ceil((needed - 1) / self.frame_step) + 1
        cap = self.frame_step * ((max_frames - 1) // self.frame_step) + 1
        return min(frames, cap)


FAMILIES: dict[str, Family] = {
    "wan": Family(
        "wan", ("WanPipeline",), 4, 16,
        ("{face} Close-up portrait, face centred and filling the frame, static camera at eye level, soft natural "
         "light, realistic, detailed skin.",
         "{face} Head-and-shoulders shot, fixed camera, plain background, even studio lighting, photorealistic."),
        _NEGATIVE),
    "cogvideox": Family(
        "cogvideox", ("CogVideoXPipeline",), 8, 16,
        ("A static close-up shot at eye level. {face} The head and shoulders fill the frame against a plain, softly "
         "lit background, and the image is sharp and realistic.",
         "The camera holds still on a head-and-shoulders portrait. {face} Soft light falls evenly on the face; the "
         "footage is crisp, natural and realistic."),
        _NEGATIVE),
    "ltx": Family(
        "ltx", ("LTXPipeline",), 8, 32,
        ("{face} The camera stays still at eye level in a medium close-up, with the face centred in the frame. The "
         "lighting is soft and even against a plain background. The scene appears to be real-life footage.",
         "{face} A fixed camera frames the head and shoulders from the front. Soft daylight falls on the face. The "
         "scene is captured in real-life footage."),
        "worst quality, inconsistent motion, blurry, jittery, distorted, " + _NEGATIVE),
    "hunyuan": Family(
        "hunyuan", ("HunyuanVideoPipeline",), 4, 16,
        ("{face} Close-up, eye-level, static camera, face centred, shallow depth of field, natural light, "
         "photorealistic.",
         "{face} Front-facing portrait, head and shoulders, fixed camera, soft studio light, realistic."),
        None),  # HunyuanVideo uses embedded guidance: a negative prompt would need true CFG (twice the cost)
}


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise ValueError(f"unknown diffusion generator {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def facial_part(text: str) -> str:
    """The prompt suite's text without its shot prefix and scene suffix (tdmm_ray.prompts.wording)."""
    text = text.strip()
    for suffix in sorted((s for s in wording.SCENE_SUFFIXES if s), key=len, reverse=True):
        if text.endswith(suffix):
            text = text[: -len(suffix)].rstrip()
            break
    for prefix in wording.SHOT_PREFIXES:
        if text.startswith(prefix + " "):
            text = text[len(prefix) + 1:]
            break
    return text[:1].upper() + text[1:]


def video_prompt(family_name: str, text: str, seed: int) -> str:
    """The generator's prompt for a suite text: the facial part inside one of the family's framings."""
    fam = family(family_name)
    framing = random.Random(seed).choice(fam.framings)
    return framing.format(face=facial_part(text))
