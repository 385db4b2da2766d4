"""Tool calls for the local model: grammar-constrained decoding (llama.cpp's JSON-schema grammars).

SmolLM2 has no tool-calling format of its own, so a tool-call turn is asked for as one JSON object and the
sampler is held to a grammar built from the tools' JSON schemas: `{"tool": NAME, "arguments": {…}}` for one
of the offered tools (its arguments fitting that tool's schema), or `{"answer": TEXT}` unless a call is
required. Whatever the small model writes is then a valid call, or an answer. Earlier calls and their
results are written back into the conversation in the same shape, as text.
"""

from __future__ import annotations

import json
import uuid
from functools import lru_cache
from typing import Any

from agent_lightning.models.schemas import ChatMessage

LONG_STRING = 256  # longer maxLength bounds are dropped: llama.cpp would spell out every repetition as a rule
INSTRUCTIONS = (
    'Reply with exactly one JSON object: {"tool": "<tool name>", "arguments": {<arguments>}} to call a tool, '
    'or {"answer": "<your answer>"} when you can answer.'
)
REQUIRED = (
    'Reply with exactly one JSON object: {"tool": "<tool name>", "arguments": {<arguments>}} to call a tool.'
)


def wants_tools(tools: list[dict[str, Any]] | None, tool_choice: Any) -> bool:
    return bool(tools) and tool_choice != "none"


def _functions(tools: list[dict[str, Any]], tool_choice: Any) -> list[dict[str, Any]]:
    functions = [t["function"] for t in tools if t.get("type") == "function" and t.get("function")]
    if isinstance(tool_choice, dict) and tool_choice.get("function"):
        functions = [f for f in functions if f["name"] == tool_choice["function"]["name"]] or functions
    return functions


def _required(tool_choice: Any) -> bool:
    return tool_choice == "required" or isinstance(tool_choice, dict)


def _simplify(schema: Any) -> Any:
    """The schema without bounds llama.cpp's converter expands into huge grammars."""
    if isinstance(schema, dict):
        cleaned = {
            k: _simplify(v) for k, v in schema.items() if k not in ("description", "title", "examples")
        }
        if isinstance(cleaned.get("maxLength"), int) and cleaned["maxLength"] > LONG_STRING:
            del cleaned["maxLength"]
        return cleaned
    if isinstance(schema, list):
        return [_simplify(item) for item in schema]
    return schema


def turn_schema(tools: list[dict[str, Any]], tool_choice: Any) -> dict[str, Any]:
    """The JSON schema of one reply: a call of one of the tools, or (unless required) an answer."""
    branches: list[dict[str, Any]] = [
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["tool", "arguments"],
            "properties": {
                "tool": {"const": f["name"]},
                "arguments": _simplify(f.get("parameters") or {"type": "object", "properties": {}}),
            },
        }
        for f in _functions(tools, tool_choice)
    ]
    if not _required(tool_choice):
        branches.append(
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["answer"],
                "properties": {"answer": {"type": "string"}},
            }
        )
    return {"anyOf": branches} if len(branches) > 1 else branches[0]


@lru_cache(maxsize=64)
def grammar(schema_json: str) -> Any:
    """The llama.cpp grammar of a schema (kept: the same agent asks with the same tools every turn)."""
    from llama_cpp import LlamaGrammar

    return LlamaGrammar.from_json_schema(schema_json, verbose=False)


def describe(tools: list[dict[str, Any]], tool_choice: Any) -> str:
    """The tools and the reply format, for the system prompt."""
    lines = ["You can call these tools:"]
    for f in _functions(tools, tool_choice):
        properties = (f.get("parameters") or {}).get("properties") or {}
        arguments = ", ".join(f"{name}: {spec.get('type', 'any')}" for name, spec in properties.items())
        lines.append(f"- {f['name']}({arguments}): {f.get('description', '')}")
    lines.append(REQUIRED if _required(tool_choice) else INSTRUCTIONS)
    return "\n".join(lines)


def as_text(
    messages: list[ChatMessage], tools: list[dict[str, Any]] | None, tool_choice: Any
) -> list[dict[str, str]]:
    """The conversation for a model without a tool format: calls and results written out as text, and
    (when tools are offered) their description appended to the system prompt."""
    rendered: list[dict[str, str]] = []
    for message in messages:
        if message.role == "tool":
            rendered.append(
                {"role": "user", "content": f"Result of {message.name or 'the tool'}:\n{message.content}"}
            )
        elif message.role == "assistant" and message.tool_calls:
            calls = [
                {"tool": c["function"]["name"], "arguments": _loads(c["function"].get("arguments"))}
                for c in message.tool_calls
            ]
            rendered.append({"role": "assistant", "content": "\n".join(json.dumps(c) for c in calls)})
        else:
            rendered.append({"role": message.role, "content": message.content})
    if wants_tools(tools, tool_choice):
        guide = describe(tools, tool_choice)
        if rendered and rendered[0]["role"] == "system":
            rendered[0] = {"role": "system", "content": f"{rendered[0]['content']}\n\n{guide}"}
        else:
            rendered.insert(0, {"role": "system", "content": guide})
    return rendered


def _loads(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments or "{}")
        except ValueError:
            return arguments
    return arguments or {}


def parse_reply(text: str) -> tuple[str, list[dict[str, Any]] | None]:
    """The answer text, or the tool call, of a grammar-constrained reply. A reply cut short by max_tokens is
    not valid JSON: its text is kept as the answer."""
    try:
        reply = json.loads(text)
    except ValueError:
        prefix = '{"answer":'
        stripped = text.strip()
        if stripped.replace(" ", "").startswith(prefix):
            return stripped.split(":", 1)[1].strip().strip('"'), None
        return stripped, None
    if isinstance(reply, dict) and "tool" in reply:
        call = {
            "id": f"call_{uuid.uuid4().hex[:12]}",
            "type": "function",
            "function": {"name": reply["tool"], "arguments": json.dumps(reply.get("arguments") or {})},
        }
        return "", [call]
    if isinstance(reply, dict) and "answer" in reply:
        return str(reply["answer"]).strip(), None
    return text.strip(), None
