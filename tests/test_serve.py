"""Both directions over real HTTP against a real local Serve instance on 127.0.0.1 (tiny trained run),
with an API key configured; hostile requests (issue 16) and a schema-driven fuzzer against the same
live service. Set TDMM_TEST_SERVE_RUN to an already trained run folder to skip building one."""

from __future__ import annotations

import base64
import concurrent.futures as cf
import io
import os
import socket
import time

import httpx
import numpy as np
import pytest

from tdmm_ray.export.arkit_csv import HEADER

pytestmark = pytest.mark.slow  # a trained tiny run (tiny_run) served by Ray Serve


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


KEY = "test-key-0123456789"
MAX_RESPONSE_BYTES = 2_000_000  # the largest answer this service's limits allow (400 frames, every format)


@pytest.fixture(scope="module")
def run_url(request) -> str:
    return os.environ.get("TDMM_TEST_SERVE_RUN") or request.getfixturevalue("tiny_run").storage


@pytest.fixture(scope="module")
def service(run_url, ray_local):
    from ray import serve

    from tdmm_ray.serve.commands import start

    port = _port()
    start(run_url, port=port, overrides={
        "min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 1, "upscale_delay_s": 1.0,
        "downscale_delay_s": 4.0, "max_batch_size": 4, "replica_cpus": 0.1, "max_frames": 400, "api_key": KEY})
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(1)
    with httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=120) as client:
        yield client
    serve.shutdown()


def _l2m(client, prompt="a person smiles slowly while nodding", **extra):
    return client.post("/v1/text-to-motion", json={"prompt": prompt, "duration_s": 1.0, **extra})


def test_round_trip_both_directions(service):
    info = service.get("/v1/info").json()
    assert info["api"] == "v1" and info["expression_names"] and "openapi" in service.get("/openapi.json").text
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
    m = service.post("/v1/motion-to-text", json={"parameters": body["parameters"], "fps": 25})
    assert m.status_code == 200, m.text
    assert isinstance(m.json()["description"], str) and "emotion" in m.json()["attributes"]
    up = service.post("/v1/motion-to-text", files={"file": ("m.npz", base64.b64decode(body["npz_base64"]))},
                      data={"fps": "25"})
    assert up.status_code == 200, up.text
    csv = service.post("/v1/motion-to-text", files={"file": ("m.csv", body["arkit_csv"].encode())})
    assert csv.status_code == 200, csv.text


def test_bad_requests_get_4xx_and_service_stays_healthy(service):
    bad = [
        ("empty prompt", lambda: _l2m(service, prompt="   ")),
        ("absurd duration", lambda: service.post("/v1/text-to-motion", json={"prompt": "smile", "duration_s": 1e6})),
        ("too many frames", lambda: service.post("/v1/text-to-motion", json={"prompt": "smile", "duration_s": 30, "fps": 25})),
        ("prompt too long", lambda: _l2m(service, prompt="smile " * 200)),
        ("unknown field", lambda: _l2m(service, colour="red")),
        ("malformed JSON", lambda: service.post("/v1/motion-to-text", content=b"{not json", headers={"content-type": "application/json"})),
        ("NaN motion", lambda: service.post("/v1/motion-to-text", content=b'{"parameters": {"expression": [[NaN, 0.1]]}}', headers={"content-type": "application/json"})),
        ("wrong channels", lambda: service.post("/v1/motion-to-text", json={"parameters": {"expression": [[0.1, 0.2]] * 10}})),
        ("ragged rows", lambda: service.post("/v1/motion-to-text", json={"parameters": {"expression": [[0.1], [0.1, 0.2]]}})),
        ("bad upload", lambda: service.post("/v1/motion-to-text", files={"file": ("m.npz", b"garbage")})),
        ("oversized body", lambda: service.post("/v1/motion-to-text", content=b"x" * (9 * 1024 * 1024), headers={"content-type": "application/json"})),
    ]
    for name, call in bad:
        r = call()
        assert 400 <= r.status_code < 500, f"{name}: {r.status_code} {r.text[:200]}"
        assert r.json().get("detail"), name
    assert service.get("/healthz").status_code == 200
    assert _l2m(service).status_code == 200


def _m2l_json(client, raw: bytes):
    return client.post("/v1/motion-to-text", content=raw, headers={"content-type": "application/json"})


