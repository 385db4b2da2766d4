"""The `alp` CLI against a real server process."""

from __future__ import annotations

import pytest
from support import free_port
from typer.testing import CliRunner

from agent_lightning import __version__
from agent_lightning.cli import app
from agent_lightning.core.config import get_settings

pytestmark = pytest.mark.slow
runner = CliRunner()


def alp(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), terminal_width=200)
    return result.exit_code, result.output


def test_version():
    assert alp("version") == (0, f"{__version__}\n")


def test_db_upgrade(tmp_path, monkeypatch):
    monkeypatch.setenv("ALP_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    get_settings.cache_clear()
    try:
        code, output = alp("db", "upgrade")
    finally:
        get_settings.cache_clear()
    assert code == 0 and "up to date" in output
    assert (tmp_path / "cli.db").stat().st_size > 0


def test_tasks_and_agents_through_the_cli(cluster):
    url = cluster.start("platform", "orchestrator,execution,models", free_port(), ALP_Q_EPSILON="0")

    code, output = alp("agents", "list", "--url", url)
    assert code == 0 and "full_stack_developer" in output and "general_assistant" in output
    code, output = alp(
        "agents",
        "create",
        "rust_developer",
        "--name",
        "Rust Developer",
        "--prompt",
        "You write Rust.",
        "--expertise",
        "rust",
        "--capability",
        "write_code",
        "--url",
        url,
    )
    assert code == 0 and "rust_developer v1 (active)" in output
    code, output = alp("agents", "update", "rust_developer", "--temperature", "0.1", "--url", url)
    assert code == 0 and "now v2" in output
    code, output = alp("agents", "show", "rust_developer", "--url", url)
    assert code == 0 and '"temperature": 0.1' in output
    code, output = alp("agents", "create", "rust_developer", "--name", "Again", "--prompt", "x", "--url", url)
    assert code == 1 and "409 agent_exists" in output
    code, output = alp("agents", "tool-policy", "--deny", "python", "--url", url)
    assert code == 0 and "Allowed: any not denied" in output and "Denied: python" in output
    code, output = alp(
        "agents", "create", "coder", "--name", "Coder", "--prompt", "x", "--tool", "python", "--url", url
    )
    assert code == 1 and "422 tool_denied" in output
    code, output = alp("agents", "tool-policy", "--deny-none", "--url", url)
    assert code == 0 and "Denied: none" in output

    code, output = alp("task", "submit", "Deploy the API with docker and kubernetes", "--wait", "--url", url)
    assert code == 0, output
    assert "devops_engineer" in output and "succeeded" in output and "answer to: Deploy the API" in output
    task_id = output.split()[1]

    code, output = alp("tasks", "list", "--status", "succeeded", "--url", url)
    assert code == 0 and task_id in output
    code, output = alp("task", "show", task_id, "--url", url)
    assert code == 0 and "devops_engineer" in output and "succeeded" in output
    code, output = alp("task", "feedback", task_id, "8", "--comment", "good", "--url", url)
    assert code == 0 and "Reward 0.8" in output

    code, output = alp("agents", "retire", "general_assistant", "--url", url)
    assert code == 0 and "retired" in output
    code, output = alp("task", "submit", "Port the crate to Rust 2024", "--url", url)
    assert code == 3 and "Held for review" in output
    held = output.split()[1]
    code, output = alp("task", "approve", held, "--agent", "rust_developer", "--url", url)
    assert code == 0 and "rust_developer" in output
    code, output = alp("task", "show", "no-such-task", "--url", url)
    assert code == 1 and "404 task_not_found" in output
    code, output = alp("task", "retry", task_id, "--url", url)
    assert code == 1 and "409 task_not_retryable" in output
    code, output = alp("task", "submit", "Plan the team offsite", "--url", url)
    assert code == 3
    second = output.split()[1]
    assert alp("task", "cancel", second, "--url", url)[0] == 0
    code, output = alp("task", "retry", second, "--url", url)
    assert code == 0 and "is queued" in output
    code, output = alp("task", "step", second, "9", "approve", "--url", url)
    assert code == 1 and "409 task_not_awaiting_approval" in output


def test_knowledge_add_sends_a_folder_in_batches(cluster, tmp_path):
    # 30 files against a server allowing 5 writes a minute: one request per file would be refused from the
    # 6th.
    url = cluster.start(
        "knowledge", "knowledge", free_port(), SPLIT_MODELS="quoting", ALP_RATE_LIMIT_WRITE="5/minute"
    )
    docs = tmp_path / "docs"
    docs.mkdir()
    for n in range(30):
        (docs / f"note-{n:02d}.md").write_text(
            f"# Note {n}\n\nService {n} restarts after {n} failed health checks.\n"
        )
    (docs / "empty.txt").write_text("  \n")
    (docs / "noise.md").write_bytes(bytes(range(256)) * 40)  # not text, whatever its name says
    code, output = alp("knowledge", "add", str(docs), "--url", url)
    assert code == 0, output
    # The console is 80 columns wide off a terminal: a long path (pytest-xdist's tmp_path has a worker's
    # folder in it) is folded across lines, and a message wraps at its spaces.
    unfolded = "".join(output.split())
    assert "32 documents, 30 new chunks" in output and "Skipped" in output and "empty.txt" in unfolded
    assert "noise.md" in unfolded and "binary content is not indexed" in " ".join(output.split())
    code, output = alp(
        "knowledge", "search", "after how many failed checks does service 17 restart", "--url", url
    )
    assert code == 0 and "Note 17" in output


def test_knowledge_commands(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv(
        "ALP_MAX_BODY_BYTES", "16384"
    )  # the client reads the server's limit from the same setting
    get_settings.cache_clear()
    try:
        url = cluster.start("knowledge", "knowledge", free_port(), SPLIT_MODELS="quoting")
        docs = tmp_path / "docs"
        docs.mkdir()
        (docs / "pools.md").write_text(
            "# Pools\n\n## Sizing\nKeep the connection pool small: twice the CPU cores.\n"
        )
        (docs / "retries.html").write_text(
            "<html><body><h1>Retries</h1><p>Back off exponentially with jitter.</p></body></html>"
        )
        big = " ".join(
            f"Section {i} explains how cache layer {i % 97} expires its entries." for i in range(300)
        )
        (docs / "big.txt").write_text(big)  # over the upload limit: sent as text, in parts

        code, output = alp("knowledge", "add", str(docs), "--url", url)
        assert code == 0, output
        assert "3 documents" in output
        code, output = alp("knowledge", "search", "how big should the connection pool be", "--url", url)
        assert code == 0 and "Pools" in output
        code, output = alp("knowledge", "stats", "--url", url)
        assert code == 0
        code, again = alp("knowledge", "add", str(docs / "pools.md"), "--url", url)
        assert code == 0 and "0 new chunks" in again, "the same document is stored once"
    finally:
        get_settings.cache_clear()
