"""Export to code: a readable Python script that runs a workflow against the platform's HTTP API.

The script follows the same topological order and renders the same templates (Jinja2 in its sandbox); each
agent_task node becomes a task through `POST /assign-task`, polled until it ends. It runs the nodes one after
another (the platform runs independent branches concurrently; the outputs are the same).
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

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
"""A workflow exported from Agent Lightning (its name, id and version are in WORKFLOW below).

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

# The workflow exported, its declared inputs (name -> [type, required, default]) and its nodes' labels.
{constants}

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
    parser = argparse.ArgumentParser(description=WORKFLOW["name"])
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

_FOOTER = """
    json.dump(outputs, sys.stdout, indent=2)
    print()
    return outputs


if __name__ == "__main__":
    main()
"""


def slug(name: str) -> str:
    """A file-name-safe version of a workflow's name."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:40] or "workflow"


# -- code generation: user text only ever becomes an `ast.Constant` ------------------------------------------
#
# The script is fixed text (above) plus code generated from the graph. Generated code is built as an AST from
# fixed snippets whose placeholder names are replaced by constants holding the user's values, and written out
# by `ast.unparse`, which spells every constant as a literal (repr). The comment before each node's block and
# the usage line hold only identifiers checked here. So no name, label, template or value can end its literal.

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _identifier(value: str) -> str:
    """A node id, type or input name, checked again before it is written outside a literal."""
    if not _IDENTIFIER.fullmatch(value):
        raise ValueError(f"not an identifier: {value!r}")
    return value


def _constant(value: Any) -> ast.expr:
    """The AST of a literal of JSON-like data (str, numbers, booleans, None, lists, tuples, dicts)."""
    if isinstance(value, dict):
        return ast.Dict(keys=[_constant(k) for k in value], values=[_constant(v) for v in value.values()])
    if isinstance(value, list):
        return ast.List(elts=[_constant(v) for v in value], ctx=ast.Load())
    if isinstance(value, tuple):
        return ast.Tuple(elts=[_constant(v) for v in value], ctx=ast.Load())
    if value is None or isinstance(value, (str, bool, int, float)):
        return ast.Constant(value)
    raise TypeError(f"not JSON-like data: {type(value).__name__}")


class _Fill(ast.NodeTransformer):
    """Replaces placeholder names (upper-case, starting with an underscore) by constants."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def visit_Name(self, name: ast.Name) -> ast.expr:
        return _constant(self.values[name.id]) if name.id in self.values else name


def _code(snippet: str, **values: Any) -> list[ast.stmt]:
    """The statements of a fixed snippet, its placeholders `_NAME` filled with `values` as constants."""
    tree = _Fill({f"_{key.upper()}": value for key, value in values.items()}).visit(ast.parse(snippet))
    return ast.fix_missing_locations(tree).body


def _source(statements: list[ast.stmt], depth: int = 0) -> list[str]:
    text = ast.unparse(ast.Module(body=statements, type_ignores=[]))
    return ["    " * depth + line if line else "" for line in text.splitlines()]


def python_script(workflow: Workflow, plan: Plan) -> str:
    """The script's source text."""
    inputs = {_identifier(f.name): (f.type, f.required, f.default) for f in plan.input_fields()}
    filename = f"workflow_{slug(workflow.name)}_v{int(workflow.version)}.py"
    flags = "".join(
        f" --input {name}=..."
        for name, (_, required, default) in inputs.items()
        if required and default is None
    )
    constants = _code(
        "WORKFLOW = _WORKFLOW\nINPUTS = _INPUTS\nLABELS = _LABELS",
        workflow={"id": workflow.id, "name": workflow.name, "version": workflow.version},
        inputs=json.loads(json.dumps(inputs)),  # tuples as lists, as the script reads them
        labels={node_id: plan.nodes[node_id].label for node_id in plan.order if plan.nodes[node_id].label},
    )
    text = _HEADER.format(filename=filename, input_flags=flags, constants="\n".join(_source(constants)))
    body: list[str] = []
    for node_id in plan.order:
        node, config = plan.nodes[node_id], plan.configs[node_id]
        body.append(f"# {_identifier(node_id)} ({_identifier(node.type)})")
        body.extend(_source(_node_code(node_id, config, plan)))
        body.append("")
    indented = ["        " + line if line else "" for line in body]
    script = text + "\n".join(indented).rstrip() + "\n" + _FOOTER
    ast.parse(script)  # raises if generation ever produced something that is not Python
    return script


def _node_code(node_id: str, config, plan: Plan) -> list[ast.stmt]:
    """A node's statements: its action, guarded by `live(...)` when it has incoming edges, then its output."""
    action = _action(node_id, config, plan)
    incoming = _sources(node_id, plan)
    if incoming:
        statements = _code(
            "if live(nodes, _INCOMING):\n    pass\nelse:\n    nodes[_NODE] = SKIPPED",
            incoming=incoming,
            node=node_id,
        )
        statements[0].body = action
    else:
        statements = action
    if isinstance(config, OutputConfig):
        statements += _code(
            "if nodes[_NODE]['status'] == 'succeeded':\n    outputs[_NAME] = nodes[_NODE]['output']",
            node=node_id,
            name=config.name or node_id,
        )
    return statements


def _sources(node_id: str, plan: Plan) -> list[tuple[str, str | None]]:
    """The node's incoming edges as (source node, port taken when the source is a condition)."""
    return [
        (e.source, e.source_port if plan.nodes[e.source].type == "condition" else None)
        for e in plan.incoming[node_id]
    ]


def _action(node_id: str, config, plan: Plan) -> list[ast.stmt]:
    def store(output: str, **values: Any) -> list[ast.stmt]:
        return _code(f"nodes[_NODE] = {{'status': 'succeeded', 'output': {output}}}", node=node_id, **values)

    if isinstance(config, InputConfig):
        return store("{name: inputs[name] for name in _NAMES}", names=[f.name for f in config.fields])
    if isinstance(config, TransformConfig):
        return store("render(_TEMPLATE, inputs, nodes)", template=config.template)
    if isinstance(config, ConditionConfig):
        return store("evaluate(_EXPRESSION, inputs, nodes)", expression=config.expression)
    if isinstance(config, OutputConfig):
        if config.template:
            return store("render(_TEMPLATE, inputs, nodes)", template=config.template)
        return store(
            "next(nodes[s]['output'] for s, p in _SOURCES if live(nodes, [(s, p)]))",
            sources=_sources(node_id, plan),
        )
    if not isinstance(config, AgentTaskConfig):
        raise TypeError(f"unexpected node config {type(config).__name__}")
    options = {
        "agent_id": config.agent_id,
        "required_capabilities": config.required_capabilities,
        "priority": config.priority,
        "timeout": config.timeout,
        "max_attempts": config.max_attempts,
    }
    prompt = _code("prompt = render(_PROMPT, inputs, nodes)", prompt=config.prompt)
    call = store("run_task(client, prompt)")
    call[0].value.values[1].keywords = [
        ast.keyword(arg=key, value=_constant(value))
        for key, value in options.items()
        if value not in (None, [])
    ]
    return prompt + call
