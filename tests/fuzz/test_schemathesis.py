"""Every operation of the OpenAPI schema fuzzed by schemathesis against a real `alp up` (the whole platform in
one process, on the backend under test), with authentication off and again on as a tenant's admin. Any 5xx,
any status code an operation does not document and any response body unlike its schema fails the test. The
run is bounded by tests/fuzz/schemathesis.toml (a fixed seed, a fixed number of requests per operation);
the model behind `local` is a fake OpenAI upstream that answers at once: tasks finish."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import ALP, free_port, start_alp, wait_healthy

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("ALP_TEST_FUZZ") != "1",
        reason="the fuzz run (minutes) is a step of its own: ALP_TEST_FUZZ=1 python -m pytest -q tests/fuzz",
    ),
]

CONFIG = Path(__file__).with_name("schemathesis.toml")
FAKE_MODEL = Path(__file__).parents[2] / "benchmarks" / "gateway" / "fake_upstream.py"
SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
SECRET = "fuzz-secret-" + "x" * 40
TENANT, ADMIN, PASSWORD = "acme", "fuzz-admin", "violet harbour compass 77"


@pytest.fixture
def fake_model() -> Iterator[str]:
    """An OpenAI-compatible model answering every chat with "ok" (no tool call), as a process of its own."""
    port = free_port()
    process = subprocess.Popen([sys.executable, str(FAKE_MODEL), str(port)])
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None and time.monotonic() < deadline, "the fake model did not start"
            try:
                httpx.post(f"{url}/chat/completions", json={}, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.parametrize("auth", ["auth-off", "auth-on"])
def test_no_operation_answers_a_5xx_or_outside_its_schema(
    auth: str, database_url: str, fake_model: str, tmp_path: Path
) -> None:
    models = tmp_path / "models.json"
    deployment = {
        "provider": "openai-compatible",
        "model": "fuzz",
        "base_url": fake_model,
        "api_key": "sk-test",
    }
    models.write_text(json.dumps([{"id": "local", "deployments": [deployment]}]))
    env = {
        "ALP_DATABASE_URL": database_url,
        "ALP_DATA_DIR": str(tmp_path / "data"),
        "ALP_MODELS_FILE": str(models),
        "ALP_RATE_LIMIT": "",  # the fuzzer sends thousands of requests a minute from one address
        "ALP_RATE_LIMIT_WRITE": "",
        "ALP_SHUTDOWN_GRACE_S": "0",
    }
    if auth == "auth-on":
        env |= {"ALP_AUTH_ENABLED": "true", "ALP_AUTH_SECRET": SECRET}
    port, log = free_port(), tmp_path / "alp.log"
    url = f"http://127.0.0.1:{port}"
    process = start_alp("up", "--port", str(port), env=env, log=log)
    try:
        wait_healthy(url, process, log)
        headers: list[str] = []
        if auth == "auth-on":  # the first admin of a tenant, as the README creates one
            created = subprocess.run(
                [ALP, "users", "create", ADMIN, "--role", "admin", "--tenant", TENANT, "--password-stdin"],
                input=PASSWORD,
                env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert created.returncode == 0, created.stdout + created.stderr
            login = {"username": ADMIN, "password": PASSWORD, "tenant": TENANT}
            token = httpx.post(f"{url}/auth/token", data=login)
            assert token.status_code == 200, token.text
            headers = ["--header", f"Authorization: Bearer {token.json()['access_token']}"]
        report = tmp_path / "schemathesis.txt"
        with report.open("w") as out:
            run = subprocess.run(
                [SCHEMATHESIS, "--config-file", str(CONFIG), "run", f"{url}/openapi.json", *headers],
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=600,
            )
        assert run.returncode == 0, (
            f"schemathesis found problems ({report}):\n{_findings(report.read_text())}"
        )
        assert process.poll() is None, f"alp up exited:\n{log.read_text()[-3000:]}"
    finally:
        process.terminate()
        process.wait(30)


def _findings(output: str) -> str:
    """The failures and errors of a schemathesis report and its summary, without the warnings between them."""
    starts = [at for at in (output.find("= FAILURES ="), output.find("= ERRORS =")) if at >= 0]
    start = min(starts, default=0)
    warnings, summary = output.find("= WARNINGS =", start), output.find("= SUMMARY =", start)
    findings = output[start : warnings if warnings > 0 else summary if summary > 0 else None]
    return findings[:25000] + (output[summary:] if summary > 0 else "")
