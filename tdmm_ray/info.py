"""`tdmm info`: versions, Ray cluster, storage and face models, so a user sees what they run on."""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import platform

import torch

from tdmm_ray import __version__
from tdmm_ray.cli_args import add_config_args, config_from_args
from tdmm_ray.face.registry import available_models
from tdmm_ray.storage import StorageError, preflight

PACKAGES = ("torch", "ray", "deepspeed", "transformers", "tokenizers", "diffusers", "pyarrow", "s3fs", "av",
            "opencv-python-headless", "dlib-bin", "face-alignment", "fastapi")


def _version(name: str) -> str:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return "not installed"


def collect(storage_url: str | None, probe_storage: bool = True) -> dict:
    info: dict = {"tdmm-ray": __version__, "python": platform.python_version(),
                  "packages": {p: _version(p) for p in PACKAGES}}
    try:
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available"
    except RuntimeError as err:  # a broken driver: say so rather than crash `info`
        info["cuda"] = f"unknown ({err})"
    address = os.environ.get("RAY_ADDRESS")
    info["ray_cluster"] = address or "none configured: commands start a local instance on 127.0.0.1"
    if storage_url:
        status = "not checked"
        if probe_storage:
            try:
                preflight(storage_url, create=False)
                status = "reachable"
            except StorageError as err:
                status = f"NOT usable: {err}"
        info["storage"] = {"url": storage_url, "status": status}
    info["face_models"] = available_models()
    return info


def _print(info: dict, indent: int = 0) -> None:
    for key, value in info.items():
        if isinstance(value, dict):
            print(" " * indent + f"{key}:")
            _print(value, indent + 2)
        else:
            print(" " * indent + f"{key}: {value}")


def _cmd_info(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    _print(collect(cfg.storage))
    return 0


def register(sub) -> None:
    p = sub.add_parser("info", help="versions, Ray cluster, storage and face models found")
    add_config_args(p)
    p.set_defaults(func=_cmd_info)
