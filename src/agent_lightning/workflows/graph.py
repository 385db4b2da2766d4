"""The graph itself, without storage: the component catalogue, validation on save (templates and conditions
included), and the topological order a run follows."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from jinja2 import TemplateSyntaxError, meta
from jinja2 import nodes as jnodes
from pydantic import BaseModel, ValidationError

from agent_lightning.core.errors import Invalid
from agent_lightning.workflows.sandbox import default_sandbox
from agent_lightning.workflows.schemas import (
    AgentTaskConfig,
    Component,
    ComponentCatalogue,
    ConditionConfig,
    Graph,
    InputConfig,
    Node,
    OutputConfig,
    Port,
    TransformConfig,
)

TEMPLATE_VARIABLES = ("inputs", "nodes")

_IN = Port(name="in", type="any", description="Upstream nodes whose outputs this node may use (any number).")
_COMPONENTS: dict[str, tuple[Component, type[BaseModel]]] = {}


def _component(
    type_: str,
    title: str,
    category: str,
    description: str,
    inputs: list[Port],
    outputs: list[Port],
    config: type[BaseModel],
    template_fields: list[str],
) -> None:
    _COMPONENTS[type_] = (
        Component(
            type=type_,
            title=title,
            category=category,
            description=description,
            inputs=inputs,
            outputs=outputs,
            config_schema=config.model_json_schema(),
            template_fields=template_fields,
        ),
        config,
    )


_component(
    "input",
    "Inputs",
    "data",
    "The named inputs a run is started with; `{{ inputs.<name> }}` downstream.",
    [],
    [Port(name="out", type="object", description="The inputs.")],
    InputConfig,
    [],
)
_component(
    "agent_task",
    "Agent task",
    "ai",
    "A task for an agent, submitted to the orchestrator (routing, learning, rewards and events apply). "
    "Without agent_id the routing policy chooses the agent.",
    [_IN],
    [Port(name="out", type="text", description="The agent's answer.")],
    AgentTaskConfig,
    ["prompt"],
)
_component(
    "condition",
    "Condition",
    "logic",
    "Evaluates a sandboxed expression; only the nodes behind the chosen port (true or false) run.",
    [_IN],
    [
        Port(name="true", type="text", description="Taken when the expression is truthy."),
        Port(name="false", type="text", description="Taken otherwise."),
    ],
    ConditionConfig,
    ["expression"],
)
_component(
    "transform",
    "Transform",
    "data",
    "Text from a template, without a model.",
    [_IN],
    [Port(name="out", type="text")],
    TransformConfig,
    ["template"],
)
_component(
    "output",
    "Output",
    "data",
    "A named result of the run: its template, or without one the output of the upstream node that reached "
    "it.",
    [Port(name="in", type="text", description="Text from an agent task, condition or transform.")],
    [],
    OutputConfig,
    ["template"],
)


def catalogue() -> ComponentCatalogue:
    """Every node type with its ports and config schema (what the builder's palette shows)."""
    return ComponentCatalogue(
        components=[c for c, _ in _COMPONENTS.values()], template_variables=list(TEMPLATE_VARIABLES)
    )


def config_model(node_type: str) -> type[BaseModel]:
    return _COMPONENTS[node_type][1]


def _compatible(source: str, target: str) -> bool:
    return source == target or "any" in (source, target)


# -- templates ---------------------------------------------------------------------------------------------

_env = default_sandbox()
"""Parses and compiles templates and conditions when a graph is saved (nothing is evaluated then); runs render
them in the service's `TemplateSandbox`, with the configured limits."""


def _references(source: str) -> tuple[set[str], set[str], set[str]]:
    """(top-level names, input names, node ids) a template refers to; raises TemplateSyntaxError."""
    tree = _env.parse(source)
    names = meta.find_undeclared_variables(tree)
    inputs: set[str] = set()
    node_ids: set[str] = set()
    for item in tree.find_all((jnodes.Getattr, jnodes.Getitem)):
        if not isinstance(item, (jnodes.Getattr, jnodes.Getitem)):  # always: narrows the type
            continue
        if not isinstance(item.node, jnodes.Name) or item.node.name not in TEMPLATE_VARIABLES:
            continue
        if isinstance(item, jnodes.Getattr):
            key = item.attr
        elif isinstance(item.arg, jnodes.Const) and isinstance(item.arg.value, str):
            key = item.arg.value
        else:
            continue  # a computed key cannot be checked before the run
        (inputs if item.node.name == "inputs" else node_ids).add(key)
    return names, inputs, node_ids


# -- validation ---------------------------------------------------------------------------------------------


@dataclass
class Plan:
    """A validated graph, ready to run: nodes by id, typed configs, edges into each node, and an order."""

    graph: Graph
    nodes: dict[str, Node]
    configs: dict[str, BaseModel]
    incoming: dict[str, list] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)

    def input_fields(self):
        for node_id in self.order:
            if self.nodes[node_id].type == "input":
                yield from self.configs[node_id].fields


