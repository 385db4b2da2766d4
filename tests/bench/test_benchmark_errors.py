"""A benchmark that sees an error fails (exit 1) and prints no ratio: the gateway benchmark once printed
ratios over a run where 2,430 of 2,500 requests had been refused. Each benchmark here is run with every task
refused (ALP_VALIDATION_MAX_CHARS=5 rejects any task text at intake with 422)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
RUNS = {
    "tracing": ["benchmarks/tracing/run.py", "--requests", "2", "--rounds", "1"],
    "local_model": ["benchmarks/local_model/run.py", "--platform-only", "--concurrency", "1", "--waves", "1"],
}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_a_benchmark_whose_requests_fail_exits_1_without_ratios(name):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ALP_VALIDATION_MAX_CHARS": "5"}
    done = subprocess.run(
        [sys.executable, *RUNS[name]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 1, done.stdout + done.stderr[-2000:]
    assert "FAILED" in done.stderr and "422" in done.stderr, done.stderr[-2000:]
    assert "ratio" not in done.stdout and "vs N=" not in done.stdout and "|" not in done.stdout, done.stdout
