"""The local model's tool-call turns: the grammar's schema, the conversation written as text, the reply
parsed."""

from __future__ import annotations

import json

from agent_lightning.models.providers import local_tools
from agent_lightning.models.schemas import ChatMessage

PYTHON = {
    "type": "function",
    "function": {
        "name": "python",
        "description": "Run Python.",
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string", "minLength": 1, "maxLength": 50_000}},
            "required": ["code"],
            "additionalProperties": False,
        },
    },
}
SEARCH = {
    "type": "function",
    "function": {
        "name": "knowledge_search",
        "description": "Search.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    },
}


def test_the_schema_allows_a_call_of_each_tool_or_an_answer_unless_a_call_is_required():
    auto = local_tools.turn_schema([PYTHON, SEARCH], "auto")
    assert [b["properties"].get("tool", {}).get("const") for b in auto["anyOf"]] == [
        "python",
        "knowledge_search",
        None,
    ]
    assert auto["anyOf"][0]["properties"]["arguments"]["properties"]["code"] == {
        "type": "string",
        "minLength": 1,
    }
    required = local_tools.turn_schema([PYTHON, SEARCH], "required")
    assert len(required["anyOf"]) == 2 and all("tool" in b["properties"] for b in required["anyOf"])
    named = local_tools.turn_schema(
        [PYTHON, SEARCH], {"type": "function", "function": {"name": "knowledge_search"}}
    )
    assert named["properties"]["tool"] == {"const": "knowledge_search"}
    assert local_tools.grammar(json.dumps(auto, sort_keys=True)) is not None  # llama.cpp accepts it


def test_calls_and_results_are_written_as_text_and_replies_parsed():
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "python", "arguments": '{"code": "print(2)"}'},
    }
    messages = [
        ChatMessage(role="system", content="Be exact."),
        ChatMessage(role="user", content="2?"),
        ChatMessage(role="assistant", content="", tool_calls=[call]),
        ChatMessage(role="tool", tool_call_id="c1", name="python", content="2"),
    ]
    rendered = local_tools.as_text(messages, [PYTHON], "auto")
    assert rendered[0]["content"].startswith(
        "Be exact.\n\nYou can call these tools:\n- python(code: string): Run Python."
    )
    assert rendered[2] == {
        "role": "assistant",
        "content": '{"tool": "python", "arguments": {"code": "print(2)"}}',
    }
    assert rendered[3] == {"role": "user", "content": "Result of python:\n2"}

    content, calls = local_tools.parse_reply('{"tool": "python", "arguments": {"code": "print(1+1)"}}')
    assert content == "" and calls[0]["function"] == {"name": "python", "arguments": '{"code": "print(1+1)"}'}
    assert local_tools.parse_reply('{"answer": "It is 2."}') == ("It is 2.", None)
    assert local_tools.parse_reply('{"answer": "cut short') == ("cut short", None)