def _upload(client, name: str, data: bytes, **form):
    return client.post("/v1/motion-to-text", files={"file": (name, data)}, data=form)


def _expect_4xx(r, *words):
    assert 400 <= r.status_code < 500, f"{r.status_code} {r.text[:300]}"
    detail = str(r.json()["detail"])
    assert all(w in detail for w in words), detail[:300]
    return detail


def test_non_finite_and_unbounded_numbers_are_4xx(service):
    n_exp = len(service.get("/v1/info").json()["expression_names"])
    for raw in (b'{"prompt": "smile", "temperature": NaN}', b'{"prompt": "smile", "duration_s": Infinity}',
                b'{"prompt": "smile", "top_p": -Infinity}'):
        _expect_4xx(service.post("/v1/text-to-motion", content=raw, headers={"content-type": "application/json"}))
    _expect_4xx(_m2l_json(service, b'{"parameters": {"expression": [[Infinity]]}}'), "not a JSON number")
    _expect_4xx(_l2m(service, seed=10**30), "seed")
    _expect_4xx(_l2m(service, seed=2**63), "seed")
    _expect_4xx(_l2m(service, seed=2**32), "seed")
    assert _l2m(service, seed=2**32 - 1).status_code == 200
    huge = {"parameters": {"expression": [[1e300] * n_exp] * 5}}  # finite, but inf in float32
    _expect_4xx(service.post("/v1/motion-to-text", json=huge), "outside")


def test_key_first_and_errors_do_not_echo_the_input(service):
    base = str(service.base_url)
    big = "x" * 3_000_000
    no_key = httpx.post(f"{base}/v1/text-to-motion", json={"prompt": "smile", "colour": big}, timeout=60)
    assert no_key.status_code == 401 and len(no_key.content) < 500
    assert httpx.get(f"{base}/v1/info", timeout=30).status_code == 401
    assert httpx.get(f"{base}/v1/info", headers={"Authorization": f"Bearer {KEY}"}, timeout=30).status_code == 200
    assert httpx.get(f"{base}/healthz", timeout=30).status_code == 200  # open: probes need no key
    assert httpx.get(f"{base}/openapi.json", timeout=30).status_code == 200  # open: the schema holds no data
    for body in ({"prompt": "smile", "colour": big}, {"prompt": "smile", big[:100_000]: 1},
                 {"prompt": "smile", "formats": ["params", big]}):
        r = service.post("/v1/text-to-motion", json=body)
        assert r.status_code == 422 and len(r.content) < 5000, (r.status_code, len(r.content))
    assert len(_upload(service, "m.csv", ("Timecode," + "y" * 2_000_000 + "\n1\n").encode()).content) < 5000


def test_body_limit_holds_for_chunked_bodies(service):
    def chunked():
        for _ in range(9 * 16):
            yield b" " * 65536  # 9 MB of JSON whitespace, no Content-Length

    r = service.post("/v1/motion-to-text", content=chunked(), headers={"content-type": "application/json"})
    _expect_4xx(r, "exceeds")
    assert r.status_code == 413


def test_hostile_uploads_are_4xx_naming_the_problem(service):
    n_exp = len(service.get("/v1/info").json()["expression_names"])
    buf = io.BytesIO()
    np.savez_compressed(buf, expression=np.zeros((25_000, 1000), np.float32))  # 100 MB inside ~100 KB
    _expect_4xx(_upload(service, "bomb.npz", buf.getvalue()), "shape (25000, 1000)")
    _expect_4xx(_upload(service, "m.npz", b"PK\x03\x04" + b"\x00" * 100), "not a readable zip")
    buf = io.BytesIO()
    np.savez(buf, expression=np.zeros((50, n_exp), np.float32))
    good = buf.getvalue()
    _expect_4xx(_upload(service, "m.npz", good, fps="abc"), "fps")
    _expect_4xx(_upload(service, "m.npz", good, fps="1e9"), "fps")
    assert _upload(service, "m.npz", good, fps="25").status_code == 200
    header = ",".join(HEADER)
    _expect_4xx(_upload(service, "m.csv", (header + "\n\n").encode()), "no frames")
    _expect_4xx(_upload(service, "m.csv", (header + "\n" + "1" * 200_000 + "\n").encode()), "field limit")


