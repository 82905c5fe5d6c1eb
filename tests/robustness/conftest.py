"""Robustness suite setup: the same JAX device layout as the CLI, and a report of the counts."""
from __future__ import annotations

import sys

import pytest

if "jax" not in sys.modules:  # as `slt` does it: one CPU device per core, before jax loads
    from slt.cli import configure_jax

    configure_jax(cache=False)

import robust_util  # noqa: E402


def pytest_terminal_summary(terminalreporter):
    counts, report = robust_util.COUNTS, robust_util.REPORT
    if not counts and not report:
        return
    terminalreporter.section("robustness counts")
    for key in sorted(counts):
        terminalreporter.write_line(f"{key}: {counts[key]}")
    for line in report:
        terminalreporter.write_line(line)


@pytest.fixture
def workdir(tmp_path):
    return tmp_path
