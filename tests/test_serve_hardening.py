"""Hostile inputs below the HTTP layer: the ingress guard as a real ASGI app, upload parsing, the
Live Link CSV reader, per-request failure isolation and per-request sampling (issues 16 and 17).

The live-service side of the same findings is in test_serve.py."""

from __future__ import annotations

import asyncio
import io
import itertools
import zipfile

import httpx
import numpy as np
import pytest
import torch
from fastapi import FastAPI, Request

from tdmm_ray.config import LMConfig
from tdmm_ray.export.arkit_csv import read_arkit_csv, write_arkit_csv
from tdmm_ray.inference.translator import batched
from tdmm_ray.lm.generate import describe_codes, generate_motion_codes
from tdmm_ray.lm.model import prepare_base
from tdmm_ray.lm.synthetic import synthetic_corpus
from tdmm_ray.lm.train import tokenizer_texts
from tdmm_ray.serve import guard
from tdmm_ray.serve.uploads import csv_motion, npz_motion

KEY = "s3cret-key"


def _guarded_app(limit: int = 1000) -> FastAPI:
    app = FastAPI()
    app.add_middleware(guard.Guard, default_max_body=limit)
    app.state.api_key = KEY

    @app.post("/echo-size")
    async def echo_size(request: Request) -> dict:
        return {"bytes": len(await request.body())}

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    return app


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=_guarded_app()), base_url="http://test")


def test_key_is_checked_before_the_body_is_read():
    asyncio.run(_key_first())


async def _key_first():
    async with _client() as c:
        r = await c.post("/echo-size", content=b"x" * 5000)  # over the limit too: the key comes first
        assert r.status_code == 401 and len(r.content) < 200
        assert (await c.post("/echo-size", content=b"x", headers={"X-API-Key": "wrong"})).status_code == 401
        assert (await c.post("/echo-size", content=b"x", headers={"X-API-Key": KEY[:-1]})).status_code == 401
        ok = await c.post("/echo-size", content=b"x" * 10, headers={"Authorization": f"Bearer {KEY}"})
        assert ok.status_code == 200 and ok.json() == {"bytes": 10}
        assert (await c.get("/healthz")).status_code == 200  # open without a key


def test_body_limit_while_reading_chunked_too():
    asyncio.run(_body_limit())


async def _body_limit():
    async def chunks():  # no Content-Length: a chunked body
        for _ in range(50):
            yield b"y" * 100

    async with _client() as c:
        h = {"X-API-Key": KEY}
        r = await c.post("/echo-size", content=chunks(), headers=h)
        assert r.status_code == 413 and "exceeds 1000" in r.json()["detail"]
        assert (await c.post("/echo-size", content=b"z" * 1001, headers=h)).status_code == 413
        assert (await c.post("/echo-size", content=b"z" * 1000, headers=h)).json() == {"bytes": 1000}


def test_errors_repeat_little():
    huge = "v" * 7_000_000
    capped = guard.capped([huge] * 50)
    assert len(capped) == guard.MAX_ERRORS + 1 and len(str(capped)) < 5000
    errs = guard.validation_errors([{"loc": ("body", huge), "msg": huge, "type": "extra_forbidden", "input": huge}])
    assert "input" not in errs[0] and len(str(errs)) < 1000


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def test_npz_headers_are_checked_before_decompressing():
    bomb = _npz(expression=np.zeros((5000, 2000), np.float32))  # ~40 KB that expands to 40 MB
    assert len(bomb) < 100_000
    with pytest.raises(ValueError, match=r"shape \(5000, 2000\)"):
        npz_motion(bomb, max_frames=1500, n_expression=51)
    with pytest.raises(ValueError, match="dtype"):
        npz_motion(_npz(expression=np.array([["a"] * 51])), 1500, 51)
    with pytest.raises(ValueError, match="not a readable zip"):
        npz_motion(b"PK\x03\x04" + b"\x00" * 200, 1500, 51)
    with pytest.raises(ValueError, match="outside"):
        npz_motion(_npz(expression=np.full((3, 51), 1e300)), 1500, 51)  # finite in float64, inf in float32
    with pytest.raises(ValueError, match="no 'expression'"):
        npz_motion(_npz(rotation=np.zeros((3, 3))), 1500, 51)
    # a member cut short: the bytes its header promises are not there
    good = _npz(expression=np.ones((4, 51), np.float64), rotation=np.zeros((4, 3)))
    expression, rotation = npz_motion(good, 1500, 51)
    assert expression.shape == (4, 51) and expression.dtype == np.float32 and rotation.shape == (4, 3)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (4, 51)})
        zf.writestr("expression.npy", header.getvalue() + b"\x00" * 16)
    with pytest.raises(ValueError, match="truncated"):
        npz_motion(buf.getvalue(), 1500, 51)


