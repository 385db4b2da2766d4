"""The visual builder in a real browser (Debian's Chromium, headless, driven by Playwright): a two-node
workflow built by drag-and-drop, saved (validation errors shown on the node first), run, both nodes seen
succeeding live. Skipped only when /usr/bin/chromium is absent (never downloads a browser)."""

from __future__ import annotations

import os

import pytest
from support import served

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"
)
SCREENSHOT = os.environ.get(
    "ALP_WORKFLOW_SCREENSHOT"
)  # set to docs/workflow-builder.png to refresh the docs' image


@pytest.fixture
async def browser():
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            await browser.close()


async def center(locator) -> tuple[float, float]:
    box = await locator.bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


async def connect(page, source: str, target: str) -> None:
    x, y = await center(page.get_by_test_id(source))
    await page.mouse.move(x, y)
    await page.mouse.down()
    tx, ty = await center(page.get_by_test_id(target))
    await page.mouse.move((x + tx) / 2, (y + ty) / 2, steps=5)
    await page.mouse.move(tx, ty, steps=5)
    await page.mouse.up()


async def test_build_save_and_run_a_workflow_in_the_browser(settings, provider, browser, tmp_path):
    async with served(settings, provider) as client:
        page = await browser.new_page(viewport={"width": 1400, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"{client.base_url}/workflows/builder")
        await page.locator('#palette li[data-type="agent_task"]').wait_for()

        canvas = page.get_by_test_id("canvas")
        await page.drag_and_drop(
            '#palette li[data-type="agent_task"]', "#canvas", target_position={"x": 220, "y": 160}
        )
        await page.drag_and_drop(
            '#palette li[data-type="output"]', "#canvas", target_position={"x": 600, "y": 260}
        )
        assert await canvas.locator("g.node").count() == 2
        await connect(page, "port-agent_task_1-out-out", "port-output_1-in-in")
        assert await page.locator('path.edge[data-edge-id="agent_task_1.out->output_1"]').count() == 1

        await page.get_by_role("button", name="Save").click()  # the task has no prompt yet
        invalid = page.locator('[data-node-id="agent_task_1"].invalid')
        await invalid.wait_for()
        assert "agent_task_1: prompt:" in await page.locator("#errors").inner_text()

        await page.get_by_test_id("node-agent_task_1").click()
        await page.locator('#node-form textarea[name="prompt"]').fill("Write a README guide about bees")
        await page.locator('#node-form input[name="agent_id"]').fill("technical_writer")
        await page.get_by_role("button", name="Save").click()
        await page.get_by_text("Saved version 1.").wait_for()
        assert await page.locator("g.node.invalid").count() == 0

        await page.get_by_role("button", name="Run").click()
        for node_id in ("agent_task_1", "output_1"):
            await page.locator(f'[data-node-id="{node_id}"][data-status="succeeded"]').wait_for(
                timeout=15_000
            )
        await page.locator('[data-testid="run-status"][data-status="succeeded"]').wait_for()
        assert "answer to: Write a README guide about bees" in await page.locator("#run-result").inner_text()

        [summary] = (await client.get("/workflows")).json()["items"]
        [run] = (await client.get(f"/workflows/{summary['id']}/runs")).json()["items"]
        assert run["status"] == "succeeded" and [n["status"] for n in run["nodes"]] == [
            "succeeded",
            "succeeded",
        ]

        await page.get_by_role("button", name="Export").click()
        await page.locator("#export-code", has_text="/assign-task").wait_for()
        await page.screenshot(path=str(tmp_path / "builder.png"))
        if SCREENSHOT:
            await page.locator("#export-section").evaluate("e => e.hidden = true")
            await page.screenshot(path=SCREENSHOT)
        assert errors == []


async def test_with_authentication_the_builder_logs_in_and_streams_with_the_token(
    settings, provider, browser
):
    from test_auth import PASSWORD, add_user, bearer, with_auth
    from test_workflows_api import branching_workflow

    async with served(with_auth(settings), provider) as client:
        await add_user(client, "builder", "operator")
        headers = await bearer(client, "builder")
        created = (await client.post("/workflows", json=branching_workflow(), headers=headers)).json()

        page = await browser.new_page(viewport={"width": 1400, "height": 800})
        frames: list[str] = []
        page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(str(payload))))
        await page.goto(f"{client.base_url}/workflows/builder")
        await page.locator("#login").wait_for()
        await page.get_by_label("Username").fill("builder")
        await page.get_by_label("Password").fill("wrong password")
        await page.get_by_role("button", name="Log in").click()
        await page.locator("#login-error", has_text="Wrong username or password").wait_for()
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await page.locator('#palette li[data-type="agent_task"]').wait_for()
        assert await page.evaluate("sessionStorage.getItem('alp.workflows.token')")

        await page.locator("#workflow-list").select_option(created["id"])
        await page.locator('[data-node-id="draft"]').wait_for()
        await page.locator('#run-form input[name="topic"]').fill("bees")
        await page.get_by_role("button", name="Run").click()
        await page.locator('[data-testid="run-status"][data-status="succeeded"]').wait_for(timeout=15_000)
        for node_id, status in (("draft", "succeeded"), ("approve", "succeeded"), ("reject", "skipped")):
            assert await page.locator(f'[data-node-id="{node_id}"]').get_attribute("data-status") == status
        assert any("workflow.node.finished" in frame for frame in frames), "statuses came over the WebSocket"