def _topological(node_ids: list[str], edges) -> tuple[list[str], set[str]]:
    """Kahn's algorithm, stable in the nodes' order; returns the order and the nodes left in cycles."""
    indegree = {n: 0 for n in node_ids}
    successors: dict[str, list[str]] = defaultdict(list)
    for edge in edges:
        successors[edge.source].append(edge.target)
        indegree[edge.target] += 1
    ready = [n for n in node_ids if indegree[n] == 0]
    order = []
    while ready:
        current = ready.pop(0)
        order.append(current)
        for nxt in successors[current]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
    return order, {n for n in node_ids if n not in order}


def validate(graph: Graph) -> Plan:
    """Check a graph as a whole; raise `Invalid` (422) listing every problem with its node or edge id."""
    errors: list[dict[str, Any]] = []

    def error(code: str, message: str, **where: Any) -> None:
        errors.append({"code": code, "message": message, **where})

    nodes: dict[str, Node] = {}
    configs: dict[str, BaseModel] = {}
    for node in graph.nodes:
        if node.id in nodes:
            error("duplicate_node", f"Node id '{node.id}' is used twice.", node_id=node.id)
            continue
        nodes[node.id] = node
        if node.type not in _COMPONENTS:
            error(
                "unknown_node_type",
                f"Unknown node type '{node.type}'.",
                node_id=node.id,
                allowed=sorted(_COMPONENTS),
            )
            continue
        try:
            configs[node.id] = config_model(node.type).model_validate(node.config)
        except ValidationError as exc:
            for e in exc.errors():
                error(
                    "invalid_config",
                    f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}",
                    node_id=node.id,
                    field=".".join(str(p) for p in e["loc"]),
                )

    valid_edges = []
    seen_ids: set[str] = set()
    seen_links: set[tuple[str, str, str, str]] = set()
    for edge in graph.edges:
        if edge.id in seen_ids:
            error("duplicate_edge", f"Edge id '{edge.id}' is used twice.", edge_id=edge.id)
            continue
        seen_ids.add(edge.id)
        link = (edge.source, edge.source_port, edge.target, edge.target_port)
        if link in seen_links:
            error(
                "duplicate_edge",
                f"Edge '{edge.id}' repeats another edge between the same ports.",
                edge_id=edge.id,
            )
            continue
        seen_links.add(link)
        missing = [end for end in (edge.source, edge.target) if end not in nodes]
        if missing:
            error(
                "dangling_edge",
                f"Edge '{edge.id}' points at unknown node(s) {missing}.",
                edge_id=edge.id,
                node_ids=missing,
            )
            continue
        source, target = nodes[edge.source], nodes[edge.target]
        if source.type not in _COMPONENTS or target.type not in _COMPONENTS:
            continue  # already reported
        out_ports = {p.name: p for p in _COMPONENTS[source.type][0].outputs}
        in_ports = {p.name: p for p in _COMPONENTS[target.type][0].inputs}
        if edge.source_port not in out_ports:
            error(
                "unknown_port",
                f"'{source.type}' has no output port '{edge.source_port}'.",
                edge_id=edge.id,
                node_id=source.id,
                port=edge.source_port,
                ports=sorted(out_ports),
            )
            continue
        if edge.target_port not in in_ports:
            error(
                "unknown_port",
                f"'{target.type}' has no input port '{edge.target_port}'.",
                edge_id=edge.id,
                node_id=target.id,
                port=edge.target_port,
                ports=sorted(in_ports),
            )
            continue
        out_type, in_type = out_ports[edge.source_port].type, in_ports[edge.target_port].type
        if not _compatible(out_type, in_type):
            error(
                "port_type_mismatch",
                f"Edge '{edge.id}' connects {source.id}.{edge.source_port} ({out_type}) to "
                f"{target.id}.{edge.target_port} ({in_type}).",
                edge_id=edge.id,
                node_ids=[source.id, target.id],
            )
            continue
        if edge.source == edge.target:
            error(
                "cycle",
                f"Edge '{edge.id}' connects node '{edge.source}' to itself.",
                edge_id=edge.id,
                node_ids=[edge.source],
            )
            continue
        valid_edges.append(edge)

    order, cyclic = _topological(list(nodes), valid_edges)
    if cyclic:
        error("cycle", "The graph has a cycle through these nodes.", node_ids=sorted(cyclic))

    incoming: dict[str, list] = {n: [] for n in nodes}
    for edge in valid_edges:
        incoming[edge.target].append(edge)
    if not any(n.type == "output" for n in nodes.values()):
        error("no_output", "A workflow needs at least one output node.")
    for node in nodes.values():
        if (
            node.type in ("condition", "output") and not incoming[node.id]
        ):  # a root task or transform may start
            error(
                "unconnected_node",
                f"Node '{node.id}' has no incoming edge: it would never run.",
                node_id=node.id,
            )

    input_names: dict[str, str] = {}
    for node_id, config in configs.items():
        if isinstance(config, InputConfig):
            for f in config.fields:
                if f.name in input_names:
                    error(
                        "duplicate_input",
                        f"Input '{f.name}' is declared twice.",
                        node_id=node_id,
                        input=f.name,
                    )
                input_names[f.name] = node_id
    output_names: set[str] = set()
    for node_id, config in configs.items():
        if isinstance(config, OutputConfig):
            name = config.name or node_id
            if name in output_names:
                error(
                    "duplicate_output", f"Output name '{name}' is used twice.", node_id=node_id, output=name
                )
            output_names.add(name)

    if not cyclic:
        ancestors = _ancestors(order, incoming)
        for node_id, config in configs.items():
            for field_name in _COMPONENTS[nodes[node_id].type][0].template_fields:
                source = getattr(config, field_name)
                if not source:
                    continue
                _check_template(node_id, field_name, source, input_names, ancestors[node_id], nodes, error)

    if errors:
        raise Invalid("The workflow graph is invalid.", code="invalid_workflow", details={"errors": errors})
    return Plan(graph=graph, nodes=nodes, configs=configs, incoming=incoming, order=order)


