"""Export to code: a readable Python script that runs a workflow against the platform's HTTP API.

The script follows the same topological order and renders the same templates (Jinja2 in its sandbox); each
agent_task node becomes a task through `POST /assign-task`, polled until it ends. It runs the nodes one after
another (the platform runs independent branches concurrently; the outputs are the same).
"""

from __future__ import annotations

import json
import re

from agent_lightning.workflows.graph import Plan
from agent_lightning.workflows.schemas import (
    AgentTaskConfig,
    ConditionConfig,
    InputConfig,
    OutputConfig,
    TransformConfig,
    Workflow,
)

_HEADER = '''#!/usr/bin/env python3
"""{title}

Exported from Agent Lightning: workflow {workflow_id}, version {version}.
Runs the same graph against the platform's HTTP API: each agent task is submitted with POST /assign-task
and polled with GET /tasks/{{id}}; templates and conditions are rendered with Jinja2's sandbox, as on the
platform. Needs `pip install httpx jinja2`.

    python {filename} --url http://127.0.0.1:8000{input_flags}

With authentication on, pass --token (an access token or API key) or set ALP_TOKEN.
Prints the outputs as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import httpx
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

INPUTS = {inputs}
"""The declared inputs: name -> (type, required, default)."""

ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False,
                                    finalize=lambda value: "" if value is None else value)
SKIPPED = {{"status": "skipped", "output": None}}


def render(template, inputs, nodes):
    return ENV.from_string(template).render(inputs=inputs, nodes=nodes)


def evaluate(expression, inputs, nodes):
    return bool(ENV.compile_expression(expression, undefined_to_none=False)(inputs=inputs, nodes=nodes))


def live(nodes, incoming):
    """True when a node runs: one of its incoming edges comes from a node that succeeded (and, from a
    condition, from the port it took)."""
    for source, port in incoming:
        state = nodes.get(source, SKIPPED)
        if state["status"] != "succeeded":
            continue
        if port is None or port == ("true" if state["output"] else "false"):
            return True
    return False


def run_task(client, prompt, **options):
    """Submit one task to the orchestrator and wait for its answer."""
    body = {{"description": prompt, "force_execute": True}}
    body.update({{key: value for key, value in options.items() if value not in (None, [])}})
    response = client.post("/assign-task", json=body)
    response.raise_for_status()
    task_id = response.json()["task_id"]
    delay = 0.05
    while True:
        task = client.get(f"/tasks/{{task_id}}").json()
        if task["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
    if task["status"] != "succeeded":
        raise SystemExit(f"task {{task_id}} {{task['status']}}: {{task.get('error')}}")
    return task["result"] or ""


def read_inputs(pairs):
    given = dict(pair.split("=", 1) for pair in pairs)
    unknown = sorted(set(given) - set(INPUTS))
    if unknown:
        raise SystemExit(f"unknown input(s): {{unknown}}")
    inputs = {{}}
    for name, (kind, required, default) in INPUTS.items():
        if name not in given:
            if default is None and required:
                raise SystemExit(f"input {{name!r}} is required: --input {{name}}=...")
            inputs[name] = default
        elif kind == "number":
            number = float(given[name])
            inputs[name] = int(number) if number.is_integer() and "." not in given[name] else number
        elif kind == "boolean":
            inputs[name] = given[name].lower() in ("true", "1", "yes")
        else:
            inputs[name] = given[name]
    return inputs


def main(argv=None):
    parser = argparse.ArgumentParser(description={title!r})
    parser.add_argument("--url", default=os.environ.get("ALP_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=os.environ.get("ALP_TOKEN"))
    parser.add_argument("--input", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    inputs = read_inputs(args.input)
    headers = {{"Authorization": f"Bearer {{args.token}}"}} if args.token else {{}}
    nodes = {{}}
    outputs = {{}}
    with httpx.Client(base_url=args.url, headers=headers, timeout=60) as client:
'''

_FOOTER = '''
    json.dump(outputs, sys.stdout, indent=2)
    print()
    return outputs


if __name__ == "__main__":
    main()
'''


def slug(name: str) -> str:
    """A file-name-safe version of a workflow's name."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:40] or "workflow"


def _indent(lines: list[str], depth: int) -> list[str]:
    return ["    " * depth + line if line else "" for line in lines]


def python_script(workflow: Workflow, plan: Plan) -> str:
    """The script's source text."""
    inputs = {f.name: (f.type, f.required, f.default) for f in plan.input_fields()}
    filename = f"workflow_{slug(workflow.name)}_v{workflow.version}.py"
    flags = "".join(f" --input {name}=..." for name, (_, required, default) in inputs.items()
                    if required and default is None)
    text = _HEADER.format(title=workflow.name.replace('\\', '/').replace('"', "'"), workflow_id=workflow.id, version=workflow.version,
                          filename=filename, input_flags=flags, inputs=_literal(inputs))
    body: list[str] = []
    for node_id in plan.order:
        node, config = plan.nodes[node_id], plan.configs[node_id]
        heading = f"# {node_id} ({node.type})" + (f": {node.label}" if node.label else "")
        body.append(heading)
        action = _action(node_id, config, plan)
        incoming = [(e.source, e.source_port if plan.nodes[e.source].type == "condition" else None)
                    for e in plan.incoming[node_id]]
        if incoming:
            body.append(f"if live(nodes, {incoming!r}):")
            body.extend(_indent(action, 1))
            body.append("else:")
            body.append(f"    nodes[{node_id!r}] = SKIPPED")
        else:
            body.extend(action)
        if isinstance(config, OutputConfig):
            body.append(f"if nodes[{node_id!r}]['status'] == 'succeeded':")
            body.append(f"    outputs[{(config.name or node_id)!r}] = nodes[{node_id!r}]['output']")
        body.append("")
    return text + "\n".join(_indent(body, 2)).rstrip() + "\n" + _FOOTER


def _action(node_id: str, config, plan: Plan) -> list[str]:
    def store(expression: str) -> list[str]:
        return [f"nodes[{node_id!r}] = {{'status': 'succeeded', 'output': {expression}}}"]

    if isinstance(config, InputConfig):
        names = [f.name for f in config.fields]
        return store("{" + ", ".join(f"{n!r}: inputs[{n!r}]" for n in names) + "}")
    if isinstance(config, TransformConfig):
        return store(f"render({config.template!r}, inputs, nodes)")
    if isinstance(config, ConditionConfig):
        return store(f"evaluate({config.expression!r}, inputs, nodes)")
    if isinstance(config, OutputConfig):
        if config.template:
            return store(f"render({config.template!r}, inputs, nodes)")
        sources = [(e.source, e.source_port if plan.nodes[e.source].type == "condition" else None)
                   for e in plan.incoming[node_id]]
        return store(f"next(nodes[s]['output'] for s, p in {sources!r} if live(nodes, [(s, p)]))")
    assert isinstance(config, AgentTaskConfig)
    options = {"agent_id": config.agent_id, "required_capabilities": config.required_capabilities,
               "priority": config.priority, "timeout": config.timeout, "max_attempts": config.max_attempts}
    args = "".join(f", {key}={value!r}" for key, value in options.items() if value not in (None, []))
    return [f"prompt = render({config.prompt!r}, inputs, nodes)", *store(f"run_task(client, prompt{args})")]


def _literal(value) -> str:
    """A Python literal of JSON-like data (True/False/None spelled the Python way)."""
    return repr(json.loads(json.dumps(value)))
