"""The dashboard's buttons in a real browser (Playwright, Debian's chromium): approve a tool call a task waits
on, approve a task held for review, retry a failed one."""

from __future__ import annotations

from pathlib import Path

import pytest
from agentkit import make_agent
from support import served, wait_for_status

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium; .ci/run installs it)",
)
TIMEOUT_MS = 20_000


async def test_approve_a_tool_call_release_a_review_and_retry_from_the_dashboard(settings, caller):
    from playwright.async_api import async_playwright

    caller.script = [[("memory_remember", {"fact": "The office closes at six."})]]
    quiet = settings.model_copy(
        update={"max_attempts": 1, "confidence_threshold": 0.95}
    )  # unnamed agents: review
    async with served(quiet, caller) as client, async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        page = await browser.new_page(viewport={"width": 1400, "height": 1100})
        await make_agent(client, "gatekept", ["memory"], require_approval=["memory"])
        task_id = (
            await client.post(
                "/assign-task", json={"description": "Note the closing time", "agent_id": "gatekept"}
            )
        ).json()["task_id"]
        await wait_for_status(client, task_id, {"awaiting_approval"}, timeout=30)
        await page.goto(f"{client.base_url}/dashboard")
        await page.wait_for_selector("body[data-ready=true]", timeout=TIMEOUT_MS)
        await page.click(f"#tasks tr[data-task='{task_id}']")
        await page.click("#detail-body button[data-approve='2']", timeout=TIMEOUT_MS)
        await page.wait_for_selector("#detail-status:has-text('succeeded')", timeout=TIMEOUT_MS)
        assert (await wait_for_status(client, task_id))["status"] == "succeeded"
        await page.wait_for_selector(
            "#detail-body tr[data-step='2'] td.status.approved, "
            "#detail-body tr[data-step='2'] td.status:not(.awaiting_approval)",
            timeout=TIMEOUT_MS,
        )
        assert await page.locator("#detail-body button[data-approve='2']").count() == 0  # decided: no buttons

        held = (await client.post("/assign-task", json={"description": "zzz qqq"})).json()
        assert held["status"] == "awaiting_review"
        await page.click(f"#tasks tr[data-task='{held['task_id']}']", timeout=TIMEOUT_MS)
        await page.click("#detail-body button[data-action=approve]", timeout=TIMEOUT_MS)
        assert (await wait_for_status(client, held["task_id"]))["status"] == "succeeded"

        caller.failures = 5
        failing = (
            await client.post(
                "/assign-task", json={"description": "Write a haiku", "agent_id": "general_assistant"}
            )
        ).json()["task_id"]
        assert (await wait_for_status(client, failing))["status"] == "failed"
        caller.failures = 0
        await page.click(f"#tasks tr[data-task='{failing}']", timeout=TIMEOUT_MS)
        await page.click("#detail-body button[data-action=retry]", timeout=TIMEOUT_MS)
        await page.wait_for_selector("#detail-status:has-text('succeeded')", timeout=TIMEOUT_MS)
        await browser.close()