def _ancestors(order: list[str], incoming: dict[str, list]) -> dict[str, set[str]]:
    result: dict[str, set[str]] = {}
    for node_id in order:
        found: set[str] = set()
        for edge in incoming[node_id]:
            found.add(edge.source)
            found |= result[edge.source]
        result[node_id] = found
    return result


def _check_template(node_id, field_name, source, input_names, ancestors, nodes, error) -> None:
    text = source if field_name != "expression" else "{{ " + source + " }}"
    try:
        names, inputs, node_ids = _references(text)
        if field_name == "expression":
            _env.compile_expression(source)
    except TemplateSyntaxError as exc:
        error(
            "template_syntax",
            f"{field_name}: {exc.message} (line {exc.lineno}).",
            node_id=node_id,
            field=field_name,
        )
        return
    for name in sorted(names - set(TEMPLATE_VARIABLES)):
        error(
            "unknown_variable",
            f"{field_name}: '{name}' is not defined; use inputs.<name> or nodes.<id>.output.",
            node_id=node_id,
            field=field_name,
            variable=name,
        )
    for name in sorted(inputs - set(input_names)):
        error(
            "unknown_variable",
            f"{field_name}: no input is named '{name}'.",
            node_id=node_id,
            field=field_name,
            variable=f"inputs.{name}",
        )
    for ref in sorted(node_ids):
        if ref not in nodes:
            error(
                "unknown_variable",
                f"{field_name}: no node is named '{ref}'.",
                node_id=node_id,
                field=field_name,
                variable=f"nodes.{ref}",
            )
        elif ref not in ancestors:
            error(
                "unknown_variable",
                f"{field_name}: node '{ref}' is not upstream of '{node_id}'; connect it first.",
                node_id=node_id,
                field=field_name,
                variable=f"nodes.{ref}",
            )


def coerce_inputs(plan: Plan, given: dict[str, Any]) -> dict[str, Any]:
    """The run's inputs checked against the declared fields, with defaults; raise `Invalid` listing
    problems."""
    fields = {f.name: f for f in plan.input_fields()}
    errors: list[dict[str, Any]] = []
    values: dict[str, Any] = {}
    for name in sorted(set(given) - set(fields)):
        errors.append(
            {"code": "unknown_input", "message": f"The workflow has no input '{name}'.", "input": name}
        )
    for name, spec in fields.items():
        if name not in given or given[name] is None:
            if spec.default is not None:
                values[name] = spec.default
            elif spec.required:
                errors.append(
                    {"code": "missing_input", "message": f"Input '{name}' is required.", "input": name}
                )
            else:
                values[name] = None
            continue
        value = given[name]
        try:
            values[name] = _coerce(value, spec.type)
        except (TypeError, ValueError):
            errors.append(
                {"code": "invalid_input", "message": f"Input '{name}' must be a {spec.type}.", "input": name}
            )
    if errors:
        raise Invalid("The run's inputs are invalid.", code="invalid_inputs", details={"errors": errors})
    return values


def _coerce(value: Any, kind: str) -> Any:
    if kind == "string":
        if isinstance(value, (dict, list)):
            raise TypeError
        return str(value)
    if kind == "number":
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
        return int(number) if number.is_integer() and not isinstance(value, float) else number
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    raise ValueError