def test_live_link_csv_problems_are_named():
    text = write_arkit_csv(np.zeros((3, 1)), ["jawOpen"], np.zeros((3, 3)), 25)
    header = text.splitlines()[0]
    with pytest.raises(ValueError, match="no frames"):
        read_arkit_csv(header + "\n\n")
    with pytest.raises(ValueError, match="field larger than field limit"):
        read_arkit_csv(header + "\n" + "1" * 200_000 + "\n")
    lines = text.splitlines()
    with pytest.raises(ValueError, match="frame 1 has 3 columns"):
        read_arkit_csv("\n".join([lines[0], lines[1], "a,b,c"]))
    with pytest.raises(ValueError, match="frame 0, column EyeBlinkLeft: not a number"):
        read_arkit_csv(text.replace(lines[1], lines[1].replace("0.000000", "x", 1)))
    with pytest.raises(ValueError, match="3 frames; the limit is 2"):
        csv_motion(text.encode(), max_frames=2)
    with pytest.raises(ValueError, match="UTF-8"):
        csv_motion(b"\xff\xfe" + text.encode(), max_frames=10)
    curves, head = csv_motion((text + "\n\n").encode(), max_frames=10)
    assert curves.shape == (3, 52) and head.shape == (3, 3)


def test_batched_failure_stays_with_its_request():
    def invert(xs):
        return [1 / x for x in xs]  # one zero fails the whole call

    assert batched([1, 2, 4], invert) == [1.0, 0.5, 0.25]
    out = batched([2, 0, 4], invert)
    assert out[0] == 0.5 and out[2] == 0.25 and out[1]["status"] == 500 and "ZeroDivisionError" in out[1]["error"]
    bad = batched([0], invert)
    assert bad[0]["status"] == 500


CODEBOOK = 32


@pytest.fixture(scope="module")
def lm():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest, and spares a loaded machine
    model, tok = prepare_base(LMConfig(hidden_size=32, layers=2, heads=2, vocab_size=300), CODEBOOK,
                              tokenizer_texts(synthetic_corpus(32, CODEBOOK)))
    with torch.no_grad():  # a fresh model's motion rows are all equal: spread them so sampling has a shape
        emb = model.get_input_embeddings().weight
        emb.add_(torch.randn(emb.shape, generator=torch.Generator().manual_seed(0)) * emb.std() * 3)
    yield model.eval(), tok
    torch.set_num_threads(threads)


OTHERS = [  # seven differently configured requests: (prompt, seconds, temperature, top_k, top_p, seed)
    ("an angry face", 0.4, 5.0, 0, 1.0, 5), ("a sad face", 0.2, 0.0, 0, 1.0, 9),
    ("surprised, nodding", 0.6, 1.3, 5, 0.9, 2**32 - 1), ("a happy face", 0.3, 0.5, 50, 0.5, 7),
    ("a bored look", 0.5, 0.8, 0, 1.0, 1), ("happy", 0.1, 2.0, 3, 1.0, 0), ("a nervous face", 0.36, 0.01, 0, 0.2, 123),
]


@pytest.mark.parametrize("target", [("a happy face", 0.4, 1.0, 0, 1.0, 11), ("a sly grin", 0.5, 0.9, 4, 0.8, 3)])
def test_each_request_keeps_its_own_sampling_in_any_batch(lm, target):
    model, tok = lm

    def run(rows):
        p, s, t, k, q, seed = zip(*rows)
        return generate_motion_codes(model, tok, list(p), list(s), temperature=list(t), top_k=list(k),
                                     top_p=list(q), seed=list(seed))

    alone = run([target])[0]
    for position in (0, 7):
        batch = OTHERS[:position] + [target] + OTHERS[position:]
        assert run(batch)[position] == alone, f"changed at position {position}"
    shuffled = list(itertools.permutations(OTHERS))[4321 % 5040]
    assert run([*shuffled[:2], target, *shuffled[2:]])[2] == alone
    if target[2] > 0:  # the seed is what a sampled answer depends on
        assert run([target[:5] + (target[5] + 1,)])[0] != alone


