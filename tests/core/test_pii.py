"""PII masking (core/pii.py): each kind, what must stay, the log processor on the real JSON output, and
prompts to external providers (a real openai-compatible upstream over HTTP)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import httpx
import pytest

from agent_lightning.app import create_app
from agent_lightning.core.logging import configure_logging, get_logger
from agent_lightning.core.pii import find_pii, mask_pii

sys.path.insert(0, str(Path(__file__).parents[1] / "models"))
from upstream import FakeUpstream


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("write to ada.lovelace+work@example.co.uk today", "write to [EMAIL] today"),
        ("call +44 20 7946 0958 or (415) 555-2671", "call [PHONE] or [PHONE]"),
        ("client 203.0.113.7 and 2001:db8::8a2e:370:7334", "client [IP] and [IP]"),
        ("card 4111 1111 1111 1111, or 5500-0000-0000-0004", "card [CARD], or [CARD]"),
        ("IBAN DE89 3704 0044 0532 0130 00 and GB82WEST12345698765432", "IBAN [IBAN] and [IBAN]"),
        ("Name: Ada Lovelace; my name is Grace Hopper", "Name: [NAME]; my name is [NAME]"),
    ],
)
def test_each_kind_is_masked(text, masked):
    assert mask_pii(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "Write a Python function that checks whether a string is a palindrome",
        "Security Expert and Full Stack Developer reviewed the Kubernetes Deployment",  # no name is marked
        "listen on 127.0.0.1:8000 and 0.0.0.0",  # loopback and unspecified are nobody's
        "order 4111111111111112 failed",  # not a Luhn number
        "IBAN DE89 3704 0044 0532 0130 01",  # wrong checksum
        "released at 2026-12-02T01:10:00Z, build 1706d92, port 8025",
        "name: security_expert",  # not a person's name
    ],
)
def test_what_is_not_personal_stays(text):
    assert mask_pii(text) == text


def test_matches_have_kind_and_span():
    text = "mail bob@example.com, card 4111111111111111"
    matches = find_pii(text)
    assert [(m.kind, text[m.start : m.end]) for m in matches] == [
        ("email", "bob@example.com"),
        ("card", "4111111111111111"),
    ]


def _json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_logs_are_masked_in_the_real_json_output(capsys):
    configure_logging("INFO", json=True, mask_pii=True)
    get_logger("test").warning(
        "contact ada@example.com now",
        phone="+44 20 7946 0958",
        full_name="Ada Lovelace",
        nested={"ips": ["203.0.113.7"], "card": "4111 1111 1111 1111"},
        count=3,
    )
    [line] = [e for e in _json_lines(capsys.readouterr().out) if e.get("phone")]
    assert line["event"] == "contact [EMAIL] now"
    assert line["phone"] == "[PHONE]" and line["full_name"] == "[NAME]"
    assert line["nested"] == {"ips": ["[IP]"], "card": "[CARD]"} and line["count"] == 3
    configure_logging("INFO", json=True, mask_pii=False)
    get_logger("test").warning("contact ada@example.com now", marker=1)
    [line] = [e for e in _json_lines(capsys.readouterr().out) if e.get("marker")]
    assert line["event"] == "contact ada@example.com now"


async def test_the_platform_logs_no_pii_from_a_failing_task(settings, capsys):
    """An attempt that fails with an upstream message carrying an e-mail: the logged error is masked."""
    from scripted import ScriptedProvider
    from support import running_app, wait_for_status

    from agent_lightning.core.errors import Unavailable

    class Complaining(ScriptedProvider):
        async def chat(self, request, provider_model):
            raise Unavailable("quota exceeded, write to billing.owner@example.com or call +1 415 555 2671")

    settings = settings.model_copy(update={"max_attempts": 1})
    async with running_app(settings, Complaining()) as client:
        created = await client.post(
            "/assign-task", json={"description": "Summarise the quarterly report", "force_execute": True}
        )
        assert created.status_code == 200, created.text
        task = await wait_for_status(client, created.json()["task_id"])
    out = capsys.readouterr().out
    assert (
        task["status"] == "failed" and "billing.owner@example.com" in task["error"]
    )  # the task keeps its error
    failures = [e for e in _json_lines(out) if e.get("event") == "attempt_failed"]
    # (Not a bare "555": the event's random hex ids may contain it.)
    phone = ("+1 415 555 2671", "415 555 2671", "4155552671")
    assert failures and all(
        "example.com" not in json.dumps(e) and not any(p in json.dumps(e) for p in phone) for e in failures
    )
    assert "[EMAIL]" in failures[0]["error"] and "[PHONE]" in failures[0]["error"]


@pytest.fixture
def upstream():
    fake = FakeUpstream("openai-pii").start()
    yield fake
    fake.stop()


@pytest.mark.parametrize("mask", [True, False])
async def test_prompts_to_external_providers_are_masked_when_asked(settings, upstream, mask):
    settings = settings.model_copy(update={"pii_mask_providers": mask, "openai_api_key": None})
    app = create_app(settings, services=["models"])
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://alp") as client:
            created = await client.post(
                "/models",
                json={
                    "id": "external",
                    "deployments": [
                        {
                            "provider": "openai-compatible",
                            "model": "m1",
                            "base_url": f"{upstream.url}/v1",
                            "api_key": "sk-test-0123456789",
                        }
                    ],
                },
            )
            assert created.status_code == 201, created.text
            answer = await client.post(
                "/v1/chat/completions",
                json={
                    "model": "external",
                    "messages": [
                        {"role": "system", "content": "You help Name: Ada Lovelace."},
                        {
                            "role": "user",
                            "content": "Email ada@example.com the invoice, IBAN DE89 3704 0044 0532 0130 00",
                        },
                    ],
                },
            )
            assert answer.status_code == 200, answer.text
    sent = upstream.requests[-1]["messages"]
    if mask:
        assert sent[0]["content"] == "You help Name: [NAME]."
        assert sent[1]["content"] == "Email [EMAIL] the invoice, IBAN [IBAN]"
    else:
        assert "ada@example.com" in sent[1]["content"] and "Ada Lovelace" in sent[0]["content"]


def test_standard_library_records_are_masked_too(caplog):
    configure_logging("INFO", json=True, mask_pii=True)
    try:
        raise ValueError("bad address ada@example.com")
    except ValueError:
        logging.getLogger("uvicorn.error").exception(
            "client %s sent %r", "203.0.113.9", {"phone": "+44 20 7946 0958"}
        )
    [record] = [r for r in caplog.records if r.name == "uvicorn.error"]
    assert record.getMessage() == "client [IP] sent {'phone': '[PHONE]'}"
    assert "ValueError: bad address [EMAIL]" in caplog.text and "ada@example.com" not in caplog.text