def test_work_per_request_is_bounded(service):
    n_exp = len(service.get("/v1/info").json()["expression_names"])
    motion = {"parameters": {"expression": [[0.0] * n_exp] * 100}}
    # 100 frames at fps=1 are 2,500 frames at the model's 25 fps: over this service's 400
    _expect_4xx(service.post("/v1/motion-to-text", json={**motion, "fps": 1}), "2500 frames")
    assert service.post("/v1/motion-to-text", json={**motion, "fps": 25}).status_code == 200
    _expect_4xx(_l2m(service, duration_s=12.0, formats=["mp4"]), "mp4")
    _expect_4xx(_l2m(service, duration_s=10.0, fps=60), "frames")  # 600 frames out


def test_info_hides_the_storage_location(service, run_url):
    info = service.get("/v1/info")
    assert info.status_code == 200 and "run" not in info.json()
    assert run_url not in info.text and os.path.basename(run_url.rstrip("/")) not in info.text


def test_each_request_keeps_its_own_sampling_in_a_batch(run_url):
    """The translator the replicas run: a request's tokens alone == batched with seven others, any order."""
    torch = pytest.importorskip("torch")

    from tdmm_ray.inference.translator import Translator

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tr = Translator.load(run_url)
        target = {"prompt": "a person smiles slowly while nodding", "duration_s": 1.0, "temperature": 5.0, "seed": 3}
        others = [{"prompt": p, "duration_s": d, "temperature": t, "top_k": k, "top_p": q, "seed": sd} for p, d, t, k, q, sd in [
            ("an angry face", 0.5, 0.01, 0, 1.0, 1), ("a sad face", 0.8, 0.8, 5, 0.9, 2), ("surprised", 1.0, 1e-3, 0, 0.1, 3),
            ("bored", 0.3, 2.0, 1, 1.0, 4), ("a happy face", 1.0, 0.5, 0, 0.5, 5), ("nervous", 0.7, 1.0, 50, 1.0, 3),
            ("a calm face", 0.4, 3.0, 0, 1.0, 2**32 - 1)]]
        alone = tr.text_to_motion_batch([target])[0]["tokens"]
        for pos in (0, 4, 7):
            assert tr.text_to_motion_batch(others[:pos] + [target] + others[pos:])[pos]["tokens"] == alone, pos
        greedy = {**target, "temperature": 0.0}
        assert tr.text_to_motion_batch(others + [greedy])[7]["tokens"] == tr.text_to_motion_batch([greedy])[0]["tokens"]
        # one request's failure stays its own: a seed beyond any generator, values beyond float32
        mixed = tr.text_to_motion_batch([{**target, "seed": 2**70}, target], isolate=True)
        assert mixed[0]["status"] == 422 and mixed[1]["tokens"] == alone
        with pytest.raises(ValueError, match="seed"):  # the CLI's way: the first failure raised
            tr.text_to_motion_batch([{**target, "seed": 2**70}, target])
        motion = {"parameters": {"expression": np.zeros((20, len(tr.face.expression_names))), "rotation": None}, "fps": 25}
        bad = {"parameters": {"expression": np.full((20, len(tr.face.expression_names)), 1e300), "rotation": None}, "fps": 25}
        alone_text = tr.motion_to_text_batch([motion])[0]
        mixed = tr.motion_to_text_batch([bad, motion], isolate=True)
        assert mixed[0]["status"] == 422 and mixed[1] == alone_text
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_schema_fuzzer_finds_no_server_error(service):
    """schemathesis over /openapi.json against the live app: bounded examples per operation, valid and
    invalid bodies; no 5xx, no answer over MAX_RESPONSE_BYTES, and the service healthy afterwards."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    base = str(service.base_url).rstrip("/")
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    seen, deadline = [], time.time() + 150
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @settings(max_examples=12, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def probe(case):
                if time.time() > deadline:
                    return
                response = case.call(base_url=base, headers={"X-API-Key": KEY}, timeout=60)
                seen.append(response.status_code)
                assert response.status_code < 500, (case.path, case.body if case.body is not None else "", response.text[:300])
                assert len(response.content) <= MAX_RESPONSE_BYTES

            try:
                probe()
            except Unsatisfiable:  # an operation without inputs has no invalid variant
                assert mode == GenerationMode.NEGATIVE
    assert len(seen) >= 20 and service.get("/healthz").status_code == 200
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
