"""`tdmm synth` (procedural clips for a prompt suite, locally), `tdmm preview` (one prompt -> one clip)
and `tdmm contact-sheet` (a PNG of sample frames). Heavy imports stay inside the handlers.

`tdmm synth` is the sequential, Ray-free way to look at what the generator makes; the data engine
(`tdmm generate`) runs the same `synthesize_row` inside Ray Data actors.
"""

from __future__ import annotations

import argparse
import logging
import os
import posixpath

from tdmm_ray.cli import add_config_args, config_from_args

log = logging.getLogger(__name__)

LOCAL_TABLE = "synthesize/local-synth.parquet"  # not a manifest shard: `tdmm generate` never reads it


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="render procedural clips for the prompt suite, locally and sequentially")
    add_config_args(p)
    p.add_argument("--limit", type=int, default=None, help="render only the first N clips")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("preview", help="render one procedural clip for a prompt (MP4 + params .npz)")
    p.add_argument("prompt", help='e.g. "a very happy person nodding"')
    p.add_argument("--out", default="preview.mp4", help="MP4 path or s3:// URL (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--size", type=int, default=256, help="width and height in pixels")
    p.add_argument("--face-model", default="ict", choices=("builtin", "ict", "flame"))
    p.add_argument("--face-path", default=None, help="model file/folder for ict or flame")
    p.set_defaults(func=_cmd_preview)

    p = sub.add_parser("contact-sheet", help="PNG of sample frames: rows = prompts, columns = time "
                                             "(--prototypes: rows = emotions, columns = intensity levels)")
    p.add_argument("--out", default="docs/contact_sheet_ict.png")
    p.add_argument("--prototypes", action="store_true", help="the emotion prototypes at every intensity level")
    p.add_argument("--face-model", default="ict", choices=("builtin", "ict", "flame"))
    p.add_argument("--face-path", default=None)
    p.add_argument("--size", type=int, default=112, help="tile size in pixels")
    p.add_argument("--columns", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_contact_sheet)


# ---- tdmm synth ---------------------------------------------------------------------------------------
def load_prompt_rows(cfg, storage) -> list[dict]:
    """The run's prompt suite: prompts/prompts.parquet when the run has one, else a fresh suite."""
    if storage.exists("prompts/prompts.parquet"):
        return storage.read_table("prompts/prompts.parquet").to_pylist()
    try:
        from tdmm_ray.prompts.suite import build_suite
    except ImportError as err:
        raise ValueError(
            f"{storage.url('prompts/prompts.parquet')} does not exist and the prompt suite builder is unavailable "
            f"({err}); run `tdmm prompts` first"
        ) from None
    rows = build_suite(cfg)
    return rows.to_pylist() if hasattr(rows, "to_pylist") else list(rows)


def _cmd_synth(args: argparse.Namespace) -> int:
    import pyarrow as pa
    from tqdm import tqdm

    from tdmm_ray.data_engine.shards import clip_seed
    from tdmm_ray.schema import CLIP_COLUMNS
    from tdmm_ray.storage import Storage, preflight
    from tdmm_ray.synth.procedural import synthesize_row

    cfg = config_from_args(args)
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")
    preflight(cfg.storage)
    storage = Storage(cfg.storage)
    prompts = [r for r in load_prompt_rows(cfg, storage) if r.get("generator", "procedural") == "procedural"]
    jobs = [(row, f"{row['prompt_id']}-{k}") for row in sorted(prompts, key=lambda r: r["prompt_id"])
            for k in range(cfg.synth.clips_per_prompt)][: args.limit]
    rows = []
    for prompt, clip_id in tqdm(jobs, desc="procedural clips", unit="clip"):
        rows.append(synthesize_row({**prompt, "clip_id": clip_id}, cfg, storage, clip_seed(cfg.seed, clip_id)))
    storage.write_table(LOCAL_TABLE, pa.table({c: [r[c] for r in rows] for c in CLIP_COLUMNS}))
    failed = [r for r in rows if r["status"] != "ok"]
    print(f"{len(rows) - len(failed)} clips ok, {len(failed)} failed -> {storage.url('clips')}; "
          f"table {storage.url(LOCAL_TABLE)}")
    for r in failed[:5]:
        print(f"  {r['clip_id']}: {r['error']}")
    return 1 if failed else 0


# ---- tdmm preview -------------------------------------------------------------------------------------
def prompt_attributes(text: str) -> dict:
    """Attributes of free text through the prompt parser; neutral (with a warning) without one."""
    try:
        from tdmm_ray.prompts.parser import parse_attributes
    except ImportError:
        log.warning("prompt parser (tdmm_ray.prompts.parser) not available: rendering a neutral face")
        return {}
    parsed = parse_attributes(text)
    if hasattr(parsed, "model_dump"):
        parsed = parsed.model_dump()
    elif not isinstance(parsed, dict):
        from dataclasses import asdict

        parsed = asdict(parsed)
    return {k: v for k, v in parsed.items() if v is not None}


def _split_url(url: str) -> tuple[str, str]:
    if url.startswith("s3://"):
        root, name = posixpath.split(url)
        return root, name
    path = os.path.abspath(url)
    return os.path.dirname(path), os.path.basename(path)


def _cmd_preview(args: argparse.Namespace) -> int:
    import io

    import numpy as np

    from tdmm_ray.face.registry import load_face_model
    from tdmm_ray.storage import Storage
    from tdmm_ray.synth.procedural import ProceduralGenerator, write_clip_video

    if args.seconds <= 0 or args.size < 16 or args.fps < 1:
        raise ValueError("--seconds must be > 0, --size >= 16 and --fps >= 1")
    if not args.out.endswith(".mp4"):
        raise ValueError(f"--out must name an .mp4 file, got {args.out!r}")
    attrs = prompt_attributes(args.prompt)
    model = load_face_model(args.face_model, path=args.face_path)
    gen = ProceduralGenerator(model, args.size, args.size, args.fps)
    clip = gen.generate(attrs, args.seed, max(1, round(args.seconds * args.fps)))
    root, name = _split_url(args.out)
    storage = Storage(root)
    url = write_clip_video(storage, name, clip.frames, clip.fps)
    buf = io.BytesIO()
    np.savez_compressed(buf, **clip.params(), expression_names=np.array(model.expression_names),
                        prompt=np.array(args.prompt))
    npz = storage.write_bytes(name[: -len(".mp4")] + ".npz", buf.getvalue())
    print(f"attributes: {clip.script.attributes}")
    print(f"wrote {url} ({clip.n_frames} frames at {clip.fps} fps) and {npz}")
    return 0


def _cmd_contact_sheet(args: argparse.Namespace) -> int:
    from tdmm_ray.synth.contact_sheet import write_contact_sheet, write_prototype_sheet

    if args.prototypes:
        path = write_prototype_sheet(args.out, args.face_model, args.face_path, tile=args.size)
    else:
        path = write_contact_sheet(args.out, args.face_model, args.face_path, tile=args.size, columns=args.columns,
                                   seed=args.seed)
    print(f"wrote {path} ({os.path.getsize(path) // 1024} KB)")
    return 0
