"""/docs and /redoc work with no network: their pages name only this server's assets (shipped in the
fastapi-offline package), those answer 200, and a real browser that may reach nothing but the server renders
the operations."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr
from support import running_app, served

CHROMIUM = Path("/usr/bin/chromium")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href", "spec-url") and value]


def _asset_urls(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    quoted = re.findall(r"""url:\s*['"]([^'"]+)['"]""", html)  # Swagger UI's spec URL, in its script
    return parser.urls + quoted


@pytest.mark.parametrize("auth", [False, True], ids=["auth-off", "auth-on"])
async def test_docs_pages_reference_only_local_assets_that_answer(settings, provider, auth):
    if auth:
        settings = settings.model_copy(update={"auth_enabled": True, "auth_secret": SecretStr("s" * 40)})
    async with running_app(settings, provider) as client:
        for page in ("/docs", "/redoc"):
            response = await client.get(page)
            assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
            assert "http://" not in response.text and "https://" not in response.text, page
            urls = _asset_urls(response.text)
            assert any(url.endswith(".js") for url in urls), urls
            for url in urls:
                parts = urlsplit(url)
                assert not parts.scheme and not parts.netloc and url.startswith("/"), url
                asset = await client.get(url)
                assert asset.status_code == 200 and len(asset.content) > 1000, (page, url, asset.status_code)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
async def test_a_browser_without_network_renders_the_docs(settings, provider):
    from playwright.async_api import async_playwright

    async with served(settings, provider) as client, async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = await browser.new_page()
            outside: list[str] = []

            async def only_the_server(route):
                if route.request.url.startswith(str(client.base_url)):
                    await route.continue_()
                else:
                    outside.append(route.request.url)
                    await route.abort()

            await page.route("**/*", only_the_server)
            await page.goto(f"{client.base_url}/docs")
            await page.wait_for_selector(".opblock-summary-path", timeout=30_000)  # operations listed
            assert await page.locator(".opblock").count() > 20
            await page.goto(f"{client.base_url}/redoc")
            await page.wait_for_selector("h2", timeout=30_000)
            assert await page.get_by_text("/assign-task").count() > 0
            # ReDoc's bundle links its "API docs by Redocly" logo from its CDN and hides the image when it
            # fails to load: the one outside request, harmless offline.
            assert set(outside) <= {"https://cdn.redoc.ly/redoc/logo-mini.svg"}, outside
        finally:
            await browser.close()
