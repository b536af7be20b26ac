"""CI runs exactly the test command that the README gives to a new user."""

from __future__ import annotations

from tests.conftest import ROOT

PREFIX = "python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]'"


def test_ci_runs_the_readme_test_command_verbatim():
    readme = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith(PREFIX)]
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith(PREFIX)]
    assert len(ci) == 1, ci
    assert ci[0] in readme, (ci, readme)
    assert "--cov-fail-under=" in ci[0]  # coverage is measured, with a floor
