"""One log pipeline: every line a server prints (its own events, uvicorn's, Alembic's, the MCP SDK's, Python
warnings) is JSON when nobody reads it on a terminal, readable columns on a terminal, and no stray warning."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time

import httpx
from support import free_port

BANNER = ("Agent Lightning", "Dashboard:", "Database:")  # the CLI's own greeting, printed by rich


def _serve_and_read(tmp_path, *, tty: bool) -> list[str]:
    port = free_port()
    env = {
        **os.environ,
        "ALP_DATA_DIR": str(tmp_path),
        "ALP_LOG_LEVEL": "INFO",
        "HF_HUB_OFFLINE": "1",
        "ALP_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'alp.db'}",
    }
    env.pop("ALP_LOG_JSON", None)
    command = [sys.executable, "-m", "agent_lightning.cli", "up", "--port", str(port)]
    if tty:
        leader, follower = pty.openpty()
        process = subprocess.Popen(command, env=env, stdout=follower, stderr=follower)
        os.close(follower)
    else:
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        leader = process.stdout.fileno()
    output = b""
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        task = httpx.post(
            f"http://127.0.0.1:{port}/assign-task",
            timeout=30,
            json={"description": "Say hi", "force_execute": True, "agent_id": "general_assistant"},
        )
        assert task.status_code == 200, task.text
        time.sleep(3)  # the task runs, the alert rules run after it
    finally:
        process.terminate()
        end = time.monotonic() + 30
        while time.monotonic() < end:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                output += chunk
            elif process.poll() is not None:
                break
        process.wait(timeout=30)
    return [line for line in output.decode(errors="replace").replace("\r", "").splitlines() if line.strip()]


def test_without_a_terminal_every_line_is_json(tmp_path):
    lines = _serve_and_read(tmp_path, tty=False)
    stray = [line for line in lines if not line.startswith(BANNER) and not _is_json(line)]
    assert not stray, "lines that are not JSON:\n" + "\n".join(stray[:20])
    loggers = {json.loads(line).get("logger") for line in lines if _is_json(line)}
    assert "uvicorn.error" in loggers, loggers  # uvicorn's lines went through the pipeline
    assert not any("Warning" in line for line in lines), [line for line in lines if "Warning" in line]


def test_on_a_terminal_lines_are_readable_columns(tmp_path):
    lines = _serve_and_read(tmp_path, tty=True)
    logged = [line for line in lines if not line.startswith(BANNER)]
    assert logged and not any(_is_json(line) for line in logged), logged[:10]
    assert any("Application startup complete" in line for line in logged), logged[:10]


def _is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
