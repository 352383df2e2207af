"""The tiny pipelines give the figures they gave before the issue-24 redesign (tests/golden/, tests/goldens.py)."""

from __future__ import annotations

import pytest

from tests import goldens
from tests.conftest import read_json


def test_tiny_figures_match_the_golden_ones(tiny_shipped):
    run_dir, _, _ = tiny_shipped
    assert goldens.compare(goldens.figures(read_json(run_dir / "report.json")), goldens.load("tiny")) == []


def test_golden_comparison_catches_a_changed_figure(tiny_shipped):
    run_dir, _, _ = tiny_shipped
    got = goldens.figures(read_json(run_dir / "report.json"))
    got["variants"]["student-int8"]["accuracy"] -= 0.05
    got["export_parity"]["student"][0]["ok"] = False
    problems = goldens.compare(got, goldens.load("tiny"))
    assert any(p.startswith("student-int8.accuracy") for p in problems)
    assert any(p.startswith("export_parity") for p in problems)


@pytest.mark.parametrize("name", ["tiny", "tiny-lm"])
def test_golden_files_hold_every_variant(name):
    golden = goldens.load(name)
    assert "teacher" in golden["variants"] and "student-onnx" in golden["variants"] and golden["export_parity"]
