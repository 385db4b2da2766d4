"""A default install serves several tasks at once with the real local model (SmolLM2 through llama.cpp):
five concurrent `alp task submit --wait` all succeed, even right after a task whose generation timed out
(it kept the model's only slot for its whole length before)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from platform_process import AlpUp, alp_cli

pytestmark = pytest.mark.slow

STORY = "Write a very long story about a lighthouse keeper and a cat, with many chapters."
QUESTIONS = ("Say hi.", "Name a colour.", "What is 2 + 2?", "Name a fruit.", "Say bye.")


def test_five_concurrent_waits_succeed_after_a_timed_out_generation(tmp_path):
    server = AlpUp(tmp_path / "data")
    url = server.start()
    try:
        story = httpx.post(
            f"{url}/assign-task",
            timeout=30,
            json={"description": STORY, "agent_id": "full_stack_developer", "timeout": 3, "max_attempts": 1},
        ).json()
        deadline = time.monotonic() + 120
        while httpx.get(f"{url}/tasks/{story['task_id']}", timeout=30).json()["status"] not in (
            "failed",
            "succeeded",
        ):
            assert time.monotonic() < deadline, "the story task never ended"
            time.sleep(0.2)

        def submit(question: str):
            return alp_cli(
                "task",
                "submit",
                question,
                "--agent",
                "general_assistant",
                "--wait",
                "--timeout",
                "300",
                "--url",
                url,
            )

        with ThreadPoolExecutor(len(QUESTIONS)) as pool:
            results = list(pool.map(submit, QUESTIONS))
        failed = [r.stdout + r.stderr for r in results if r.returncode != 0]
        assert not failed, failed
        assert all("succeeded" in r.stdout for r in results)

        story = httpx.get(f"{url}/tasks/{story['task_id']}", timeout=30).json()
        assert story["status"] == "failed" and "timed out" in story["error"], story
        queue = httpx.get(f"{url}/models/local/stats", timeout=30).json()["deployments"][0]["queue"]
        assert queue["aborted"] >= 1 and queue["running"] == 0 and queue["rejected"] == 0, queue
        server.assert_alive()
    finally:
        server.stop()
