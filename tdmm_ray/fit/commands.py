"""`tdmm fit-video`: fit the face model to one video and save its parameters (and pictures)."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    p = subparsers.add_parser("fit-video", help="detect landmarks in a video and fit the 3D face model to them")
    p.add_argument("video", metavar="PATH_OR_URL", help="an .mp4 (local path or s3:// URL)")
    p.add_argument("--out", "-o", dest="params_out", required=True, metavar="PARAMS.npz",
                   help="where to write the fitted parameters (.npz, path or s3:// URL)")
    p.add_argument("--detector", default="dlib", choices=("dlib", "fan", "mediapipe"),
                   help="landmark detector (default: dlib)")
    p.add_argument("--face-model", default=None, choices=("builtin", "ict", "flame"),
                   help="face model (default: the config's face.model)")
    p.add_argument("--face-path", default=None, help="model file/folder for ict or flame")
    p.add_argument("--overlay", default=None, metavar="OVERLAY.mp4|.png",
                   help="also write the fit drawn over the frames: an MP4, or a contact sheet if it ends in .png")
    p.add_argument("--max-frames", type=int, default=None, help="fit only the first N frames")
    p.add_argument("--device", default=None, help="torch device for the fit (default: cuda when present)")
    # The usual config flags, except --out, which here names the parameters file.
    p.add_argument("--preset", default=None, help="tiny | small | paper (default: none, built-in defaults)")
    p.add_argument("--config", help="YAML file merged over the preset")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override any field, e.g. --set fit.iterations=15 (repeatable)")
    p.set_defaults(func=_cmd_fit_video)


def _cmd_fit_video(args: argparse.Namespace) -> int:
    import torch

    from tdmm_ray.cli import config_from_args
    from tdmm_ray.fit import video_fit

    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f"--max-frames must be >= 1, got {args.max_frames}")
    cfg = config_from_args(args)
    name = args.face_model or cfg.face.model
    model = video_fit.load_model(name, args.face_path or cfg.face.path)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    result = video_fit.fit_video(args.video, model, detector=args.detector, max_frames=args.max_frames,
                                 config=cfg.fit, device=device)
    video_fit.save_params(args.params_out, result, model)
    fit = result.fit
    print(f"{args.video}: {len(result.frames)} frames, face in {int(fit.frame_valid[0].sum())}, "
          f"mean NME {float(fit.nme[0][fit.frame_valid[0]].mean()) if fit.frame_valid[0].any() else float('nan'):.4f}, "
          f"QC {fit.qc_reason[0]} -> {args.params_out}")
    if args.overlay:
        drawn = video_fit.draw_overlay(result.frames, model, fit, result.landmarks)
        if args.overlay.lower().endswith(".png"):
            video_fit.write_png(args.overlay, video_fit.contact_sheet(drawn))
        else:
            from tdmm_ray.render.video import write_video

            write_video(drawn, args.overlay, result.fps)
        print(f"overlay -> {args.overlay}")
    return 0
