"""Both directions over real HTTP against a real local Serve instance on 127.0.0.1 (tiny trained run)."""

from __future__ import annotations

import base64
import concurrent.futures as cf
import io
import socket
import time

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.slow  # a trained tiny run (tiny_run) served by Ray Serve


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def service(tiny_run):
    from ray import serve

    from tdmm_ray.serve.commands import start

    port = _port()
    start(tiny_run.storage, port=port, overrides={
        "min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 1, "upscale_delay_s": 1.0,
        "downscale_delay_s": 4.0, "max_batch_size": 4, "replica_cpus": 0.1, "max_frames": 400})
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(1)
    yield base
    serve.shutdown()


def _l2m(base, prompt="a person smiles slowly while nodding", **extra):
    return httpx.post(f"{base}/v1/text-to-motion", json={"prompt": prompt, "duration_s": 1.0, **extra}, timeout=120)


def test_round_trip_both_directions(service):
    info = httpx.get(f"{service}/v1/info", timeout=30).json()
    assert info["api"] == "v1" and info["expression_names"] and "openapi" in httpx.get(f"{service}/openapi.json").text
    r = _l2m(service, formats=["params", "arkit_csv", "npz", "mp4"], fps=25)
    assert r.status_code == 200, r.text
    body = r.json()
    expr = np.asarray(body["parameters"]["expression"])
    assert expr.shape == (25, len(info["expression_names"])) and body["n_frames"] == 25
    assert body["arkit_csv"].splitlines()[0].startswith("Timecode,BlendShapeCount,EyeBlinkLeft")
    assert len(body["arkit_csv"].splitlines()) == 26
    with np.load(io.BytesIO(base64.b64decode(body["npz_base64"]))) as z:
        assert z["expression"].shape == expr.shape
    assert base64.b64decode(body["mp4_base64"])[4:8] == b"ftyp"
    # Motion2Language on what Language2Motion produced: JSON, then the same motion as an .npz upload and as CSV
    m = httpx.post(f"{service}/v1/motion-to-text", json={"parameters": body["parameters"], "fps": 25}, timeout=120)
    assert m.status_code == 200, m.text
    assert isinstance(m.json()["description"], str) and "emotion" in m.json()["attributes"]
    up = httpx.post(f"{service}/v1/motion-to-text", files={"file": ("m.npz", base64.b64decode(body["npz_base64"]))},
                    data={"fps": "25"}, timeout=120)
    assert up.status_code == 200, up.text
    csv = httpx.post(f"{service}/v1/motion-to-text", files={"file": ("m.csv", body["arkit_csv"].encode())}, timeout=120)
    assert csv.status_code == 200, csv.text


def test_bad_requests_get_4xx_and_service_stays_healthy(service):
    bad = [
        ("empty prompt", lambda: _l2m(service, prompt="   ")),
        ("absurd duration", lambda: httpx.post(f"{service}/v1/text-to-motion", json={"prompt": "smile", "duration_s": 1e6})),
        ("too many frames", lambda: httpx.post(f"{service}/v1/text-to-motion", json={"prompt": "smile", "duration_s": 30, "fps": 25})),
        ("prompt too long", lambda: _l2m(service, prompt="smile " * 200)),
        ("unknown field", lambda: _l2m(service, colour="red")),
        ("malformed JSON", lambda: httpx.post(f"{service}/v1/motion-to-text", content=b"{not json", headers={"content-type": "application/json"})),
        ("NaN motion", lambda: httpx.post(f"{service}/v1/motion-to-text", content=b'{"parameters": {"expression": [[NaN, 0.1]]}}', headers={"content-type": "application/json"})),
        ("wrong channels", lambda: httpx.post(f"{service}/v1/motion-to-text", json={"parameters": {"expression": [[0.1, 0.2]] * 10}})),
        ("ragged rows", lambda: httpx.post(f"{service}/v1/motion-to-text", json={"parameters": {"expression": [[0.1], [0.1, 0.2]]}})),
        ("bad upload", lambda: httpx.post(f"{service}/v1/motion-to-text", files={"file": ("m.npz", b"garbage")})),
        ("oversized body", lambda: httpx.post(f"{service}/v1/motion-to-text", content=b"x" * (9 * 1024 * 1024), headers={"content-type": "application/json"})),
    ]
    for name, call in bad:
        r = call()
        assert 400 <= r.status_code < 500, f"{name}: {r.status_code} {r.text[:200]}"
        assert r.json().get("detail"), name
    assert httpx.get(f"{service}/healthz").status_code == 200
    assert _l2m(service).status_code == 200


def _replicas(name: str) -> int:
    from ray import serve

    status = serve.status().applications["tdmm"].deployments[name]
    return sum(n for state, n in status.replica_states.items() if str(state).endswith("RUNNING"))


def test_autoscaling_up_under_load_and_back_down(service):
    stop = time.time() + 45
    peak = 1
    with cf.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(lambda: [_l2m(service) for _ in range(200) if time.time() < stop]) for _ in range(8)]
        while time.time() < stop and peak < 2:
            peak = max(peak, _replicas("Language2Motion"))
            time.sleep(0.5)
        stop = time.time()  # release the clients
        for f in futures:
            f.result()
    assert peak == 2, "Language2Motion did not scale to 2 replicas under load"
    deadline = time.time() + 90
    while time.time() < deadline and _replicas("Language2Motion") > 1:
        time.sleep(1)
    assert _replicas("Language2Motion") == 1, "did not scale back down to 1 replica"


def test_replica_killed_during_burst_loses_only_in_flight(service):
    import ray

    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if "Language2Motion" in a["name"] and a["name"].startswith("SERVE_REPLICA")]
    assert names
    victim = ray.get_actor(names[0], namespace="serve")
    n = 24
    with cf.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(lambda: _l2m(service).status_code) for _ in range(n)]
        time.sleep(1.0)
        ray.kill(victim, no_restart=False)
        codes = [f.result() for f in futures]
    failed = sum(c != 200 for c in codes)
    # in flight at the kill: at most one replica's max_ongoing_requests (2 * max_batch_size = 8)
    assert failed <= 8, codes
    deadline = time.time() + 90
    while time.time() < deadline:
        if _l2m(service).status_code == 200:
            break
        time.sleep(1)
    assert _l2m(service).status_code == 200
