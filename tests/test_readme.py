"""README.md stays a page a newcomer reads in minutes, and its links and test command stay true."""

from __future__ import annotations

import re

from .conftest import ROOT


def test_readme_is_at_most_250_lines_and_its_links_resolve():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"


def test_ci_runs_the_readme_test_command():
    readme, ci = (ROOT / "README.md").read_text(encoding="utf-8"), (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = 'pip install -q torch==2.13.0 -e ".[dev]" && pytest'
    assert command in readme and command in ci
