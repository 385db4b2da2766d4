"""Workflows over HTTP: validation with stable error bodies, versions, runs through the orchestrator (a
condition branch, a parallel branch), cancel, restart recovery, export to a script that runs the same."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from sqlalchemy import select
from support import running_app, served, wait_for_status

from agent_lightning.core.db import Database
from agent_lightning.workflows.tables import WorkflowRunRow

FINAL = {"succeeded", "failed", "cancelled"}


def node(node_id, type_, x=0, **config):
    return {"id": node_id, "type": type_, "config": config, "position": {"x": x, "y": 0}}


def edge(source, target, source_port="out", target_port="in"):
    return {
        "id": f"{source}.{source_port}->{target}",
        "source": source,
        "source_port": source_port,
        "target": target,
        "target_port": target_port,
    }


def branching_workflow(agent="technical_writer"):
    """topic → draft (agent task) → check (condition) → approve | reject (transforms) → result."""
    return {
        "name": "Review a draft",
        "graph": {
            "nodes": [
                node("start", "input", fields=[{"name": "topic"}]),
                node(
                    "draft",
                    "agent_task",
                    prompt="Write a README guide about {{ inputs.topic }}",
                    agent_id=agent,
                ),
                node("check", "condition", expression="'bees' in nodes.draft.output"),
                node("approve", "transform", template="APPROVED: {{ nodes.draft.output }}"),
                node("reject", "transform", template="REJECTED ({{ inputs.topic }})"),
                node(
                    "result",
                    "output",
                    name="verdict",
                    template="{{ nodes.approve.output or nodes.reject.output }}",
                ),
            ],
            "edges": [
                edge("start", "draft"),
                edge("draft", "check"),
                edge("check", "approve", "true"),
                edge("check", "reject", "false"),
                edge("approve", "result"),
                edge("reject", "result"),
            ],
        },
    }


def parallel_workflow():
    """topic → (security audit ‖ docs) → merge → output."""
    return {
        "name": "Parallel reviews",
        "graph": {
            "nodes": [
                node("start", "input", fields=[{"name": "topic"}]),
                node(
                    "audit",
                    "agent_task",
                    prompt="Audit {{ inputs.topic }} for SQL injection",
                    agent_id="security_expert",
                ),
                node("docs", "agent_task", prompt="Document {{ inputs.topic }}", agent_id="technical_writer"),
                node("merge", "transform", template="{{ nodes.audit.output }} | {{ nodes.docs.output }}"),
                node("out", "output"),
            ],
            "edges": [
                edge("start", "audit"),
                edge("start", "docs"),
                edge("audit", "merge"),
                edge("docs", "merge"),
                edge("merge", "out"),
            ],
        },
    }


async def create(client, body) -> dict:
    response = await client.post("/workflows", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def wait_for_run(client, run_id, statuses=FINAL, timeout=15) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        run = (await client.get(f"/workflows/runs/{run_id}")).json()
        if run["status"] in statuses:
            return run
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"run {run_id} still {run['status']}: {run}")
        await asyncio.sleep(0.02)


async def wait_for_node(client, run_id, node_id, predicate, timeout=15) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        run = (await client.get(f"/workflows/runs/{run_id}")).json()
        [state] = [n for n in run["nodes"] if n["node_id"] == node_id]
        if predicate(state):
            return state
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"node {node_id} of run {run_id}: {state}")
        await asyncio.sleep(0.02)


def by_node(run) -> dict:
    return {n["node_id"]: n for n in run["nodes"]}


async def test_catalogue_lists_every_node_type_with_ports_and_schema(client):
    catalogue = (await client.get("/workflows/components")).json()
    types = {c["type"]: c for c in catalogue["components"]}
    assert set(types) == {"input", "agent_task", "condition", "transform", "output"}
    assert [p["name"] for p in types["condition"]["outputs"]] == ["true", "false"]
    assert types["agent_task"]["config_schema"]["required"] == ["prompt"]
    assert types["agent_task"]["template_fields"] == ["prompt"]
    assert types["input"]["inputs"] == [] and types["output"]["outputs"] == []
    assert catalogue["template_variables"] == ["inputs", "nodes"]


async def test_validation_reports_each_problem_with_its_node_or_edge(client):
    body = {
        "name": "broken",
        "graph": {
            "nodes": [
                node("start", "input", fields=[{"name": "topic"}]),
                node("mystery", "teleport"),
                node("a", "transform", template="{{ nodes.b.output }} {{ inputs.missing }} {{ secret }}"),
                node("b", "transform", template="{{ nodes.a.output }}"),
                node("out", "output"),
            ],
            "edges": [
                edge("start", "a"),
                edge("a", "b"),
                edge("b", "a"),
                {"id": "again", "source": "start", "source_port": "out", "target": "a", "target_port": "in"},
                edge("ghost", "out"),
                edge("start", "out"),
                {"id": "badport", "source": "a", "source_port": "yes", "target": "out", "target_port": "in"},
            ],
        },
    }
    response = await client.post("/workflows", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_workflow" and error["message"] == "The workflow graph is invalid."
    assert error["details"]["errors"] == [
        {
            "code": "unknown_node_type",
            "message": "Unknown node type 'teleport'.",
            "node_id": "mystery",
            "allowed": ["agent_task", "condition", "input", "output", "transform"],
        },
        {
            "code": "duplicate_edge",
            "message": "Edge 'again' repeats another edge between the same ports.",
            "edge_id": "again",
        },
        {
            "code": "dangling_edge",
            "message": "Edge 'ghost.out->out' points at unknown node(s) ['ghost'].",
            "edge_id": "ghost.out->out",
            "node_ids": ["ghost"],
        },
        {
            "code": "port_type_mismatch",
            "message": "Edge 'start.out->out' connects start.out (object) to out.in (text).",
            "edge_id": "start.out->out",
            "node_ids": ["start", "out"],
        },
        {
            "code": "unknown_port",
            "message": "'transform' has no output port 'yes'.",
            "edge_id": "badport",
            "node_id": "a",
            "port": "yes",
            "ports": ["out"],
        },
        {"code": "cycle", "message": "The graph has a cycle through these nodes.", "node_ids": ["a", "b"]},
        {
            "code": "unconnected_node",
            "message": "Node 'out' has no incoming edge: it would never run.",
            "node_id": "out",
        },
    ]
    # Without the cycle, template references are checked too.
    body["graph"]["nodes"] = [n for n in body["graph"]["nodes"] if n["id"] != "mystery"]
    body["graph"]["edges"] = [edge("start", "a"), edge("a", "out"), edge("start", "b"), edge("b", "out")]
    error = (await client.post("/workflows", json=body)).json()["error"]
    assert error["details"]["errors"] == [
        {
            "code": "unknown_variable",
            "message": "template: 'secret' is not defined; use inputs.<name> or nodes.<id>.output.",
            "node_id": "a",
            "field": "template",
            "variable": "secret",
        },
        {
            "code": "unknown_variable",
            "message": "template: no input is named 'missing'.",
            "node_id": "a",
            "field": "template",
            "variable": "inputs.missing",
        },
        {
            "code": "unknown_variable",
            "message": "template: node 'b' is not upstream of 'a'; connect it first.",
            "node_id": "a",
            "field": "template",
            "variable": "nodes.b",
        },
        {
            "code": "unknown_variable",
            "message": "template: node 'a' is not upstream of 'b'; connect it first.",
            "node_id": "b",
            "field": "template",
            "variable": "nodes.a",
        },
    ]
    bad_config = {
        "name": "x",
        "graph": {
            "nodes": [node("c", "condition", expression="1 +"), node("o", "output")],
            "edges": [edge("c", "o", "true")],
        },
    }
    errors = (await client.post("/workflows", json=bad_config)).json()["error"]["details"]["errors"]
    assert [(e["code"], e.get("node_id")) for e in errors] == [
        ("unconnected_node", "c"),
        ("template_syntax", "c"),
    ]
    assert (await client.get("/workflows")).json()["items"] == []


async def test_versions_are_kept_and_readable(client):
    created = await create(client, branching_workflow())
    assert created["version"] == 1 and created["versions"] == [1]
    changed = branching_workflow()
    changed["name"] = "Review a draft, v2"
    changed["graph"]["nodes"][3]["config"]["template"] = "OK: {{ nodes.draft.output }}"
    updated = (await client.put(f"/workflows/{created['id']}", json=changed)).json()
    assert (
        updated["version"] == 2 and updated["versions"] == [1, 2] and updated["name"] == "Review a draft, v2"
    )
    first = (await client.get(f"/workflows/{created['id']}", params={"version": 1})).json()
    assert first["version"] == 1 and first["latest_version"] == 2 and first["name"] == "Review a draft"
    assert first["graph"]["nodes"][3]["config"]["template"] == "APPROVED: {{ nodes.draft.output }}"
    missing = await client.get(f"/workflows/{created['id']}", params={"version": 3})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "version_not_found"
    invalid = await client.put(
        f"/workflows/{created['id']}", json={"name": "x", "graph": {"nodes": [node("o", "output")]}}
    )
    assert invalid.status_code == 422
    assert (await client.get(f"/workflows/{created['id']}")).json()["version"] == 2, (
        "an invalid save adds no version"
    )
    [summary] = (await client.get("/workflows")).json()["items"]
    assert summary["latest_version"] == 2
    deleted = await client.delete(f"/workflows/{created['id']}")
    assert deleted.status_code == 200 and deleted.json() == {
        "id": created["id"],
        "deleted": True,
        "versions": 2,
    }
    gone = await client.get(f"/workflows/{created['id']}")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "workflow_not_found"


async def test_run_takes_the_branch_the_condition_chooses(client):
    workflow = await create(client, branching_workflow())
    events = []

    async def record(event):
        events.append(event)

    client.app.state.platform.bus.subscribe("workflow.*", record)
    accepted = await client.post(f"/workflows/{workflow['id']}/runs", json={"inputs": {"topic": "bees"}})
    assert accepted.status_code == 202
    assert accepted.json()["status"] == "queued" and accepted.json()["version"] == 1
    run = await wait_for_run(client, accepted.json()["run_id"])
    assert run["status"] == "succeeded", run
    nodes = by_node(run)
    draft = nodes["draft"]
    assert draft["status"] == "succeeded" and draft["agent_id"] == "technical_writer"
    assert draft["output"].startswith("answer to: Write a README guide about bees")
    task = await wait_for_status(client, draft["task_id"])
    assert task["status"] == "succeeded" and task["result"] == draft["output"]
    assert task["metadata"]["workflow_run_id"] == run["run_id"] and task["rewards"], "a real task, rewarded"
    assert nodes["check"]["output"] is True
    assert nodes["approve"]["status"] == "succeeded" and nodes["reject"]["status"] == "skipped"
    assert run["outputs"] == {"verdict": "APPROVED: " + draft["output"]}
    assert nodes["start"]["output"] == {"topic": "bees"}

    other = (
        await client.post(f"/workflows/{workflow['id']}/runs", json={"inputs": {"topic": "ants"}})
    ).json()
    run = await wait_for_run(client, other["run_id"])
    nodes = by_node(run)
    assert nodes["check"]["output"] is False
    assert nodes["approve"]["status"] == "skipped" and nodes["reject"]["status"] == "succeeded"
    assert run["outputs"] == {"verdict": "REJECTED (ants)"}

    mine = [e for e in events if e.data["run_id"] == accepted.json()["run_id"]]
    assert [e.type for e in mine][:2] == ["workflow.run.queued", "workflow.run.started"]
    assert mine[-1].type == "workflow.run.finished" and mine[-1].data["status"] == "succeeded"
    finished = {e.data["node_id"]: e.data["status"] for e in mine if e.type == "workflow.node.finished"}
    assert finished == {
        "start": "succeeded",
        "draft": "succeeded",
        "check": "succeeded",
        "approve": "succeeded",
        "reject": "skipped",
        "result": "succeeded",
    }

    bad = await client.post(f"/workflows/{workflow['id']}/runs", json={"inputs": {"topik": "x"}})
    assert bad.status_code == 422 and bad.json()["error"] == {
        "code": "invalid_inputs",
        "message": "The run's inputs are invalid.",
        "details": {
            "errors": [
                {"code": "unknown_input", "message": "The workflow has no input 'topik'.", "input": "topik"},
                {"code": "missing_input", "message": "Input 'topic' is required.", "input": "topic"},
            ]
        },
    }


async def test_independent_branches_run_concurrently(client, provider):
    provider.delay_s = 0.3
    workflow = await create(client, parallel_workflow())
    accepted = (
        await client.post(f"/workflows/{workflow['id']}/runs", json={"inputs": {"topic": "the login form"}})
    ).json()
    run = await wait_for_run(client, accepted["run_id"])
    assert run["status"] == "succeeded", run
    nodes = by_node(run)
    audit, docs = nodes["audit"], nodes["docs"]
    assert audit["agent_id"] == "security_expert" and docs["agent_id"] == "technical_writer"
    assert audit["started_at"] < docs["finished_at"] and docs["started_at"] < audit["finished_at"], (
        "they overlapped"
    )
    assert run["outputs"] == {"out": f"{audit['output']} | {docs['output']}"}


async def test_a_failing_node_fails_the_run(client):
    body = branching_workflow(agent="no_such_agent")
    workflow = await create(client, body)
    run = await wait_for_run(
        client,
        (await client.post(f"/workflows/{workflow['id']}/runs", json={"inputs": {"topic": "bees"}})).json()[
            "run_id"
        ],
    )
    assert run["status"] == "failed"
    nodes = by_node(run)
    assert nodes["draft"]["status"] == "failed" and "no_such_agent" in nodes["draft"]["error"]
    assert run["error"].startswith("node 'draft' failed:")
    assert {nodes[n]["status"] for n in ("check", "approve", "reject", "result")} == {"cancelled"}


async def test_cancel_stops_the_run_and_its_task(client, provider):
    provider.delay_s = 5
    workflow = await create(client, branching_workflow())
    run_id = (
        await client.post(f"/workflows/{workflow['id']}/runs", json={"inputs": {"topic": "bees"}})
    ).json()["run_id"]
    draft = await wait_for_node(client, run_id, "draft", lambda n: n["task_id"] is not None)
    await wait_for_status(client, draft["task_id"], {"running"})
    cancelled = await client.post(f"/workflows/runs/{run_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert {n["status"] for n in cancelled.json()["nodes"] if n["node_id"] != "start"} == {"cancelled"}
    task = await wait_for_status(client, draft["task_id"])
    assert task["status"] == "cancelled"
    again = await client.post(f"/workflows/runs/{run_id}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "run_finished"
    assert (await client.get(f"/workflows/runs/{run_id}")).json()["status"] == "cancelled"
    assert (await client.get("/workflows/runs/nope")).json()["error"]["code"] == "run_not_found"


async def test_a_run_interrupted_by_a_stop_resumes_at_the_next_start(settings, provider):
    provider.delay_s = 30  # the first process stops while the agent task runs
    async with running_app(settings, provider) as client:
        workflow = await create(client, branching_workflow())
        run_id = (
            await client.post(f"/workflows/{workflow['id']}/runs", json={"inputs": {"topic": "bees"}})
        ).json()["run_id"]
        draft = await wait_for_node(client, run_id, "draft", lambda n: n["task_id"] is not None)
        await wait_for_status(client, draft["task_id"], {"running"})
    db = Database(settings.resolved_database_url())
    async with db.session() as session:
        row = await session.scalar(select(WorkflowRunRow).where(WorkflowRunRow.id == run_id))
        assert row.status == "running", "the stopped process left the run running"
    await db.close()

    provider.delay_s = 0
    async with running_app(settings, provider) as client:
        run = await wait_for_run(client, run_id)
        assert run["status"] == "succeeded", run
        assert run["recoveries"] == 1
        nodes = by_node(run)
        assert nodes["draft"]["task_id"] == draft["task_id"], "the resumed run found its task again"
        assert run["outputs"]["verdict"] == "APPROVED: " + nodes["draft"]["output"]
        tasks = (await client.get("/tasks")).json()["items"]
        assert len(tasks) == 1, "the agent task was not submitted twice"


async def test_exported_script_runs_the_same_workflow(settings, provider):
    async with served(settings, provider) as client:
        workflow = await create(client, branching_workflow())
        run_id = (
            await client.post(f"/workflows/{workflow['id']}/runs", json={"inputs": {"topic": "bees"}})
        ).json()["run_id"]
        run = await wait_for_run(client, run_id)
        exported = (
            await client.get(f"/workflows/{workflow['id']}/export", params={"language": "python"})
        ).json()
        assert exported["language"] == "python" and exported["filename"] == "workflow_review_a_draft_v1.py"
        code = exported["code"]
        assert "import httpx" in code and "/assign-task" in code
        assert (
            code.index("# draft (agent_task)")
            < code.index("# check (condition)")
            < code.index("# result (output)")
        )
        compile(code, exported["filename"], "exec")
        unsupported = await client.get(f"/workflows/{workflow['id']}/export", params={"language": "cobol"})
        assert (
            unsupported.status_code == 422 and unsupported.json()["error"]["code"] == "unsupported_language"
        )

        script = settings.data_dir / exported["filename"]
        script.write_text(code)
        for topic, expected in (("bees", run["outputs"]), ("ants", None)):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(script),
                "--url",
                str(client.base_url),
                "--input",
                f"topic={topic}",
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
            assert process.returncode == 0, stderr.decode()
            import json

            outputs = json.loads(stdout)
            if expected is not None:
                assert outputs == expected, "the script's outputs are the run's"
            else:
                assert outputs == {"verdict": "REJECTED (ants)"}
        tasks = (await client.get("/tasks")).json()["items"]
        assert len(tasks) == 3, "the script submitted real tasks"


async def test_with_authentication_viewers_read_operators_run_and_the_page_is_public(settings, provider):
    from test_auth import add_user, bearer, with_auth

    async with running_app(with_auth(settings), provider) as client:
        await add_user(client, "viewer", "viewer")
        await add_user(client, "operator", "operator")
        await add_user(client, "stranger", "admin", tenant="other")
        viewer, operator = await bearer(client, "viewer"), await bearer(client, "operator")
        assert (await client.get("/workflows")).status_code == 401
        page = await client.get("/workflows/builder")
        assert page.status_code == 200 and "/workflows/builder/builder.js" in page.text
        assert (
            (await client.get("/workflows/builder/builder.js"))
            .headers["content-type"]
            .startswith("text/javascript")
        )
        assert (await client.get("/workflows/builder/secret.py")).status_code == 404
        assert (await client.post("/workflows", json=branching_workflow(), headers=viewer)).status_code == 403
        created = await client.post("/workflows", json=branching_workflow(), headers=operator)
        assert created.status_code == 201
        assert (await client.get(f"/workflows/{created.json()['id']}", headers=viewer)).status_code == 200
        start = await client.post(
            f"/workflows/{created.json()['id']}/runs", json={"inputs": {"topic": "bees"}}, headers=viewer
        )
        assert start.status_code == 403
        from test_auth import login

        token = (await login(client, "stranger", tenant="other")).json()["access_token"]
        stranger = {"Authorization": f"Bearer {token}"}  # another tenant sees none of it
        assert (await client.get("/workflows", headers=stranger)).json()["items"] == []
        hidden = await client.get(f"/workflows/{created.json()['id']}", headers=stranger)
        assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "workflow_not_found"
