"""The README's headline tables are the results files: regenerating them changes nothing."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tables():
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "benchmarks" / "readme_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_headline_table_has_a_block(tables):
    text = (ROOT / "README.md").read_text()
    names = tables.blocks_in(text)
    assert sorted(set(names)) == sorted(tables.expected_blocks()), "README blocks and generators differ"
    assert len(names) == len(set(names)), "a table appears twice"


def test_readme_matches_results(tables):
    _, changed = tables.regenerate((ROOT / "README.md").read_text())
    assert changed == [], f"README out of date for {changed}: run `python benchmarks/readme_tables.py`"


def test_an_edited_number_is_caught(tables):
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- table:fit_vs_scipy -->\n(.*?)<!-- /table:fit_vs_scipy -->", text, re.S)
    tampered = text[:block.start(1)] + re.sub(r"\d", "7", block.group(1), count=3) + text[block.end(1):]
    _, changed = tables.regenerate(tampered)
    assert changed == ["fit_vs_scipy"]


def test_no_stale_fitter_claim():
    assert "1,667" not in (ROOT / "README.md").read_text()


def test_serve_table_reads_the_repeated_format(tables, tmp_path, monkeypatch):
    spread = lambda m: {"median": m, "min": m * 0.9, "max": m * 1.1}  # noqa: E731
    rows = [{"clients": c, "throughput_rps": spread(2.0 * c), "p50_ms": spread(150.0), "p99_ms": spread(300.0),
             "cpu_ms_per_request_serving": spread(40.0), "errors": 0} for c in (1, 8, 32)]
    summary = {"batched": rows, "unbatched": rows, "single_client": {"l2m_4s_p50_ms": spread(160.0)},
               "goals": {"batched_over_unbatched_at_32": spread(2.5), "p99_over_p50_at_32_batched": 2.0}}
    (tmp_path / "serve_load.json").write_text(__import__("json").dumps(
        {"modes": {"batched": {"max_batch_size": 8}}, "summary": summary, "repetitions": [{}, {}, {}]}))
    monkeypatch.setattr(tables, "RESULTS", tmp_path)
    text = tables.serve_load()
    assert "| batched | 32 | 64.00 [57.60–70.40] | 150 [135–165] | 300 [270–330] | 40 [36–44] |" in text
    assert "batched over unbatched at 32: 2.50 [2.25–2.75]" in text and "3 repetitions" in text