def test_motion_to_text_keeps_its_own_sampling_in_any_batch(lm):
    model, tok = lm
    codes = [[1, 2, 3], [4, 5, 6, 7, 8], [9] * 6, [3, 1, 4, 1, 5], [2, 7, 1, 8], [0], [31, 30], [5, 5, 5, 5]]
    temps = [1.2, 0.0, 2.0, 0.7, 0.0, 1.0, 3.0, 0.5]
    seeds = [3, 0, 99, 4, 1, 2**40, 5, 6]
    batch = describe_codes(model, tok, codes, max_new_tokens=8, temperature=temps, seed=seeds)
    for i in range(len(codes)):
        alone = describe_codes(model, tok, [codes[i]], max_new_tokens=8, temperature=temps[i], seed=seeds[i])
        assert alone == [batch[i]], i


@pytest.mark.parametrize("arch", ["qwen3", "llama"])
def test_lean_decoder_matches_the_hugging_face_forward(arch):
    from tdmm_ray.lm import static_decoder
    from tdmm_ray.lm.generate import HFStepper, left_pad

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, tok = prepare_base(LMConfig(arch=arch, hidden_size=32, layers=2, heads=2, vocab_size=300), CODEBOOK,
                                  tokenizer_texts(synthetic_corpus(16, CODEBOOK)))
        model.eval()
        with torch.no_grad():
            for p in model.parameters():  # away from the initialisation's ones and zeros
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.05)
        assert static_decoder.supports(model)
        ids, mask = left_pad([[5, 6, 7, 8, 9, 10], [11, 12, 13]], tok.pad_token_id)
        hf, lean = HFStepper(model), static_decoder.StaticDecoder(model)
        with torch.inference_mode():
            torch.testing.assert_close(lean.prefill(ids, mask, 3), hf.prefill(ids, mask, 3), rtol=1e-5, atol=1e-5)
            for step in ([20, 21], [22, 23], [24, 25]):
                torch.testing.assert_close(lean.step(torch.tensor(step)), hf.step(torch.tensor(step)), rtol=1e-5, atol=1e-5)
        prompts = ["a happy face", "a strong angry face, shaking head"]
        fast = generate_motion_codes(model, tok, prompts, [0.3, 0.5], temperature=[0.0, 1.0], seed=[0, 4])
        slow = generate_motion_codes(model, tok, prompts, [0.3, 0.5], temperature=[0.0, 1.0], seed=[0, 4], lean=False)
        assert slow == fast
    finally:
        torch.set_num_threads(threads)


def test_batcher_forms_batches_when_the_model_is_free():
    """Requests that arrive while a batch runs all join the next one (Ray's @serve.batch would
    start small batches eagerly); a failing batch fails only its own requests' answers."""
    import time as _time

    from tdmm_ray.serve.deployments import Batcher

    sizes = []

    def model(requests):
        sizes.append(len(requests))
        _time.sleep(0.05)  # the model step: everything submitted meanwhile waits for the next batch
        return [{"echo": r["i"]} if r["i"] != 13 else {"error": "thirteen", "status": 422} for r in requests]

    async def scenario():
        batcher = Batcher(model, max_batch_size=8, wait_s=0.001)
        first = asyncio.create_task(batcher.submit({"i": 0}))
        await asyncio.sleep(0.01)  # the first batch (of one) is running
        rest = [asyncio.create_task(batcher.submit({"i": i})) for i in range(1, 20)]
        return [await first, *[await t for t in rest]]

    answers = asyncio.run(scenario())
    assert [a.get("echo") for a in answers if "echo" in a] == [i for i in range(20) if i != 13]
    assert answers[13]["status"] == 422 and all("_timing" in a for a in answers)
    assert sizes == [1, 8, 8, 3], sizes
