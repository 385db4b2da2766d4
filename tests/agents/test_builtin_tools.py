"""The built-in tools in real runs: python in the bubblewrap sandbox, http_fetch through the outbound guard
against a real local HTTP server, and delegate as a real subtask of the orchestrator."""

from __future__ import annotations

import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from agentkit import make_agent
from embedded import embedded_app
from support import wait_for_status

needs_bwrap = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="bubblewrap (apt-get install bubblewrap) is missing"
)

PAGE = (
    b"<html><head><title>Pools</title><script>var x=1;</script></head><body><h1>Sizing</h1>"
    b"<p>Use <b>twice</b> the cores.</p></body></html>"
)


async def submit(client, description: str, agent_id: str, **fields) -> dict:
    response = await client.post(
        "/assign-task", json={"description": description, "agent_id": agent_id, **fields}
    )
    assert response.status_code == 200, response.text
    return await wait_for_status(client, response.json()["task_id"], timeout=60)


async def tool_steps(client, task_id: str) -> list[dict]:
    return [
        s for s in (await client.get(f"/api/v2/actions/{task_id}")).json()["steps"] if s["kind"] == "tool"
    ]


@needs_bwrap
async def test_python_runs_in_the_sandbox_with_a_scratch_dir_and_no_network(settings, caller):
    caller.script = [
        [
            (
                "python",
                {
                    "code": "print(sum(i * i for i in range(1, 11)))\nwith open('kept.txt', 'w') as f:\n    "
                    "f.write('kept')"
                },
            )
        ],
        [("python", {"code": "import os\nprint(open('kept.txt').read(), os.getuid(), sorted(os.environ))"})],
        [("python", {"code": "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)"})],
        [("python", {"code": "import time\ntime.sleep(60)"})],
        [("python", {"code": "x = 2750\nx * 730"})],
    ]
    async with embedded_app(settings.model_copy(update={"sandbox_wall_s": 2.0}), caller) as client:
        await make_agent(client, "coder", ["python"])
        task = await submit(client, "Compute the sum of the first ten squares", "coder")
        steps = await tool_steps(client, task["task_id"])

    assert task["status"] == "succeeded"
    assert steps[0]["status"] == "succeeded" and steps[0]["output"].strip() == "385"
    assert steps[1]["output"].startswith("kept 65534 ['HOME', 'LC_CTYPE', 'PATH', 'PWD', 'PYTHONIOENCODING']")
    assert (
        steps[2]["status"] == "failed"
        and steps[2]["error_kind"] == "misuse"
        and "Network is unreachable" in steps[2]["error"]
    )
    assert steps[3]["status"] == "failed" and "ran longer than" in steps[3]["error"]
    assert steps[4]["output"].strip() == "2007500"  # a last expression is printed, as a REPL would
    assert "385" in task["result"]
    assert not (settings.data_dir / "scratch" / "default" / task["task_id"]).exists()  # removed with the task


class _Site(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/page")
            self.end_headers()
            return
        body = PAGE if self.path == "/page" else b"x" * 50_000
        self.send_response(200)
        self.send_header("Content-Type", "text/html" if self.path == "/page" else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        body = b"got " + self.rfile.read(length)
        self.send_response(201)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def site():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


async def test_http_fetch_is_guarded_limited_and_turns_html_into_text(settings, caller, site):
    caller.script = [[("http_fetch", {"url": f"{site}/page"})]]
    async with embedded_app(
        settings.model_copy(update={"egress_allow": []}), caller
    ) as client:  # loopback: refused
        await make_agent(client, "fetcher", ["http_fetch"])
        task = await submit(client, "Read the page", "fetcher")
        [step] = await tool_steps(client, task["task_id"])
        assert step["status"] == "failed" and step["error_kind"] == "misuse" and "refused" in step["error"]

    port = site.rsplit(":", 1)[1]
    allowed = settings.model_copy(
        update={
            "egress_allow": [f"127.0.0.1:{port}"],
            "http_fetch_max_bytes": 10_000,
            "tool_result_chars": 20_000,
        }
    )
    caller.script = [
        [
            ("http_fetch", {"url": f"{site}/moved"}),
            ("http_fetch", {"url": f"{site}/big"}),
            ("http_fetch", {"url": f"{site}/echo", "method": "POST", "body": '{"a": 1}'}),
        ]
    ]
    async with embedded_app(allowed, caller) as client:
        await make_agent(client, "fetcher2", ["http_fetch"])
        task = await submit(client, "Read the page", "fetcher2")
        page, big, post = await tool_steps(client, task["task_id"])
    assert page["status"] == "succeeded", page
    assert (
        page["output"].startswith(f"HTTP 200 OK from {site}/page")
        and "Use twice the cores." in page["output"]
    )
    assert "<b>" not in page["output"] and "var x" not in page["output"]
    assert big["output"].endswith("[cut at 10000 bytes]") and big["output"].count("x") == 10_000
    assert post["output"] == f'HTTP 201 Created from {site}/echo\n\ngot {{"a": 1}}'

    listed = allowed.model_copy(update={"http_fetch_hosts": ["*.example.org"]})
    caller.script = [[("http_fetch", {"url": f"{site}/page"})]]
    async with embedded_app(listed, caller) as client:
        await make_agent(client, "fetcher3", ["http_fetch"])
        task = await submit(client, "Read the page", "fetcher3")
        [step] = await tool_steps(client, task["task_id"])
    assert step["error_kind"] == "misuse" and "not on the allowed hosts (*.example.org)" in step["error"]


async def test_delegate_runs_a_linked_subtask_within_depth_and_fanout(settings, caller):
    limited = settings.model_copy(update={"delegate_max_depth": 1, "delegate_max_fanout": 1})
    async with embedded_app(limited, caller) as client:
        await make_agent(client, "boss", ["delegate"])
        await make_agent(client, "helper", [])
        caller.script = [
            [
                ("delegate", {"task": "Summarise the incident", "agent_id": "helper"}),
                ("delegate", {"task": "And a second one", "agent_id": "helper"}),
            ]
        ]
        task = await submit(client, "Handle the incident", "boss")

        assert task["status"] == "succeeded"
        first, second = await tool_steps(client, task["task_id"])
        assert first["status"] == "succeeded" and first["output"].startswith("Answer from helper (subtask ")
        assert second["error_kind"] == "misuse" and "at most 1 subtask" in second["error"]
        children = (await client.get("/tasks", params={"parent_task_id": task["task_id"]})).json()["items"]
        assert len(children) == 1 and children[0]["parent_task_id"] == task["task_id"]
        child = children[0]
        assert child["assigned_agent"] == "helper" and child["metadata"]["delegation_depth"] == 1
        assert child["result"] in first["output"]

        await make_agent(client, "boss2", ["delegate"])
        caller.script = [[("delegate", {"task": "Go deeper", "agent_id": "boss2"})]]
        task = await submit(client, "Delegate twice", "boss2")
        [step] = await tool_steps(client, task["task_id"])
        [child] = (await client.get("/tasks", params={"parent_task_id": task["task_id"]})).json()["items"]
        [deeper] = await tool_steps(client, child["task_id"])  # the child at depth 1 may not delegate again
        assert deeper["error_kind"] == "misuse" and "limited to 1 level" in deeper["error"]
        assert step["status"] == "succeeded"


async def test_a_parent_task_must_exist(aclient):
    response = await aclient.post("/assign-task", json={"description": "orphan", "parent_task_id": "nope"})
    assert response.status_code == 422 and response.json()["error"]["code"] == "unknown_parent_task"
