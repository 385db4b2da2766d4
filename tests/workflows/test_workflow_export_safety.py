"""Export to code never lets user text out of its string literal (issue 13).

A workflow's name, node labels, templates, agent ids, capabilities and input defaults are written into the
exported script. The attack: a newline in a node label became a statement of the script. These tests export
workflows full of hostile text (quotes, backslashes, newlines, carriage returns, U+2028, triple quotes; NUL
is refused at the API and covered by the generator's property test) over HTTP, check with `ast`/`tokenize`
that the hostile text occurs only inside string constants, and run the script: no injected statement runs, and
its outputs are the platform's.
"""

from __future__ import annotations

import ast
import asyncio
import io
import json
import subprocess
import sys
import tokenize

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from support import served
from test_workflows_api import create, edge, node, wait_for_run

from agent_lightning.workflows import export
from agent_lightning.workflows import graph as graphs
from agent_lightning.workflows.schemas import Graph, Workflow

TOKEN = "PWNED_BY_EXPORT"
"""An identifier inside every injected statement: it may appear in the script only inside a string."""
UNREACHABLE = "http://127.0.0.1:9"
BREAKOUTS = [
    "\n",
    "\r",
    "\r\n",
    "\u2028",
    "\x0c",
    "'",
    '"',
    "'''",
    '"""',
    "\\",
    "\\\n",
    "')\n",
    '")\n',
    "'''\n",
    '"""\n',
    "\\'\n",
    "}\n",
    "]\n",
    "#\n",
    "\x00\n",
]


def injected(marker) -> str:
    """A statement that would leave a file behind if it ever ran."""
    return f"{TOKEN} = open({str(marker)!r}, 'a').write('ran')"


def hostile(marker, breakout: str) -> str:
    return f"x{breakout}{injected(marker)}{breakout}#"


def hostile_workflow(marker, name_breakout="\n", nul=True):
    breakouts = [b for b in BREAKOUTS if nul or "\x00" not in b]
    literal = "".join(breakouts).replace("{", "(").replace("#", "+")  # Jinja text: no {{ }} or {# #}
    return {
        "name": hostile(marker, name_breakout)[:200],
        "description": hostile(marker, "\n"),
        "graph": {
            "nodes": [
                {
                    **node(
                        "start",
                        "input",
                        fields=[{"name": "topic", "required": False, "default": hostile(marker, '"""\n')}],
                    ),
                    "label": hostile(marker, "\n")[:200],
                },
                {
                    **node(
                        "shout",
                        "transform",
                        template="{{ inputs.topic }}" + literal + hostile(marker, "'''\n"),
                    ),
                    "label": hostile(marker, "\r")[:200],
                },
                {
                    **node("gate", "condition", expression="'never' == inputs.topic"),
                    "label": hostile(marker, "\u2028")[:200],
                },
                {
                    **node(
                        "ask",
                        "agent_task",
                        prompt=hostile(marker, "\\\n"),
                        agent_id="a')\n" + TOKEN + "()#",
                        required_capabilities=["c']\n" + TOKEN + "()#", 'd"\n' + TOKEN],
                    ),
                    "label": "".join(breakouts)[:200],
                },
                {
                    **node("out", "output", name="result", template="{{ nodes.shout.output }}" + literal),
                    "label": hostile(marker, "\r\n")[:200],
                },
            ],
            "edges": [
                edge("start", "shout"),
                edge("start", "gate"),
                edge("gate", "ask", "true"),
                edge("shout", "out"),
            ],
        },
    }


def user_text_only_in_constants(code: str) -> None:
    """Assert the script parses, and that the injected token occurs only inside string literals: not in any
    code token, not in a comment, and not in the AST once every string constant is blanked."""
    tree = ast.parse(code)
    for token in tokenize.generate_tokens(io.StringIO(code).readline):
        if token.type != tokenize.STRING:
            assert TOKEN not in token.string, f"user text outside a string literal: {token}"

    class Blank(ast.NodeTransformer):
        def visit_Constant(self, constant):
            return ast.Constant("") if isinstance(constant.value, str) else constant

    assert TOKEN not in ast.unparse(Blank().visit(tree))


