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
    assert sorted(set(names)) == sorted(tables.TABLES), "README blocks and generators differ"
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
