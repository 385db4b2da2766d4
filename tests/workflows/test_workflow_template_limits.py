"""Template work is bounded (issue 13): `{{ 'a' * 1000000000 }}` grew the server to 4.5 GB RSS.

A real server process runs workflows whose templates and conditions try to build huge values in every way the
Jinja2 sandbox allows (operators, filters, string methods, formatting, doubling in a loop, nested loops,
slices, macros, compile-time folding). Each run fails with a clear `template_limit_exceeded` error, the
server's peak RSS (VmHWM in /proc) grows by less than 100 MB, and the server still serves.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from support import free_port
from test_workflows_api import edge, node

from agent_lightning.app import SERVICES
from agent_lightning.core.config import Settings
from agent_lightning.workflows.sandbox import Limits, TemplateLimitExceeded, TemplateSandbox

MB = 1024 * 1024
BIG = "'a' * 100000"
BOMBS = {
    "repeat": "{{ 'a' * 1000000000 }}",
    "repeat_list": "{{ ([1] * 1000000000)|length }}",
    "concat_lists": "{% set x = range(100000)|list %}{{ (x + x + x + x + x + x + x + x + x + x + x + "
    "x)|length }}",
    "center": "{{ 'a'|center(1000000000) }}",
    "method": "{{ 'a'.ljust(1000000000) }}",
    "replace": f"{{{{ ({BIG})|replace('a', {BIG}) }}}}",
    "method_replace": f"{{{{ ({BIG}).replace('a', {BIG}) }}}}",
    "join": f"{{{{ ({BIG})|join({BIG}) }}}}",
    "format": "{{ '{:>1000000000}'.format('a') }}",
    "printf": "{{ '%1000000000s' % 'a' }}",
    "printf_filter": "{{ '%1000000000s'|format('a') }}",
    "power": "{{ (10 ** 100000) ** 100000 }}",
    "doubling": "{% set ns = namespace(x='a') %}{% for i in range(40) %}{% set ns.x = ns.x ~ ns.x %}{% "
    "endfor %}{{ ns.x|length }}",
    "nested_loops": "{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxx{% endfor %}{% endfor "
    "%}",
    "macro": "{% macro m() %}{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor "
    "%}{% endmacro %}{{ m()|length }}",
    "slices": f"{{% set x = {BIG} %}}{{{{ [" + ", ".join(f"x[{i}:]" for i in range(2000)) + "]|length }}",
    "to_string": f"{{% set x = [{BIG}] * 5000 %}}{{{{ x|string|length }}}}",
    "indent": f"{{{{ ('\\n' * 50000)|indent({BIG}) }}}}",
}


def rss(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak) of a process, in bytes."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return {key: int(fields[key].split()[0]) * 1024 for key in ("VmRSS", "VmHWM")}


def workflow(name: str, template: str, kind: str = "transform") -> dict:
    config = {"template": template} if kind == "transform" else {"prompt": template}
    return {
        "name": name,
        "graph": {
            "nodes": [
                node("start", "input", fields=[{"name": "topic", "required": False}]),
                node("work", kind, **config),
                node("out", "output"),
            ],
            "edges": [edge("start", "work"), edge("work", "out")],
        },
    }


def run(client: httpx.Client, body: dict, timeout: float = 60) -> dict:
    created = client.post("/workflows", json=body)
    assert created.status_code == 201, created.text
    run_id = client.post(f"/workflows/{created.json()['id']}/runs", json={"inputs": {}}).json()["run_id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.get(f"/workflows/runs/{run_id}").json()
        if state["status"] in ("succeeded", "failed", "cancelled"):
            return state
        time.sleep(0.1)
    raise AssertionError(f"run of {body['name']} did not finish")


@pytest.mark.slow
def test_template_bombs_fail_the_run_and_the_server_stays_within_100_mb(cluster):
    url = cluster.start("platform", ",".join(SERVICES), free_port())
    pid = cluster.processes["platform"].pid
    with httpx.Client(base_url=url, timeout=60) as client:
        warm = run(client, workflow("warm-up", "{% for i in range(1000) %}{{ i }}{% endfor %}"))
        assert warm["status"] == "succeeded", warm
        before = rss(pid)
        for name, template in [*BOMBS.items(), ("prompt", BOMBS["repeat"]), ("condition", None)]:
            if name == "condition":
                body = workflow(name, "{{ inputs.topic }}")
                body["graph"]["nodes"].insert(
                    1, node("gate", "condition", expression="('a' * 1000000000) == 'b'")
                )
                body["graph"]["edges"] = [
                    edge("start", "gate"),
                    edge("gate", "work", "true"),
                    edge("work", "out"),
                ]
            else:
                body = workflow(name, template, "agent_task" if name == "prompt" else "transform")
            state = run(client, body)
            assert state["status"] == "failed", (name, state)
            assert "template_limit_exceeded" in state["error"], (name, state["error"])
            grown = rss(pid)["VmHWM"] - before["VmHWM"]
            assert grown < 100 * MB, f"{name}: peak RSS grew by {grown / MB:.0f} MB"
        assert client.get("/health").status_code == 200
        assert run(client, warm_body := workflow("after", "{{ 'ok' * 3 }}"))["outputs"] == {
            "out": "okokok"
        }, warm_body


# -- the sandbox on its own: each limit and its message ------------------------------------------------------


def sandbox(**limits) -> TemplateSandbox:
    return TemplateSandbox(Limits(**{"max_chars": 1000, "max_steps": 10_000, "timeout_s": 5.0, **limits}))


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_each_bomb_is_refused_by_a_limit(name):
    with pytest.raises(TemplateLimitExceeded):
        sandbox().render(BOMBS[name], {"inputs": {}, "nodes": {}})


def test_limits_name_the_setting_and_ordinary_templates_render():
    box = sandbox()
    context = {"inputs": {"topic": "bees"}, "nodes": {"a": {"output": "x" * 900, "status": "succeeded"}}}
    assert (
        box.render("{{ inputs.topic|upper }} {{ 'ab' * 3 }} {{ nodes.a.output|length }}", context)
        == "BEES ababab 900"
    )
    assert box.render("{% for w in ['a', 'b'] %}{{ loop.index }}{{ w }}{% endfor %}", context) == "1a2b"
    assert (
        box.render("{{ '{:>5}'.format(inputs.topic) }}|{{ '%-5s' % 'x' }}|{{ nodes.a.output[:3] }}", context)
        == " bees|x    |xxx"
    )
    assert box.evaluate("'bee' in inputs.topic", context) is True
    with pytest.raises(TemplateLimitExceeded, match="ALP_WORKFLOW_TEMPLATE_MAX_CHARS"):
        box.render("{{ nodes.a.output ~ nodes.a.output }}", context)
    with pytest.raises(TemplateLimitExceeded, match="ALP_WORKFLOW_TEMPLATE_MAX_STEPS"):
        box.render("{% for i in range(100000) %}{% endfor %}", context)
    with pytest.raises(TemplateLimitExceeded, match="ALP_WORKFLOW_TEMPLATE_TIMEOUT_S"):
        sandbox(max_steps=10**9, timeout_s=0.05).render(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", context
        )


def test_settings_carry_the_limits():
    settings = Settings(
        _env_file=None,
        workflow_template_max_chars=5000,
        workflow_template_timeout_s=1.5,
        workflow_template_max_steps=700,
    )
    assert Limits.from_settings(settings) == Limits(max_chars=5000, max_steps=700, timeout_s=1.5)