async def run_script(path, *args) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(path), "--url", UNREACHABLE, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, stdout.decode(), stderr.decode()


async def test_hostile_text_stays_in_its_literals_and_the_script_runs_the_same(settings, provider, tmp_path):
    marker = tmp_path / "injected.txt"
    async with served(settings, provider) as client:
        for name_breakout in ("\n", '"""\n', "\\\n", "\r", "\u2028", "'''\n"):
            refused = await client.post("/workflows", json=hostile_workflow(marker, name_breakout, nul=True))
            assert (
                refused.status_code == 422 and refused.json()["error"]["code"] == "nul_character"
            )  # never stored
            body = hostile_workflow(marker, name_breakout, nul=False)
            workflow = await create(client, body)
            run_id = (await client.post(f"/workflows/{workflow['id']}/runs", json={"inputs": {}})).json()[
                "run_id"
            ]
            run = await wait_for_run(client, run_id)
            assert run["status"] == "succeeded", run

            exported = await client.get(f"/workflows/{workflow['id']}/export")
            assert exported.status_code == 200, exported.text
            code = exported.json()["code"]
            user_text_only_in_constants(code)
            labels = {n["id"]: n["label"] for n in body["graph"]["nodes"]}
            constants = {c.value for c in ast.walk(ast.parse(code)) if isinstance(c, ast.Constant)}
            assert body["name"] in constants and set(labels.values()) <= constants, "user text kept exactly"

            script = tmp_path / exported.json()["filename"]
            script.write_text(code)
            returncode, stdout, stderr = await run_script(script)
            assert returncode == 0, stderr
            assert json.loads(stdout) == run["outputs"], "the script computes what the platform computed"
            assert not marker.exists(), "an injected statement ran"

            # the agent task's branch reaches the (unreachable) platform: the script fails there, nothing ran
            returncode, _, stderr = await run_script(script, "--input", "topic=never")
            assert returncode != 0 and "ConnectError" in stderr
            assert not marker.exists(), "an injected statement ran"


# -- the generator itself, on any text ---------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40) | st.sampled_from(
    BREAKOUTS
)


def _workflow(name, label, template, capability, default) -> Workflow:
    graph = Graph.model_validate(
        {
            "nodes": [
                {**node("start", "input", fields=[{"name": "topic", "default": default}]), "label": label},
                {
                    **node(
                        "t",
                        "transform",
                        template="{{ inputs.topic }}" + template.replace("{", "(").replace("#", "+"),
                    ),
                    "label": label,
                },
                {
                    **node(
                        "ask",
                        "agent_task",
                        prompt=template.replace("{", "(") or "p",
                        agent_id=capability[:64] or None,
                        required_capabilities=[capability],
                    ),
                    "label": label,
                },
                {**node("out", "output", template="{{ nodes.t.output }}"), "label": label},
            ],
            "edges": [edge("start", "t"), edge("start", "ask"), edge("t", "out")],
        }
    )
    return Workflow(
        id="wf",
        name=name or "n",
        description="",
        version=1,
        latest_version=1,
        versions=[1],
        graph=graph,
        created_at="2026-01-01T00:00:00Z",
        updated_at="2026-01-01T00:00:00Z",
    )


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=_text, label=_text, template=_text, capability=_text, default=_text)
def test_any_user_text_is_a_constant_of_the_script(name, label, template, capability, default):
    name, label = (name + TOKEN)[:200], (label + TOKEN)[:200]
    workflow = _workflow(name, label, TOKEN + template, capability + TOKEN, default + TOKEN)
    code = export.python_script(workflow, graphs.validate(workflow.graph))
    user_text_only_in_constants(code)
    constants = {c.value for c in ast.walk(ast.parse(code)) if isinstance(c, ast.Constant)}
    assert {name, label, capability + TOKEN, default + TOKEN} <= constants
