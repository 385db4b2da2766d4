"""Every documented example runs: each ```bash (or sh, shell) and ```python block of the README, of
CONTRIBUTING.md and of every page of docs/ is run, page by page in the site's order (the nav of mkdocs.yml),
against a running platform (a real server process: every service, real embeddings, the tests' scripted chat
model), and fails the test when a command fails — curl included, which is made to fail on an HTTP error.

The convention (also in docs/extend/testing.md). A block runs as written, with `localhost:8000` and
`127.0.0.1:8000` pointing at the test's server, `ALP_URL` set for the CLI, `.venv/bin/` on the PATH, in an
empty working directory: a block that needs a file or an id makes it itself
(`TASK=$(curl … | jq -r .task_id)`). `curl -N` (a stream) is read for a few seconds. An HTML comment on the
line before the fence changes that:

    <!-- readme-test: auth -->            run against a platform with authentication on, whose admin `root`
                                           has the password given on the block's standard input
    <!-- readme-test: skip REASON -->     not run (it installs, starts a server, or runs for minutes);
                                           only its syntax is checked. The reason is required.
    <!-- deploy-guide: NAME -->           a block of the deploy guide, run by tests/deploy/test_deploy.py or
                                           tests/deploy/test_multihost.py; here only its syntax is checked.
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from support import Cluster, free_port, suite_conftest

from agent_lightning.core.db import Database

BACKEND, _create_pg_database = suite_conftest().BACKEND, suite_conftest()._create_pg_database

ROOT = Path(__file__).resolve().parents[2]
SERVICES = "auth,orchestrator,execution,models,knowledge,memory,validation,monitoring,workflows"
SHELLS = {"bash", "sh", "shell"}
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
MARKER = re.compile(r"^\s*<!--\s*readme-test:\s*(\w+)\s*(.*?)\s*-->\s*$")
DEPLOY_GUIDE = re.compile(r"^\s*<!--\s*deploy-guide:\s*(\w+)\s*-->\s*$")
HOST = re.compile(r"\b(?:localhost|127\.0\.0\.1):8000\b")
ROOT_PASSWORD = secrets.token_urlsafe(18)

CURL = r"""
set -euo pipefail
curl() {  # as in the README, but an HTTP error fails the block; a stream (-N) is read for a few seconds
  local arg
  for arg in "$@"; do
    if [[ $arg == -N ]]; then command curl --max-time 3 "$@" || [[ $? == 28 ]]; return; fi
  done
  command curl --fail-with-body --max-time 120 "$@"
}
"""


@dataclass(frozen=True)
class Example:
    page: str
    line: int
    language: str
    code: str
    mode: str  # run, auth or skip
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.page}:{self.line}"


def site_pages() -> list[str]:
    """The pages of the documentation site in the order of its nav (mkdocs.yml), as files of the repo."""

    hooks = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(hooks)
    hooks.loader.exec_module(module)
    repo_of = {site: repo for repo, site in module.PAGES.items()}  # the README is the site's index.md

    def walk(entry) -> list[str]:
        if isinstance(entry, str):
            return [repo_of.get(entry, f"docs/{entry}")]
        if isinstance(entry, list):
            return [path for item in entry for path in walk(item)]
        return [path for value in entry.values() for path in walk(value)]

    return walk(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])


def examples(text: str, page: str = "README.md") -> list[Example]:
    """The runnable blocks of a Markdown text, each with the marker on the line before its fence."""
    found: list[Example] = []
    lines = text.splitlines()
    number = 0
    while number < len(lines):
        fence = FENCE.match(lines[number])
        if not fence:
            number += 1
            continue
        indent, language = fence.group(1), fence.group(2).lower()
        end = number + 1
        while end < len(lines) and not re.match(rf"^{indent}```\s*$", lines[end]):
            end += 1
        if language in SHELLS or language == "python":
            previous = next((lines[i] for i in range(number - 1, -1, -1) if lines[i].strip()), "")
            marker, guide = MARKER.match(previous), DEPLOY_GUIDE.match(previous)
            mode, reason = (marker.group(1), marker.group(2)) if marker else ("run", "")
            if guide:
                mode, reason = (
                    "skip",
                    f"deploy guide block {guide.group(1)}, run by test_deploy or test_multihost",
                )
            code = "\n".join(line[len(indent) :] for line in lines[number + 1 : end])
            language = "python" if language == "python" else "bash"
            found.append(Example(page, number + 1, language, code, mode, reason))
        number = end + 1
    return found


EXAMPLES = [example for page in site_pages() for example in examples((ROOT / page).read_text(), page)]


async def _platform(tmp_path: Path, **env: str):
    if BACKEND == "postgres":
        url, drop = await _create_pg_database()
    else:
        url, drop = f"sqlite+aiosqlite:///{tmp_path / 'alp.db'}", None
    db = Database(url)
    await db.upgrade()
    await db.close()
    cluster = Cluster(url)
    return cluster, drop


@pytest.fixture(scope="module")
async def platform(tmp_path_factory):
    """The platform the examples talk to: every service in one server process, authentication off."""
    tmp_path = tmp_path_factory.mktemp("readme")
    cluster, drop = await _platform(tmp_path)
    url = cluster.start(
        "readme",
        SERVICES,
        free_port(),
        start_timeout_s=120,
        ALP_DATA_DIR=str(tmp_path),
        ALP_RATE_LIMIT="0",
        SPLIT_MODELS="quoting",
        SCRIPTED_DELAY_S="1",
    )
    yield url
    cluster.stop_all()
    if drop:
        await drop()


@pytest.fixture(scope="module")
async def auth_platform(tmp_path_factory):
    """The same with authentication on and an admin `root` (created as docs/operate/security.md says,
    `alp users create root --role platform_admin`)."""
    tmp_path = tmp_path_factory.mktemp("readme-auth")
    cluster, drop = await _platform(tmp_path)
    env = {"ALP_AUTH_ENABLED": "true", "ALP_AUTH_SECRET": secrets.token_urlsafe(48)}
    created = subprocess.run(
        [
            str(Path(sys.executable).parent / "alp"),
            "users",
            "create",
            "root",
            "--role",
            "platform_admin",
            "--password-stdin",
        ],
        input=ROOT_PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env, "ALP_DATABASE_URL": cluster.database_url},
    )
    assert created.returncode == 0, created.stdout + created.stderr
    url = cluster.start(
        "readme-auth",
        SERVICES,
        free_port(),
        start_timeout_s=120,
        ALP_DATA_DIR=str(tmp_path),
        ALP_RATE_LIMIT="0",
        SPLIT_MODELS="quoting",
        SCRIPTED_DELAY_S="1",
        **env,
    )
    yield url
    cluster.stop_all()
    if drop:
        await drop()


def run(example: Example, url: str, workdir: Path, stdin: str = "") -> subprocess.CompletedProcess:
    """Run one example in `workdir` against the server at `url`."""
    (workdir / ".venv").symlink_to(sys.prefix, target_is_directory=True)  # `.venv/bin/alp` as in the README
    code = HOST.sub(url.removeprefix("http://"), example.code)
    environ = {key: value for key, value in os.environ.items() if not key.startswith("ALP_")}
    environ.update(
        ALP_URL=url, HF_HUB_OFFLINE="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{environ['PATH']}"
    )
    command = ["bash", "-c", CURL + code] if example.language == "bash" else [sys.executable, "-c", code]
    return subprocess.run(
        command, input=stdin, capture_output=True, text=True, cwd=workdir, env=environ, timeout=300
    )


@pytest.mark.parametrize("example", EXAMPLES, ids=str)
def test_readme_example(example: Example, request, tmp_path):
    if example.mode == "skip":
        assert example.reason, f"{example}: say why the block is skipped: <!-- readme-test: skip REASON -->"
        check = (
            ["bash", "-n", "-c", example.code]
            if example.language == "bash"
            else [sys.executable, "-c", f"compile({example.code!r}, {str(example)!r}, 'exec')"]
        )
        result = subprocess.run(check, capture_output=True, text=True)
        assert result.returncode == 0, f"{example} does not parse:\n{result.stderr}"
        return
    assert example.mode in ("run", "auth"), f"{example}: unknown marker 'readme-test: {example.mode}'"
    url = request.getfixturevalue("auth_platform" if example.mode == "auth" else "platform")
    result = run(example, url, tmp_path, stdin=ROOT_PASSWORD + "\n" if example.mode == "auth" else "")
    assert result.returncode == 0, (
        f"{example} failed (exit {result.returncode}):\n{example.code}\n--- stdout "
        f"---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
    )


def test_the_extraction_finds_blocks_and_markers():
    text = "\n".join(
        [
            "Intro",
            "```bash",
            "curl -s localhost:8000/health",
            "```",
            "",
            "<!-- readme-test: skip starts a server -->",
            "",
            "```sh",
            "alp up",
            "```",
            "<!-- readme-test: auth -->",
            "```python",
            "print(1)",
            "```",
            "```json",
            '{"not": "run"}',
            "```",
            "- a list item:",
            "  ```bash",
            "  curl -s localhost:8000/tasks",
            "  ```",
            "<!-- deploy-guide: backup -->",
            "```bash",
            "alp db backup backups/alp.tar",
            "```",
        ]
    )
    found = examples(text, "docs/x.md")
    assert [(str(e), e.language, e.mode, e.reason, e.code) for e in found] == [
        ("docs/x.md:2", "bash", "run", "", "curl -s localhost:8000/health"),
        ("docs/x.md:8", "bash", "skip", "starts a server", "alp up"),
        ("docs/x.md:12", "python", "auth", "", "print(1)"),
        ("docs/x.md:19", "bash", "run", "", "curl -s localhost:8000/tasks"),
        (
            "docs/x.md:23",
            "bash",
            "skip",
            "deploy guide block backup, run by test_deploy or test_multihost",
            "alp db backup backups/alp.tar",
        ),
    ]
    assert len(EXAMPLES) >= 10  # the documentation's own blocks are found


def test_every_page_of_docs_is_in_the_site_and_so_has_its_examples_run():
    pages = site_pages()
    assert pages[0] == "README.md" and len(pages) == len(set(pages))
    assert all((ROOT / page).is_file() for page in pages), [
        page for page in pages if not (ROOT / page).is_file()
    ]
    markdown = {str(path.relative_to(ROOT)) for path in (ROOT / "docs").rglob("*.md")}
    assert markdown <= set(pages), (
        f"pages missing from the nav of mkdocs.yml: {sorted(markdown - set(pages))}"
    )
