"""`python`: run a short Python program in a sandbox and return what it printed.

The sandbox is bubblewrap (`bwrap`, Debian's `bubblewrap`): new user, PID, network, IPC, UTS and mount
namespaces; the file system is read-only `/usr` and the interpreter's own prefix, an empty `/tmp`, and the
task's scratch directory as the writable working directory `/work` (kept across the task's calls, removed
when the task ends); no environment variables pass; the network namespace has only its own loopback, so
nothing outside can be reached. Resource limits (setrlimit): CPU seconds, address space, file size, open
files; the wall-clock limit kills the whole process group; output is cut at a byte limit. docs "Agents
and tools" says what it does not isolate.
"""

from __future__ import annotations

import ast
import asyncio
import os
import resource
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from agent_lightning.execution.tools.base import ToolContext, ToolMisuse, ToolOutage, ToolSpec, object_schema

NOBODY = 65534


def echo_last_expression(code: str) -> str:
    """The program with its last statement printed when it is an expression, as a REPL shows it (small models
    often write `2750 * 730` rather than `print(2750 * 730)`). Code that does not parse is left as it is."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return code
    last = tree.body[-1] if tree.body else None
    if not isinstance(last, ast.Expr) or (
        isinstance(last.value, ast.Call) and getattr(last.value.func, "id", "") == "print"
    ):
        return code
    tree.body[-1] = ast.Expr(ast.Call(ast.Name("print", ast.Load()), [last.value], []))
    return ast.unparse(ast.fix_missing_locations(tree))


def default_interpreter() -> str:
    """The base interpreter of this Python (its standard library, no project packages)."""
    name = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return str(Path(sys.base_prefix) / "bin" / name)


class PythonSandbox:
    spec = ToolSpec(
        name="python",
        description="Run a Python 3 program (standard library only, no network) and get what it prints (and "
        "the value of a last line that is an expression). Files written to the current directory stay for "
        "later calls of the same task.",
        parameters=object_schema(
            {"code": {"type": "string", "minLength": 1, "maxLength": 50_000, "description": "The program."}},
            ["code"],
        ),
    )

    def __init__(
        self,
        *,
        interpreter: str | None,
        cpu_s: int,
        memory_mb: int,
        wall_s: float,
        output_bytes: int,
        bwrap: str | None = None,
    ) -> None:
        self.interpreter = interpreter or default_interpreter()
        self.cpu_s = cpu_s
        self.memory_mb = memory_mb
        self.wall_s = wall_s
        self.output_bytes = output_bytes
        self.bwrap = bwrap or shutil.which("bwrap")
        self.spec = ToolSpec(
            name=self.spec.name,
            description=self.spec.description,
            parameters=self.spec.parameters,
            timeout_s=wall_s + 5,
        )

    def available(self) -> tuple[bool, str]:
        if not self.bwrap:
            return False, "bubblewrap (bwrap) is not installed"
        if not Path(self.interpreter).exists():
            return False, f"no interpreter at {self.interpreter}"
        return True, self.bwrap

    def command(self, scratch: Path) -> list[str]:
        prefix = str(Path(os.path.realpath(self.interpreter)).parent.parent)
        binds = [] if prefix.startswith("/usr") else ["--ro-bind", prefix, prefix]
        return [
            self.bwrap,
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/lib64",
            "/lib64",
            "--symlink",
            "usr/bin",
            "/bin",
            *binds,
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",  # noqa: S108 (a fresh tmpfs inside the sandbox)
            "--bind",
            str(scratch),
            "/work",
            "--chdir",
            "/work",
            "--unshare-all",
            "--uid",
            str(NOBODY),
            "--gid",
            str(NOBODY),
            "--die-with-parent",
            "--new-session",
            "--clearenv",
            "--setenv",
            "HOME",
            "/work",
            "--setenv",
            "PATH",
            "/usr/bin:/bin",
            "--setenv",
            "PYTHONIOENCODING",
            "utf-8",
            self.interpreter,
            "-I",
            "-S",
            "-",
        ]

    def _limits(self) -> None:
        """Runs in the child before exec: the resource limits bwrap and the program inherit."""
        memory = self.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_CPU, (self.cpu_s, self.cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024 * 1024, 16 * 1024 * 1024))
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> str:
        ok, why = self.available()
        if not ok:
            raise ToolOutage(f"The Python sandbox is unavailable: {why}.")
        context.scratch.mkdir(parents=True, exist_ok=True)
        process = await asyncio.create_subprocess_exec(
            *self.command(context.scratch),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=self._limits,
            start_new_session=True,
        )
        process.stdin.write(echo_last_expression(arguments["code"]).encode())
        process.stdin.close()
        output, cut, timed_out = bytearray(), False, False
        try:
            async with asyncio.timeout(self.wall_s):
                while chunk := await process.stdout.read(65536):
                    output += chunk
                    if len(output) > self.output_bytes:
                        cut = True
                        break
        except TimeoutError:
            timed_out = True
        if cut or timed_out:
            os.killpg(process.pid, signal.SIGKILL)
        code = await process.wait()
        text = bytes(output[: self.output_bytes]).decode("utf-8", errors="replace")
        if timed_out:
            raise ToolMisuse(f"The program ran longer than {self.wall_s:g} s and was stopped.\n{text}")
        if cut:
            text += f"\n[output cut at {self.output_bytes} bytes; the program was stopped]"
        if code in (-signal.SIGXCPU, -signal.SIGKILL) and not cut:
            raise ToolMisuse(f"The program used more than {self.cpu_s} s of CPU and was stopped.\n{text}")
        if code != 0 and not cut:
            raise ToolMisuse(f"The program failed (exit code {code}):\n{text}")
        return text if text.strip() else "(the program printed nothing)"
