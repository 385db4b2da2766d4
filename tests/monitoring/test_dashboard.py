"""The dashboard in a real browser (Playwright driving Debian's chromium, headless) against the platform
under uvicorn: submit a task through the form and watch it reach `succeeded` live over the WebSocket
without reloading, give a thumbs up, see an alert fire when the model fails, and log in as a viewer who
gets no submit form. Skipped only when /usr/bin/chromium is absent (CI installs it).

Set ALP_DASHBOARD_SCREENSHOT=path to save a screenshot of the page at the end (docs/dashboard.png)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr
from support import served

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium; .ci/run installs it)",
)

WEB_TASK = "Build a responsive landing page with HTML, CSS and a JavaScript contact form"
TIMEOUT_MS = 15_000


@pytest.fixture(autouse=True)
def quick_failures(monkeypatch):
    monkeypatch.setenv("ALP_MODEL_RETRIES", "0")
    monkeypatch.setenv("ALP_MODEL_COOLDOWN_FAILURES", "1000")


@pytest.fixture
async def browser():
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
def dashboard_settings(settings):
    return settings.model_copy(
        update={
            "alert_interval_s": 0,
            "alert_min_tasks": 2,
            "alert_window": 5,
            "alert_failure_rate": 0.6,
            "max_attempts": 1,
        }
    )


async def test_submit_watch_live_give_feedback_and_see_an_alert(dashboard_settings, provider, browser):
    async with served(dashboard_settings, provider) as client:
        page = await browser.new_page(viewport={"width": 1400, "height": 1100})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"{client.base_url}/dashboard")
        await page.wait_for_selector("body[data-ready=true]", timeout=TIMEOUT_MS)
        await page.wait_for_selector("#live.on", timeout=TIMEOUT_MS)  # the WebSocket is open
        await page.evaluate("window.loadedOnce = true")  # gone if the page reloads
        assert await page.locator("#health span.ok", has_text="database").count() == 1

        # Submit through the form; the model takes a moment, so the task is not finished when the form
        # returns.
        provider.delay_s = 0.5
        await page.fill("#submit-form textarea[name=description]", WEB_TASK)
        await page.select_option("#submit-form select[name=agent_id]", "full_stack_developer")
        await page.fill("#submit-form input[name=priority]", "7")
        await page.click("#submit-form button[type=submit]")
        await page.wait_for_selector("#submit-result:has-text('full_stack_developer')", timeout=TIMEOUT_MS)
        row = page.locator("#tasks tbody tr").first
        task_id = await row.get_attribute("data-task")
        assert task_id and task_id.startswith((await page.text_content("#submit-result"))[5:13])
        await page.wait_for_selector(
            f"#tasks tr[data-task='{task_id}'] td[data-status=succeeded]", timeout=TIMEOUT_MS
        )
        assert await page.evaluate("window.loadedOnce") is True  # updated live, not reloaded
        assert await page.locator("#feed li[data-type='task.succeeded']").count() >= 1
        task = (await client.get(f"/tasks/{task_id}")).json()
        assert (
            task["status"] == "succeeded"
            and task["priority"] == 7
            and task["assigned_agent"] == "full_stack_developer"
        )

        # The detail shows the answer; thumbs up stores a feedback reward of 1.
        await page.wait_for_selector("#detail-status:has-text('succeeded')", timeout=TIMEOUT_MS)
        assert "answer to:" in await page.text_content("#detail-body pre.result")
        # and the agent run's steps (here one model call), from GET /api/v2/actions/{task_id}
        await page.wait_for_selector(
            "#detail-body table.steps tr[data-step='1'][data-kind=model]", timeout=TIMEOUT_MS
        )
        await page.click("#detail-body button[data-feedback=up]")
        await page.wait_for_selector("#detail-body tr[data-reward=feedback]", timeout=TIMEOUT_MS)
        rewards = (await client.get(f"/tasks/{task_id}")).json()["rewards"]
        assert [(r["source"], r["reward"]) for r in rewards if r["source"] == "feedback"] == [
            ("feedback", 1.0)
        ]
        await page.wait_for_selector("#agents tr[data-agent=full_stack_developer]", timeout=TIMEOUT_MS)

        # The model fails: two failed tasks of three finished is over the 60 % failure rate (one of two is
        # not).
        provider.delay_s = 0
        provider.failures = 1000  # every call (the feedback's knowledge learning may ask the model too)
        for _ in range(2):
            await page.fill("#submit-form textarea[name=description]", WEB_TASK + " (again)")
            await page.click("#submit-form button[type=submit]")
            await page.wait_for_function(
                "document.querySelector('#tasks tbody tr td[data-status]').dataset.status === 'failed'",
                timeout=TIMEOUT_MS,
            )
        await page.wait_for_function(
            "document.querySelectorAll('#tasks td[data-status=failed]').length == 2", timeout=TIMEOUT_MS
        )
        alert = page.locator("#alerts li[data-alert=failure_rate]")
        await alert.wait_for(timeout=TIMEOUT_MS)
        assert "2 of the last 3 finished tasks failed" in await alert.text_content()
        assert await page.locator("#feed li[data-type='alert.firing']").count() == 1
        # Tiles, agents and the policy follow the events too.
        await page.wait_for_selector("[data-tile=failed] .value:text-is('2')", timeout=TIMEOUT_MS)
        await page.wait_for_selector("[data-tile=alerts] .value:text-is('1')", timeout=TIMEOUT_MS)
        await page.wait_for_selector(
            "#agents tr[data-agent=full_stack_developer] td:nth-child(7):text-is('1')", timeout=TIMEOUT_MS
        )  # one feedback
        await page.wait_for_selector(
            "#policy tbody tr td:text-is('full_stack_developer')", timeout=TIMEOUT_MS
        )
        assert await page.evaluate("window.loadedOnce") is True
        assert errors == []

        if shot := os.environ.get("ALP_DASHBOARD_SCREENSHOT"):
            await page.click(f"#tasks tr[data-task='{task_id}']")
            await page.wait_for_selector("#detail-status:has-text('succeeded')", timeout=TIMEOUT_MS)
            await page.screenshot(path=shot, full_page=True)


async def test_login_as_viewer_shows_no_submit_form(dashboard_settings, provider, browser):
    secured = dashboard_settings.model_copy(update={"auth_enabled": True, "auth_secret": SecretStr("s" * 48)})
    async with served(secured, provider) as client:
        await client.app.state.auth.create_user("watcher", "correct horse battery", "viewer")
        page = await browser.new_page()
        await page.goto(f"{client.base_url}/dashboard")
        await page.wait_for_selector("#login:not([hidden])", timeout=TIMEOUT_MS)
        await page.fill("#login-form input[name=username]", "watcher")
        await page.fill("#login-form input[name=password]", "wrong password")
        await page.click("#login-form button[type=submit]")
        await page.wait_for_selector("#login-error:has-text('Wrong user or password')", timeout=TIMEOUT_MS)
        await page.fill("#login-form input[name=password]", "correct horse battery")
        await page.click("#login-form button[type=submit]")
        await page.wait_for_selector("body[data-ready=true]", timeout=TIMEOUT_MS)
        await page.wait_for_selector("#live.on", timeout=TIMEOUT_MS)  # the WebSocket took ?token=
        assert await page.is_hidden("#submit-panel")
        assert "viewer" in await page.text_content("#whoami")
        assert await page.evaluate("sessionStorage.getItem('alp.token')")
        await page.reload()  # the token survives in the tab's sessionStorage
        await page.wait_for_selector("body[data-ready=true]", timeout=TIMEOUT_MS)
        await page.click("#logout")
        await page.wait_for_selector("#login:not([hidden])", timeout=TIMEOUT_MS)
        assert await page.evaluate("sessionStorage.getItem('alp.token')") is None
