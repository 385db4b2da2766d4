"""`alp bench routing --plot` on an install without matplotlib says, before simulating anything, how to get
it (rich took the `[bench]` of the hint for markup and printed `pip install 'agent-lightning'`). The shadow
package on PYTHONPATH makes matplotlib absent whether or not it is installed."""

from __future__ import annotations

import importlib.util

import pytest
from platform_process import alp_cli


def test_plot_without_matplotlib_names_the_bench_extra(tmp_path):
    blocked = tmp_path / "no-matplotlib"
    (blocked / "matplotlib").mkdir(parents=True)
    (blocked / "matplotlib" / "__init__.py").write_text("raise ImportError('matplotlib is not installed')\n")
    done = alp_cli("bench", "routing", "--plot", str(tmp_path / "regret.png"), PYTHONPATH=str(blocked))
    assert done.returncode == 2, done.stdout + done.stderr
    message = " ".join(done.stderr.split())
    assert "pip install -e '.[bench]'" in message, message
    assert "routing benchmark" not in done.stdout and not (tmp_path / "regret.png").exists()


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="the bench extra is not installed")
def test_plot_with_the_bench_extra_draws_the_curves(tmp_path):
    done = alp_cli(
        "bench",
        "routing",
        "--policies",
        "seed-q,capability",
        "--seeds",
        "1",
        "--embeddings",
        "none",
        "--plot",
        str(tmp_path / "regret.png"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "regret.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
