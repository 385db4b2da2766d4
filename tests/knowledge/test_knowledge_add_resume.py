"""`alp knowledge add DIR` against a write rate limit: it waits as the server's Retry-After says, sends
batches in parallel, and sends only what the server does not hold, so an interrupted run continues and a rerun
sends nothing (it stopped at the 121st file and started over before)."""

from __future__ import annotations

import re

import httpx
import pytest
from platform_process import alp_cli
from support import free_port

pytestmark = pytest.mark.slow

FILES = 150


def _summary(output: str) -> tuple[int, int, int, int]:
    found = re.search(r"(\d+) documents, (\d+) new chunks \((\d+) sent, (\d+) stored already\)", output)
    assert found, output
    return tuple(int(n) for n in found.groups())


def test_a_folder_under_a_low_write_limit_is_stored_whole_and_a_rerun_sends_nothing(cluster, tmp_path):
    # Batches of at most 4 KiB (about a dozen of these files) against 3 writes per 2 seconds: refused with 429
    # and a Retry-After many times on the way.
    url = cluster.start(
        "knowledge",
        "knowledge",
        free_port(),
        SPLIT_MODELS="quoting",
        ALP_RATE_LIMIT_WRITE="3/2 seconds",
        ALP_MAX_BODY_BYTES="4096",
    )
    docs = tmp_path / "docs"
    docs.mkdir()
    for n in range(FILES):
        (docs / f"runbook-{n:03d}.md").write_text(
            f"# Runbook {n}\n\nWhen queue {n} backs up, drain worker pool {n % 7} and restart shard {n}.\n"
        )
    env = {"ALP_MAX_BODY_BYTES": "4096"}  # the client reads the server's body limit from the same setting

    first_part = sorted(docs.iterdir())[:60]  # a run that stopped after 60 files
    done = alp_cli("knowledge", "add", *map(str, first_part), "--url", url, **env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _summary(done.stdout) == (60, 60, 60, 0)

    done = alp_cli("knowledge", "add", str(docs), "--concurrency", "3", "--url", url, **env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _summary(done.stdout) == (FILES, FILES - 60, FILES - 60, 60)
    assert "429 from /knowledge/items/batch: waiting" in done.stderr  # the limit was met, and waited out
    assert httpx.get(f"{url}/knowledge/stats").json()["items"] == FILES

    again = alp_cli("knowledge", "add", str(docs), "--concurrency", "3", "--url", url, **env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert _summary(again.stdout) == (FILES, 0, 0, FILES)
    assert httpx.get(f"{url}/knowledge/stats").json()["items"] == FILES
    found = httpx.post(f"{url}/knowledge/search", json={"query": "queue 137 backs up", "k": 3}).json()["hits"]
    assert any("Runbook 137" in hit["title"] for hit in found), found


def test_the_fingerprint_query_is_bounded_and_checked(cluster):
    url = cluster.start("knowledge", "knowledge", free_port(), SPLIT_MODELS="quoting")
    bad = httpx.get(f"{url}/knowledge/items/known", params={"hash": "not-hex"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"
    many = httpx.get(f"{url}/knowledge/items/known", params={"hash": ["0" * 64] * 101})
    assert many.status_code == 422
    none = httpx.get(f"{url}/knowledge/items/known", params={"hash": ["a" * 64]})
    assert none.status_code == 200 and none.json() == {"known": []}
