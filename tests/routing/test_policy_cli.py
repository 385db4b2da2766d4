"""`alp policy …` against a real server process, and `alp bench routing` in this process."""

from __future__ import annotations

import pytest
from support import free_port
from typer.testing import CliRunner

from agent_lightning.cli import app

runner = CliRunner()


def alp(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), terminal_width=200)
    return result.exit_code, result.output


@pytest.mark.slow
def test_policy_commands(cluster):
    url = cluster.start("platform", "orchestrator,execution,models", free_port())
    code, output = alp("policy", "evaluate", "capability", "--url", url)
    assert code == 1 and "No rewarded decisions" in output

    code, output = alp("task", "submit", "Deploy the API with docker and kubernetes", "--wait", "--url", url)
    assert code == 0 and "devops_engineer" in output, output

    code, output = alp("policy", "show", "--url", url)
    assert code == 0 and "Policy topics v1 (deployment default)" in output and "devops_engineer" in output
    code, output = alp("policy", "decisions", "--url", url)
    assert code == 0 and "topics v0" in output and "outcome" in output
    code, output = alp("policy", "evaluate", "capability", "--since", "2020-01-01", "--url", url)
    assert code == 0 and "on 1 rewarded decisions" in output and "doubly robust" in output, output

    code, output = alp("policy", "switch", "thompson", "--param", "prior_weight=3", "--url", url)
    assert code == 0 and 'Now routing with thompson v0 {"prior_weight": 3}' in output
    code, output = alp("policy", "switch", "oracle", "--url", url)
    assert code == 1 and "422 invalid_policy" in output


def test_bench_routing_prints_and_writes_the_table(tmp_path):
    table = tmp_path / "routing.md"
    code, output = alp(
        "bench", "routing", "--policies", "capability", "--seeds", "1", "--markdown", str(table)
    )
    assert code == 0, output
    rows = [
        line
        for line in table.read_text().splitlines()
        if line.startswith("| seed-q") or line.startswith("| capability")
    ]
    assert len(rows) == 2, "the seed baseline is always measured in the same run"
    assert rows[0].split("|")[5].strip() == "1.00"
    code, output = alp("bench", "routing", "--tasks", "100")
    assert code != 0, "the table needs 5000 tasks"
