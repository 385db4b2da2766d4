"""`alp`: run the platform and talk to it.

`alp up` / `alp serve` start servers; `alp db upgrade` and `alp users create` work on the database; the other
commands are HTTP clients of a running server (`--url`, or ALP_URL, default http://127.0.0.1:8000), sending
ALP_API_KEY as `X-API-Key` when it is set.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import typer
import uvicorn
from rich.console import Console
from rich.table import Table

from agent_lightning import __version__
from agent_lightning.agents.schemas import AgentStatus
from agent_lightning.core.config import SERVICE_PORTS, Settings, get_settings
from agent_lightning.follow import StreamRefused, StreamUnavailable, follow_task
from agent_lightning.orchestrator.schemas import TASK_FINISHED, TaskStatus
from agent_lightning.workflows.schemas import RUN_FINISHED, RunStatus

app = typer.Typer(
    help="Agent Lightning: route tasks to specialised AI agents that learn from outcomes.",
    no_args_is_help=True,
)
task_app = typer.Typer(help="Submit and manage one task.", no_args_is_help=True)
tasks_app = typer.Typer(help="List tasks.", no_args_is_help=True)
agents_app = typer.Typer(help="Manage the agent registry.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
policy_app = typer.Typer(
    help="The routing policy: show, switch, decision log, offline evaluation.", no_args_is_help=True
)
bench_app = typer.Typer(help="Benchmarks that run in this process.", no_args_is_help=True)
app.add_typer(task_app, name="task")
app.add_typer(tasks_app, name="tasks")
app.add_typer(agents_app, name="agents")
app.add_typer(db_app, name="db")
app.add_typer(policy_app, name="policy")
app.add_typer(bench_app, name="bench")
knowledge_app = typer.Typer(help="The knowledge base: add documents, search, stats.", no_args_is_help=True)
app.add_typer(knowledge_app, name="knowledge")
users_app = typer.Typer(help="Accounts for authentication (ALP_AUTH_ENABLED).", no_args_is_help=True)
app.add_typer(users_app, name="users")
workflows_app = typer.Typer(help="Workflows: list, run, export to Python.", no_args_is_help=True)
app.add_typer(workflows_app, name="workflows")

console = Console()
err = Console(stderr=True)

URL_OPTION = typer.Option(
    os.environ.get("ALP_URL", "http://127.0.0.1:8000"), "--url", help="Server URL (ALP_URL)."
)
INSECURE_HELP = "Listen beyond loopback with authentication off (every caller is a platform admin)."
INGEST_BATCH_BYTES = 128 * 1024
"""`alp knowledge add` sends documents in request bodies of at most this size (and the server's limit)."""
INGEST_TIMEOUT_S = 600.0


# -- servers ---------------------------------------------------------------------------------------------


@app.command()
def up(
    host: str = typer.Option(None, help="Interface to listen on (ALP_HOST)."),
    port: int = typer.Option(None, help="Port (ALP_PORT) for the one-process platform."),
    split: bool = typer.Option(False, "--split", help="Each service in its own process on its own port."),
    data_dir: Path = typer.Option(None, help="Where the SQLite file lives (ALP_DATA_DIR)."),
    insecure: bool = typer.Option(False, "--insecure", help=INSECURE_HELP),
) -> None:
    """Run the whole platform: one process on one port, or split into one process per service."""
    if data_dir:
        os.environ["ALP_DATA_DIR"] = str(data_dir)
    get_settings.cache_clear()
    settings = get_settings()
    host = host or settings.host
    warning = _check_exposure(settings, host, insecure)
    if split:
        _run_split(settings, host, insecure)
        return
    port = port or settings.port
    from agent_lightning.app import create_app

    with console.status("Migrating the database and loading the fleet…"):
        application = create_app(settings, bind_host=host)
    console.print(
        f"[bold green]Agent Lightning {__version__}[/] on http://{host}:{port}  (API docs: /docs)",
        soft_wrap=True,
    )
    if warning:
        console.print(warning, style="bold red", markup=False, soft_wrap=True)
    console.print(f"Dashboard: http://{host}:{port}/dashboard", soft_wrap=True)
    console.print(f"Database: {settings.resolved_database_url()}", soft_wrap=True)
    run_server(application, host, port, settings)


@app.command()
def serve(
    service: str = typer.Argument(
        ..., help="orchestrator, execution, models, knowledge, memory, monitoring, …"
    ),
    port: int = typer.Option(
        None, envvar="ALP_PORT", help="Port (ALP_PORT); defaults to the service's split-mode port."
    ),
    host: str = typer.Option(None, help="Interface to listen on."),
    insecure: bool = typer.Option(False, "--insecure", help=INSECURE_HELP),
) -> None:
    """Run one service in this process."""
    from agent_lightning.app import SERVICES, create_app

    if service not in SERVICES:
        err.print(f"[red]Unknown service '{service}'. Choose one of: {', '.join(SERVICES)}.[/]")
        raise typer.Exit(2)
    settings = get_settings()
    host = host or settings.host
    if warning := _check_exposure(settings, host, insecure):
        err.print(warning, style="bold red", markup=False, soft_wrap=True)
    application = create_app(settings, [service], migrate=settings.migrate_on_start, bind_host=host)
    run_server(application, host, port or SERVICE_PORTS[service], settings)


class _DrainingServer(uvicorn.Server):
    """uvicorn, telling the platform at the first SIGTERM/SIGINT to take no new work, so that the work in
    flight and the open requests drain together within ALP_SHUTDOWN_GRACE_S."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_exit = on_exit

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.on_exit()
        super().handle_exit(sig, frame)


def run_server(application: Any, host: str, port: int, settings: Settings) -> None:
    """Serve the application until SIGTERM or Ctrl-C, then drain (docs "Limits and recovery")."""
    config = uvicorn.Config(
        application,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_grace_s,
        log_config=None,
    )  # uvicorn's lines through the platform's pipeline (core/logging.py)
    _DrainingServer(config, application.state.platform.request_stop).run()


def _check_exposure(settings: Settings, host: str, insecure: bool) -> str | None:
    """Refuse to listen beyond loopback with authentication off, unless --insecure; the warning to show
    then."""
    from agent_lightning.core.exposure import binding_refusal, insecure_warning, is_loopback

    refusal = binding_refusal(host, auth_enabled=settings.auth_enabled, insecure=insecure)
    if refusal:
        err.print(refusal, style="red", markup=False, soft_wrap=True)
        raise typer.Exit(2)
    return insecure_warning(host) if not settings.auth_enabled and not is_loopback(host) else None


def _run_split(settings: Settings, host: str, insecure: bool = False) -> None:
    """Start each service as a child process wired to the others over HTTP; stop all on Ctrl-C."""
    from agent_lightning.core import topology
    from agent_lightning.core.db import Database

    with console.status("Migrating the database…"):
        asyncio.run(_upgrade(Database.configured(settings)))
    env = {**os.environ, **topology.wiring(lambda spec: f"http://{host}:{spec.port}")}
    children = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the children on SIGTERM as on Ctrl-C
    for spec in topology.SERVICES:
        if spec.name == "auth" and not settings.auth_enabled:
            continue  # nothing to serve: there are no logins
        cmd = [
            sys.executable,
            "-m",
            "agent_lightning.cli",
            "serve",
            spec.name,
            "--port",
            str(spec.port),
            "--host",
            host,
            *(["--insecure"] if insecure else []),
        ]
        children.append(subprocess.Popen(cmd, env={**env, **topology.process_env(spec)}))
        console.print(f"[green]{spec.name}[/] on http://{host}:{spec.port}")
    console.print(f"Dashboard: http://{host}:{topology.service('monitoring').port}/dashboard")
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:  # each drains its work within ALP_SHUTDOWN_GRACE_S
            try:
                child.wait(timeout=settings.shutdown_grace_s + 10)
            except subprocess.TimeoutExpired:
                child.kill()


async def _upgrade(db) -> None:
    await db.upgrade()
    await db.close()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply migrations to the configured database (ALP_DATABASE_URL or the SQLite file)."""
    from agent_lightning.core.db import Database

    settings = get_settings()
    with console.status("Applying migrations…"):
        asyncio.run(_upgrade(Database.configured(settings)))
    console.print("[green]Database is up to date.[/]")


async def _migration_heads(url: str) -> str | None:
    from sqlalchemy import text

    from agent_lightning.core.db import Database

    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
        return ",".join(sorted(versions)) or None
    finally:
        await db.close()


@db_app.command("backup")
def db_backup(target: Path = typer.Argument(..., help="The backup file to write (a tar file).")) -> None:
    """Back up the database (SQLite: online, with the data dir's index files; PostgreSQL: pg_dump)."""
    from agent_lightning.core import backup

    settings = get_settings()
    url = settings.resolved_database_url()
    try:
        heads = asyncio.run(_migration_heads(url))
        info = backup.backup(url, settings.data_dir, target, migration_head=heads)
    except backup.BackupError as exc:
        err.print(str(exc), style="red", markup=False, soft_wrap=True)
        raise typer.Exit(1) from exc
    console.print(
        f"[green]Backed up[/] the {info.backend} database ({info.files} file(s), {info.bytes:,} bytes) "
        f"to {info.path}"
    )


@db_app.command("restore")
def db_restore(
    source: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="A file written by `alp db backup`."
    ),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Replace the database with a backup (stop the platform first), then apply newer migrations."""
    from agent_lightning.core import backup
    from agent_lightning.core.db import Database

    settings = get_settings()
    url = settings.resolved_database_url()
    try:
        manifest = backup.read_manifest(source)
        if not yes:
            typer.confirm(f"Replace {url} with the backup of {manifest['created_at']}?", abort=True)
        backup.restore(url, settings.data_dir, source)
        asyncio.run(_upgrade(Database(url)))
    except backup.BackupError as exc:
        err.print(str(exc), style="red", markup=False, soft_wrap=True)
        raise typer.Exit(1) from exc
    console.print(
        f"[green]Restored[/] the backup of {manifest['created_at']} (version {manifest['version']})."
    )


async def _create_user(settings: Settings, username: str, password: str, role: str, tenant: str):
    from agent_lightning.auth.service import AuthService
    from agent_lightning.core.db import Database
    from agent_lightning.core.tenancy import set_tenant

    db = Database.configured(settings)
    try:
        await db.upgrade()
        set_tenant(tenant)
        return await AuthService(db, settings).create_user(username, password, role)
    finally:
        await db.close()


@users_app.command("create")
def users_create(
    username: str = typer.Argument(..., help="Login name."),
    role: str = typer.Option("admin", "--role", help="platform_admin, admin, operator or viewer."),
    tenant: str = typer.Option(None, "--tenant", help="Tenant of the account (default ALP_TENANT_ID)."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from standard input."
    ),
) -> None:
    """Create an account in the configured database (the first admin, typically)."""
    from pydantic import ValidationError

    from agent_lightning.auth.schemas import UserCreate
    from agent_lightning.core.errors import AppError

    settings = get_settings()
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        body = UserCreate(username=username, password=password, role=role)
        user = asyncio.run(
            _create_user(settings, body.username, body.password, body.role, tenant or settings.tenant_id)
        )
    except ValidationError as exc:
        problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        err.print(f"[red]{problems}[/]")
        raise typer.Exit(2) from exc
    except AppError as exc:
        err.print(f"[red]{exc.code}: {exc.message}[/]")
        raise typer.Exit(1) from exc
    console.print(
        f"[green]Created {user.role} {user.username!r} in tenant {user.tenant_id!r}[/] (id {user.id})."
    )


@app.command()
def health(
    url: str = typer.Option(
        None, "--url", help="Server URL; default http://127.0.0.1:$ALP_PORT (this container)."
    ),
    ready: bool = typer.Option(False, "--ready", help="Check readiness (database, queue, models) too."),
) -> None:
    """Exit 0 when the server answers its health check (the container image's HEALTHCHECK)."""
    url = url or f"http://127.0.0.1:{get_settings().port}"
    path = "/health/ready" if ready else "/health"
    try:
        response = httpx.get(url.rstrip("/") + path, timeout=5)
    except httpx.HTTPError as exc:
        err.print(f"[red]{url}{path}: {exc}[/]")
        raise typer.Exit(1) from exc
    if response.status_code != 200:
        err.print(f"[red]{url}{path}: {response.status_code} {response.text[:300]}[/]")
        raise typer.Exit(1)
    console.print(f"{url}{path}: ok")


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


# -- HTTP client commands ----------------------------------------------------------------------------------


def _table(*columns: str) -> Table:
    """A table whose identifiers never wrap (so they can be copied), whatever the terminal width."""
    table = Table()
    for i, column in enumerate(columns):
        table.add_column(column, no_wrap=i < 3, overflow="ellipsis")
    return table


def _credentials() -> dict[str, str]:
    api_key = os.environ.get("ALP_API_KEY")
    return {"X-API-Key": api_key} if api_key else {}


BUSY_RETRIES = 5
"""Times a request refused with a Retry-After (429; 503 on reads) is sent again after waiting as told."""


def _call(url: str, method: str, path: str, **kwargs: Any) -> Any:
    """The JSON answer of a request; the server's error is printed and the command exits 1."""
    response = _request(url, method, path, **kwargs)
    if response.status_code >= 400:
        _fail(response)
    return response.json()


def _request(
    url: str,
    method: str,
    path: str,
    *,
    timeout: float = 60,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """A request with the credentials, sent again (up to BUSY_RETRIES times) when refused with a
    Retry-After."""
    headers = {**(headers or {}), **_credentials()}
    for attempt in range(BUSY_RETRIES + 1):
        try:
            response = httpx.request(
                method, url.rstrip("/") + path, timeout=timeout, headers=headers, **kwargs
            )
        except httpx.HTTPError as exc:
            err.print(f"Cannot reach {url}: {exc}. Is `alp up` running?", style="red", markup=False)
            raise typer.Exit(1) from exc
        wait = _retry_after(response, method)
        if wait is None or attempt == BUSY_RETRIES:
            return response
        err.print(
            f"{response.status_code} from {path}: waiting {wait:.0f} s as the server asks.",
            style="yellow",
            markup=False,
        )
        time.sleep(wait)
    raise AssertionError("unreachable")


def _retry_after(response: httpx.Response, method: str) -> float | None:
    """Seconds to wait before sending again, when the server refused for now and said how long to wait."""
    busy = response.status_code == 429 or (response.status_code == 503 and method == "GET")
    if not busy or "retry-after" not in response.headers:
        return None
    try:
        return min(max(float(response.headers["retry-after"]), 0.0), 120.0)
    except ValueError:
        return None


def _fail(response: httpx.Response) -> None:
    """Print the server's error and exit 1."""
    try:
        error = response.json()["error"]
        err.print(f"{response.status_code} {error['code']}: {error['message']}", style="red", markup=False)
        if error.get("details"):
            err.print(json.dumps(error["details"], indent=2), markup=False)
    except (ValueError, KeyError, TypeError):
        err.print(f"{response.status_code}: {response.text[:500]}", style="red", markup=False)
    raise typer.Exit(1)


@task_app.command("submit")
def task_submit(
    text: str = typer.Argument(..., help="What should be done."),
    agent: str = typer.Option(None, "--agent", help="Use this agent instead of routing."),
    priority: int = typer.Option(5, min=1, max=10),
    force: bool = typer.Option(False, "--force", help="Run even when the routing confidence is low."),
    wait: bool = typer.Option(False, "--wait", help="Wait for the result and print it."),
    timeout: float = typer.Option(600, help="Seconds to wait with --wait."),
    url: str = URL_OPTION,
) -> None:
    """Submit a task; the routing policy picks the agent unless --agent is given."""
    body = {"description": text, "priority": priority, "force_execute": force}
    if agent:
        body["agent_id"] = agent
    assigned = _call(url, "POST", "/assign-task", json=body)
    console.print(
        f"Task [bold]{assigned['task_id']}[/] → [cyan]{assigned['assigned_agent']}[/] "
        f"(confidence {assigned['confidence']:.2f}, {assigned['status']})"
    )
    if assigned["status"] == TaskStatus.AWAITING_REVIEW:
        console.print(f"[yellow]Held for review: {assigned['reason']}[/]")
        console.print(f"Release it with: alp task approve {assigned['task_id']}")
        raise typer.Exit(3)
    if wait:
        task = _follow(url, assigned["task_id"], timeout)
        _print_result(task)
        if task["status"] != TaskStatus.SUCCEEDED:
            raise typer.Exit(1)


def _follow(url: str, task_id: str, timeout: float) -> dict:
    """Wait for a task over the server's event stream (a server without one is polled)."""
    path = f"/tasks/{task_id}"
    deadline = time.monotonic() + timeout
    with (
        console.status("Waiting…") as status,
        httpx.Client(base_url=url.rstrip("/"), headers=_credentials()) as client,
    ):
        try:
            task = follow_task(
                client,
                task_id,
                fetch=lambda: _call(url, "GET", path),
                deadline=deadline,
                progress=lambda state: status.update(f"Task {state}…"),
            )
        except StreamUnavailable:
            return _wait(url, path, deadline - time.monotonic(), _describe_task)
        except StreamRefused as refused:
            _fail(refused.response)
    if task is None:
        err.print(f"Task {task_id} did not finish within {timeout:.0f} s.", style="red", markup=False)
        raise typer.Exit(1)
    return task


def _describe_task(task: dict) -> str:
    return f"Task {task['status']}… (attempt {task['attempts_count']}/{task['max_attempts']})"


def _wait(
    url: str,
    path: str,
    timeout: float,
    describe: Callable[[dict], str],
    finished: tuple[str, ...] = TASK_FINISHED,
) -> dict:
    """Poll `path` (a task or a workflow run) until its status is final, less often as it runs longer."""
    deadline = time.monotonic() + timeout
    pause = 0.3
    with console.status("Waiting…") as status:
        while True:
            record = _call(url, "GET", path)
            status.update(describe(record))
            if record["status"] in finished:
                return record
            if time.monotonic() > deadline:
                err.print(f"Still {record['status']} after {timeout:.0f} s.", style="red", markup=False)
                raise typer.Exit(1)
            time.sleep(pause)
            pause = min(pause * 1.5, 5.0)


def _print_result(task: dict) -> None:
    colour = "green" if task["status"] == TaskStatus.SUCCEEDED else "red"
    console.print(f"[{colour}]{task['status']}[/] by {task['assigned_agent']} (v{task['agent_version']})")
    if task.get("result"):
        console.print(task["result"])
    if task.get("error"):
        console.print(f"[red]{task['error']}[/]")


@task_app.command("show")
def task_show(task_id: str, url: str = URL_OPTION, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show a task with its attempts, routing decisions and rewards."""
    task = _call(url, "GET", f"/tasks/{task_id}")
    if as_json:
        console.print_json(data=task)
        return
    console.print(f"[bold]{task['task_id']}[/]  {task['status']}  priority {task['priority']}")
    console.print(f"Description: {task['description']}")
    console.print(
        f"Agent: {task['assigned_agent']} v{task['agent_version']}  confidence {task['confidence']}"
    )
    console.print(f"Reason: {task['reason']}")
    table = _table("attempt", "agent", "model", "status", "latency ms", "tokens", "error")
    for a in task["attempts"]:
        latency = f"{a['latency_ms']:.0f}" if a["latency_ms"] is not None else ""
        tokens = f"{a['prompt_tokens']}+{a['completion_tokens']}"
        table.add_row(
            str(a["number"]), a["agent_id"], a["model"] or "", a["status"], latency, tokens, a["error"] or ""
        )
    console.print(table)
    _print_result(task)


@task_app.command("approve")
def task_approve(task_id: str, agent: str = typer.Option(None, "--agent"), url: str = URL_OPTION) -> None:
    """Release a task held for review (optionally with another agent)."""
    result = _call(url, "POST", f"/tasks/{task_id}/approve", json={"agent_id": agent} if agent else {})
    console.print(f"Task {task_id} → {result['assigned_agent']} ({result['status']})")


@task_app.command("cancel")
def task_cancel(task_id: str, url: str = URL_OPTION) -> None:
    """Cancel an unfinished task."""
    result = _call(url, "POST", f"/tasks/{task_id}/cancel")
    console.print(f"Task {task_id} is {result['status']}.")


@task_app.command("retry")
def task_retry(task_id: str, url: str = URL_OPTION) -> None:
    """Run a failed or cancelled task again."""
    result = _call(url, "POST", f"/tasks/{task_id}/retry")
    console.print(f"Task {task_id} is {result['status']}.")


@task_app.command("step")
def task_step(
    task_id: str,
    number: int,
    decision: str = typer.Argument(..., help="approve or deny"),
    url: str = URL_OPTION,
) -> None:
    """Approve or deny a tool call the task waits on."""
    if decision not in ("approve", "deny"):
        err.print("[red]The decision is approve or deny.[/]")
        raise typer.Exit(2)
    step = _call(url, "POST", f"/tasks/{task_id}/steps/{number}/{decision}")
    console.print(f"Step {number} ({step['name']}) is {step['status']}.")


@task_app.command("feedback")
def task_feedback(
    task_id: str,
    score: float = typer.Argument(..., min=0, max=10, help="0 (useless) to 10 (perfect)."),
    comment: str = typer.Option("", "--comment"),
    url: str = URL_OPTION,
) -> None:
    """Score a finished task; the routing policy learns from it."""
    result = _call(url, "POST", f"/tasks/{task_id}/feedback", json={"score": score, "comment": comment})
    console.print(
        f"Reward {result['reward']} for {result['agent_id']} (policy version {result['policy']['version']})."
    )


@tasks_app.command("list")
def tasks_list(
    status: list[str] = typer.Option(None, "--status", help="Repeat for several."),
    agent: str = typer.Option(None, "--agent"),
    text: str = typer.Option(None, "--text", help="Substring of the description."),
    priority_min: int = typer.Option(None, min=1, max=10),
    priority_max: int = typer.Option(None, min=1, max=10),
    limit: int = typer.Option(20, min=1, max=500),
    cursor: str = typer.Option(None, help="next_cursor of the previous page."),
    url: str = URL_OPTION,
) -> None:
    """List tasks, newest first."""
    params: dict[str, Any] = {"limit": limit}
    for key, value in {
        "status": status,
        "agent_id": agent,
        "text": text,
        "priority_min": priority_min,
        "priority_max": priority_max,
        "cursor": cursor,
    }.items():
        if value:
            params[key] = value
    page = _call(url, "GET", "/tasks", params=params)
    table = _table("task", "status", "agent", "priority", "created", "description")
    for t in page["items"]:
        table.add_row(
            t["task_id"],
            t["status"],
            t["assigned_agent"] or "",
            str(t["priority"]),
            t["created_at"][:19],
            t["description"][:60],
        )
    console.print(table)
    if page["next_cursor"]:
        console.print(f"More: --cursor {page['next_cursor']}")


@agents_app.command("list")
def agents_list(status: str = typer.Option(None, "--status"), url: str = URL_OPTION) -> None:
    """List agents."""
    data = _call(url, "GET", "/api/v2/agents", params={"status": status} if status else None)
    table = _table("id", "name", "status", "version", "model", "capabilities")
    for a in data["items"]:
        table.add_row(
            a["id"], a["name"], a["status"], str(a["version"]), a["model"], ", ".join(a["capabilities"])
        )
    console.print(table)


@agents_app.command("show")
def agents_show(agent_id: str, version: int = typer.Option(None), url: str = URL_OPTION) -> None:
    """Show one agent (current version, or --version N)."""
    console.print_json(
        data=_call(url, "GET", f"/api/v2/agents/{agent_id}", params={"version": version} if version else None)
    )


def _spec_options(prompt, model, temperature, max_tokens, capability, expertise, tool) -> dict[str, Any]:
    values = {
        "system_prompt": prompt,
        "model": model,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "capabilities": capability or None,
        "expertise": expertise or None,
        "tools": tool or None,
    }
    return {k: v for k, v in values.items() if v is not None}


@agents_app.command("create")
def agents_create(
    agent_id: str = typer.Argument(..., help="Lower-case id, e.g. rust_developer."),
    name: str = typer.Option(..., "--name"),
    prompt: str = typer.Option(None, "--prompt", help="System prompt."),
    from_file: Path = typer.Option(None, "--file", help="JSON with any agent fields."),
    model: str = typer.Option(None, "--model"),
    temperature: float = typer.Option(None, "--temperature"),
    max_tokens: int = typer.Option(None, "--max-tokens"),
    capability: list[str] = typer.Option(None, "--capability"),
    expertise: list[str] = typer.Option(None, "--expertise"),
    tool: list[str] = typer.Option(None, "--tool"),
    draft: bool = typer.Option(False, "--draft", help="Create as draft (not assigned until activated)."),
    url: str = URL_OPTION,
) -> None:
    """Create an agent."""
    body: dict[str, Any] = json.loads(from_file.read_text()) if from_file else {}
    body.update({"id": agent_id, "name": name, "status": AgentStatus.DRAFT if draft else AgentStatus.ACTIVE})
    body.update(_spec_options(prompt, model, temperature, max_tokens, capability, expertise, tool))
    agent = _call(url, "POST", "/api/v2/agents", json=body)
    console.print(f"Created {agent['id']} v{agent['version']} ({agent['status']}).")


@agents_app.command("update")
def agents_update(
    agent_id: str,
    name: str = typer.Option(None, "--name"),
    prompt: str = typer.Option(None, "--prompt"),
    model: str = typer.Option(None, "--model"),
    temperature: float = typer.Option(None, "--temperature"),
    max_tokens: int = typer.Option(None, "--max-tokens"),
    capability: list[str] = typer.Option(None, "--capability"),
    expertise: list[str] = typer.Option(None, "--expertise"),
    tool: list[str] = typer.Option(None, "--tool"),
    url: str = URL_OPTION,
) -> None:
    """Update an agent; a change to its spec makes a new version."""
    body = _spec_options(prompt, model, temperature, max_tokens, capability, expertise, tool)
    if name:
        body["name"] = name
    agent = _call(url, "PATCH", f"/api/v2/agents/{agent_id}", json=body)
    console.print(f"{agent['id']} is now v{agent['version']}.")


@agents_app.command("retire")
def agents_retire(agent_id: str, url: str = URL_OPTION) -> None:
    """Retire an agent: it is never assigned again."""
    agent = _call(url, "POST", f"/api/v2/agents/{agent_id}/retire")
    console.print(f"{agent['id']} is {agent['status']}.")


@agents_app.command("tool-policy")
def agents_tool_policy(
    allow: list[str] = typer.Option(
        None, "--allow", help="Only these permissions (repeat); replaces the list."
    ),
    allow_all: bool = typer.Option(False, "--allow-all", help="No allow list: every permission not denied."),
    deny: list[str] = typer.Option(
        None, "--deny", help="Never these permissions (repeat); replaces the list."
    ),
    deny_none: bool = typer.Option(False, "--deny-none", help="Empty the deny list."),
    url: str = URL_OPTION,
) -> None:
    """Show your tenant's tool policy, or change it (admin): which tool permissions its agents may have."""
    policy = _call(url, "GET", "/api/v2/agents/tool-policy")
    if allow or allow_all or deny or deny_none:
        if allow or allow_all:
            policy["allow"] = None if allow_all else allow
        if deny or deny_none:
            policy["deny"] = [] if deny_none else deny
        policy = _call(url, "PUT", "/api/v2/agents/tool-policy", json=policy)
    allowed = "any not denied" if policy["allow"] is None else ", ".join(policy["allow"]) or "none"
    console.print(f"Allowed: {allowed}\nDenied: {', '.join(policy['deny']) or 'none'}")


# -- routing policy ----------------------------------------------------------------------------------------


def _param(pair: str) -> tuple[str, Any]:
    key, _, raw = pair.partition("=")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


@policy_app.command("show")
def policy_show(url: str = URL_OPTION, as_json: bool = typer.Option(False, "--json")) -> None:
    """The routing policy in use, its parameters and per-agent statistics."""
    info = _call(url, "GET", "/policy")
    if as_json:
        console.print_json(data=info)
        return
    default = " (deployment default)" if info["default"] else ""
    console.print(
        f"Policy [bold]{info['name']}[/] v{info['version']}{default}  params {json.dumps(info['params'])}"
    )
    console.print(
        f"Embeddings: {'yes' if info['uses_embeddings'] else 'no'}   available: "
        f"{', '.join(info['available'])}"
    )
    table = _table("agent", "decisions", "rewards", "mean reward", "last decision")
    for a in info["agents"]:
        mean = "" if a["mean_reward"] is None else f"{a['mean_reward']:.3f}"
        table.add_row(
            a["agent_id"], str(a["decisions"]), str(a["rewards"]), mean, (a["last_decision_at"] or "")[:19]
        )
    console.print(table)


@policy_app.command("switch")
def policy_switch(
    name: str = typer.Argument(..., help="seed-q, capability, thompson, linucb, shared or topics."),
    param: list[str] = typer.Option(None, "--param", help="KEY=VALUE (JSON value); repeat for several."),
    url: str = URL_OPTION,
) -> None:
    """Route this tenant's tasks with another policy from now on (its saved state is resumed)."""
    info = _call(url, "PUT", "/policy", json={"name": name, "params": dict(_param(p) for p in param or [])})
    console.print(f"Now routing with [bold]{info['name']}[/] v{info['version']} {json.dumps(info['params'])}")


@policy_app.command("decisions")
def policy_decisions(
    limit: int = typer.Option(20, min=1, max=500),
    policy: str = typer.Option(None, "--policy", help="Only decisions made by this policy."),
    cursor: str = typer.Option(None, help="next_cursor of the previous page."),
    url: str = URL_OPTION,
) -> None:
    """The decision log, newest first, with the rewards joined to each decision."""
    params = {k: v for k, v in {"limit": limit, "policy": policy, "cursor": cursor}.items() if v}
    page = _call(url, "GET", "/policy/decisions", params=params)
    table = _table("decision", "policy", "agent", "p", "rewards", "task")
    for d in page["items"]:
        rewards = ", ".join(f"{r['source']} {r['reward']:.2f}" for r in d["rewards"])
        table.add_row(
            str(d["id"]),
            f"{d['policy']} v{d['policy_version']}",
            d["chosen_agent"],
            f"{d['probability']:.3f}",
            rewards,
            d["task_id"],
        )
    console.print(table)
    if page["next_cursor"]:
        console.print(f"More: --cursor {page['next_cursor']}")


@policy_app.command("evaluate")
def policy_evaluate(
    policy: str = typer.Argument(..., help="The policy to evaluate on the logged decisions."),
    since: datetime = typer.Option(None, "--since", help="Only decisions from this time (ISO 8601)."),
    param: list[str] = typer.Option(None, "--param", help="KEY=VALUE (JSON value); repeat for several."),
    logged_by: str = typer.Option(None, "--logged-by", help="Only decisions made by this policy."),
    limit: int = typer.Option(5000, min=1, help="The newest decisions to use, at most."),
    url: str = URL_OPTION,
) -> None:
    """Estimate from the decision log the mean reward POLICY would have earned (IPS and doubly robust)."""
    body: dict[str, Any] = {"policy": policy, "params": dict(_param(p) for p in param or []), "limit": limit}
    if since:
        body["since"] = since.isoformat()
    if logged_by:
        body["logged_by"] = logged_by
    report = _call(url, "POST", "/policy/evaluate", json=body)
    if not report["decisions"]:
        console.print("[yellow]No rewarded decisions in the log for that selection.[/]")
        raise typer.Exit(1)
    console.print(
        f"{report['policy']} ({report['state']} state) on {report['decisions']} rewarded decisions; "
        f"effective sample size {report['effective_sample_size']}, agrees with the log on "
        f"{100 * report['agreement']:.0f} %"
    )
    table = _table("estimate", "mean reward", "95 % interval")
    for label, key in (
        ("logged (what happened)", "logged_reward"),
        ("IPS", "ips"),
        ("doubly robust", "doubly_robust"),
    ):
        e = report[key]
        interval = "n/a" if e["low"] is None else f"{e['low']:.3f} – {e['high']:.3f}"
        table.add_row(label, f"{e['value']:.3f}", interval)
    console.print(table)


PLOT_NEEDS = (
    "--plot draws with matplotlib, which the bench extra installs: "
    ".venv/bin/pip install -e '.[bench]' in the checkout (or pip install matplotlib)."
)


@bench_app.command("routing")
def bench_routing(
    tasks: int = typer.Option(5000, min=1000, help="Tasks per run (at least 5000 but with --family)."),
    seeds: str = typer.Option("1,2,3", help="Comma-separated seeds; each policy runs on each seed's stream."),
    family: bool = typer.Option(
        False, "--family", help="Run on the family of generated worlds instead (mean ± sd over --worlds)."
    ),
    worlds: str = typer.Option(
        "heldout",
        help="With --family: heldout (today's world and 10 held-out seeds), tuning (20 seeds), "
        "or comma-separated generator seeds (and 'today').",
    ),
    policies: str = typer.Option(
        "seed-q,capability,thompson,linucb,shared,topics",
        help="Comma-separated policies; with --family also category-ucb and category-ts (references told "
        "the category).",
    ),
    markdown: Path = typer.Option(None, "--markdown", help="Also write the table here as Markdown."),
    plot: Path = typer.Option(
        None, "--plot", help="Also draw the regret curves to this PNG (needs matplotlib)."
    ),
    embeddings: str = typer.Option(
        "hashed", help="Task embeddings: hashed (words, no model), minilm (local model) or none."
    ),
    offline_log: str = typer.Option(
        "linucb",
        "--offline-log",
        help="With --family: the policy whose decisions the other policies are evaluated on offline "
        "(IPS, doubly robust); 'none' skips it.",
    ),
) -> None:
    """Run the routing benchmark: every policy on the same simulated streams, against an oracle."""
    if plot:  # before minutes of simulation, not after
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            err.print(PLOT_NEEDS, style="red", markup=False)  # no markup: rich would take [bench] for a tag
            raise typer.Exit(2) from None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from agent_lightning.bench import routing, routing_family
    from agent_lightning.orchestrator.policy import POLICY_NAMES

    names = tuple(p.strip() for p in policies.split(",") if p.strip())
    if embeddings not in routing.EMBEDDINGS:
        err.print(
            f"Unknown embeddings {embeddings}: choose from {', '.join(routing.EMBEDDINGS)}.", markup=False
        )
        raise typer.Exit(2)
    known = (*POLICY_NAMES, *routing_family.REFERENCES) if family else POLICY_NAMES
    if unknown := [name for name in names if name not in known]:
        err.print(f"Unknown policy {', '.join(unknown)}: choose from {', '.join(known)}.", markup=False)
        raise typer.Exit(2)
    if "seed-q" not in names:
        names = ("seed-q", *names)  # the baseline every ratio is taken against
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    if family:
        try:
            members = routing_family.members(worlds)
        except ValueError as exc:
            err.print(str(exc), style="red", markup=False)
            raise typer.Exit(2) from None
        with Progress(*columns, console=console) as progress:
            bar = progress.add_task("routing family", total=len(names) * len(members))
            family_summaries = routing_family.run_family(
                names,
                members,
                tasks,
                on_step=lambda: progress.advance(bar),
                embeddings=embeddings,
                logger=None if offline_log == "none" else offline_log,
            )
        table = routing_family.markdown_table(family_summaries)
        if offline := routing_family.offline_report(family_summaries, offline_log):
            table += "\n\n" + offline
        console.print(
            f"{len(members)} worlds ({worlds}), {tasks} tasks each, {embeddings} embeddings; "
            "mean ± sd over the worlds"
        )
        console.print(table)
        if markdown:
            markdown.write_text(table + "\n")
            console.print(f"Table written to {markdown}")
        if plot:
            routing_family.plot(family_summaries, str(plot))
            console.print(f"Plot written to {plot}")
        return
    if tasks < 5000:
        err.print("The table reports regret at 5k tasks: run at least 5000 (fewer only with --family).")
        raise typer.Exit(2)
    seed_list = tuple(int(s) for s in seeds.split(","))
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("routing benchmark", total=len(names) * len(seed_list) * tasks)
        summaries = routing.run_benchmark(
            names, seed_list, tasks, on_step=lambda: progress.advance(bar), embeddings=embeddings
        )
    table = routing.markdown_table(summaries)
    console.print(table)
    if markdown:
        markdown.write_text(table + "\n")
        console.print(f"Table written to {markdown}")
    if plot:
        routing.plot(summaries, str(plot))
        console.print(f"Plot written to {plot}")


# --- knowledge ----------------------------------------------------------------------------------------


def _knowledge_files(paths: list[Path]) -> list[Path]:
    """The files named, and the text, Markdown, HTML, PDF and Word files under the folders named."""
    from agent_lightning.knowledge.ingest import _SUFFIXES

    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(
                    p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (*_SUFFIXES, ".docx")
                )
            )
        elif path.is_file():
            found.append(path)
        else:
            err.print(f"[yellow]Skipped {path}: not found[/]")
    return found


def _text_parts(text: str, limit: int) -> list[str]:
    """`text` cut into parts of at most `limit` characters, on paragraphs, else on the last space."""
    pieces: list[str] = []
    room = limit - 2  # each piece is followed by a blank line
    for paragraph in text.split("\n\n"):
        while len(paragraph) > room:
            cut = paragraph.rfind(" ", 0, room)
            cut = cut if cut > room // 2 else room
            pieces.append(paragraph[:cut])
            paragraph = paragraph[cut:].lstrip()
        pieces.append(paragraph)
    parts, current = [], ""
    for piece in pieces:
        if current and len(current) + len(piece) + 2 > limit:
            parts.append(current)
            current = ""
        current += piece + "\n\n"
    return [*parts, current] if current.strip() else parts


def _file_documents(path: Path, params: dict[str, Any], limit: int) -> list[tuple[str, bytes]]:
    """A file as JSON documents of `/knowledge/items/batch`, each under `limit` bytes, with their
    fingerprints: one, or a large file's text in parts."""
    from agent_lightning.core.errors import AppError
    from agent_lightning.knowledge.fingerprint import fingerprint
    from agent_lightning.knowledge.uploads import UploadLimits, read

    try:  # the server's check of uploads: what the bytes are, decompression bounded
        upload = read(path.read_bytes(), path.name, None, UploadLimits.from_settings(get_settings()))
    except AppError as exc:
        err.print(f"Skipped {path}: {exc.message}", style="yellow", markup=False)
        return []
    text = upload.text
    if not text.strip():
        err.print(f"Skipped {path}: no text", style="yellow", markup=False)
        return []

    def document(content: str, title: str | None) -> tuple[str, bytes]:
        body = {"content": content, "format": upload.chunk_as, "source": path.name, "title": title, **params}
        mark = fingerprint(
            content=content, fmt=upload.chunk_as, agent_id=params.get("agent_id"), shared=params["shared"]
        )
        return mark, json.dumps(body, ensure_ascii=False).encode()

    whole = document(text, None)
    if len(whole[1]) < limit - 64:
        return [whole]
    parts = _text_parts(text, limit // 3)  # JSON escaping and UTF-8 may grow the text
    return [document(part, f"{path.stem} ({n}/{len(parts)})") for n, part in enumerate(parts, start=1)]


KNOWN_QUERY = 100
"""Fingerprints asked about per request (GET /knowledge/items/known)."""


def _known(url: str, marks: list[str]) -> set[str]:
    """Which documents the server holds already (a server without the query: none)."""
    known: set[str] = set()
    for start in range(0, len(marks), KNOWN_QUERY):
        response = _request(
            url, "GET", "/knowledge/items/known", params={"hash": marks[start : start + KNOWN_QUERY]}
        )
        if response.status_code == 404:
            return set()  # an older server: send everything (it still stores each document once)
        if response.status_code >= 400:
            _fail(response)
        known.update(response.json()["known"])
    return known


def _pending(
    url: str, files: list[Path], params: dict[str, Any], limit: int, stored: list[int], window: int = 50
) -> Iterator[tuple[Path, list[bytes]]]:
    """Each file with its documents the server does not hold yet (none: stored already, or nothing to send);
    the documents it holds are counted in `stored[0]`."""
    for start in range(0, len(files), window):
        group = {path: _file_documents(path, params, limit) for path in files[start : start + window]}
        known = _known(url, [mark for documents in group.values() for mark, _ in documents])
        for path, documents in group.items():
            stored[0] += sum(1 for mark, _ in documents if mark in known)
            yield path, [body for mark, body in documents if mark not in known]


def _batches(pending: Iterator[tuple[Path, list[bytes]]], limit: int) -> Iterator[tuple[list[bytes], int]]:
    """The pending documents grouped into request bodies of at most `limit` bytes; with each, how many files
    it completes (a batch with no documents completes files that need nothing sent)."""
    batch: list[bytes] = []
    size = done = 0
    for _path, documents in pending:
        for document in documents:
            if batch and size + len(document) + 16 > limit:
                yield batch, done
                batch, size, done = [], 0, 0
            batch.append(document)
            size += len(document) + 1
        done += 1
    if batch or done:
        yield batch, done


@knowledge_app.command("add")
def knowledge_add(
    paths: list[Path] = typer.Argument(..., help="Files or folders (text, Markdown, HTML, PDF, Word)."),
    category: str = typer.Option("technical_documentation", "--category"),
    agent: str = typer.Option(None, "--agent", help="Only this agent sees the documents."),
    shared: bool = typer.Option(False, "--shared", help="Visible to every tenant."),
    concurrency: int = typer.Option(2, "--concurrency", min=1, max=16, help="Batches sent at once."),
    url: str = URL_OPTION,
) -> None:
    """Ingest documents into the knowledge base, with a progress bar. Documents go in batches (one request,
    one embedding pass and one transaction for many); those the server holds already are not sent, so an
    interrupted run continues where it stopped."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    from rich.progress import Progress

    files = _knowledge_files(paths)
    params: dict[str, Any] = {"category": category, "shared": shared}
    if agent:
        params["agent_id"] = agent
    # The server's body limit (ALP_MAX_BODY_BYTES), and at most INGEST_BATCH_BYTES so that a request embeds
    # a few hundred chunks at most and the bar moves.
    limit = min(get_settings().max_body_bytes, INGEST_BATCH_BYTES)
    chunks = sent = 0
    stored = [0]  # documents the server held already

    def send(batch: list[bytes]) -> int:
        if not batch:
            return 0
        body = b'{"items": [' + b", ".join(batch) + b"]}"
        return _call(
            url,
            "POST",
            "/knowledge/items/batch",
            content=body,
            timeout=INGEST_TIMEOUT_S,
            headers={"Content-Type": "application/json"},
        )["chunks"]

    with Progress(console=console) as progress, ThreadPoolExecutor(concurrency) as pool:
        bar = progress.add_task("Ingesting", total=len(files))
        running: dict[Any, int] = {}

        def collect(until: int) -> None:
            nonlocal chunks
            while len(running) > until:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    chunks += future.result()
                    progress.advance(bar, running.pop(future))

        for batch, done in _batches(_pending(url, files, params, limit, stored), limit):
            sent += len(batch)
            running[pool.submit(send, batch)] = done
            collect(until=concurrency * 2)
        collect(until=0)
    console.print(f"{len(files)} documents, {chunks} new chunks ({sent} sent, {stored[0]} stored already).")


@knowledge_app.command("search")
def knowledge_search(
    query: str,
    k: int = typer.Option(5, "--k"),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid, vector or fulltext."),
    url: str = URL_OPTION,
) -> None:
    """Search the knowledge base."""
    result = _call(url, "POST", "/knowledge/search", json={"query": query, "k": k, "mode": mode})
    table = _table("score", "title", "heading", "text")
    for hit in result["hits"]:
        table.add_row(f"{hit['score']:.4f}", hit["title"][:40], hit["heading"][:30], hit["text"][:80])
    console.print(table)


@knowledge_app.command("stats")
def knowledge_stats(url: str = URL_OPTION) -> None:
    """Counts, usage and the vector backend."""
    console.print_json(json.dumps(_call(url, "GET", "/knowledge/stats")))


# -- workflows -----------------------------------------------------------------------------------------------


def _input_pair(pair: str) -> tuple[str, str]:
    name, sep, value = pair.partition("=")
    if not sep or not name:
        err.print(f"[red]--input takes NAME=VALUE, not {pair!r}.[/]")
        raise typer.Exit(2)
    return name, value


@workflows_app.command("list")
def workflows_list(url: str = URL_OPTION) -> None:
    """The workflows, most recently changed first."""
    table = _table("id", "version", "name", "updated")
    for item in _call(url, "GET", "/workflows")["items"]:
        table.add_row(item["id"], f"v{item['latest_version']}", item["name"], item["updated_at"][:19])
    console.print(table)


@workflows_app.command("run")
def workflows_run(
    workflow_id: str,
    input: list[str] = typer.Option(None, "--input", "-i", help="NAME=VALUE, repeatable."),
    version: int = typer.Option(None, "--version", help="Run this version; default the latest."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait for the run and print its outputs."),
    timeout: float = typer.Option(600, help="Seconds to wait."),
    url: str = URL_OPTION,
) -> None:
    """Start a run with inputs; wait for it and print each node's status and the outputs."""
    body: dict[str, Any] = {"inputs": dict(_input_pair(p) for p in input or [])}
    if version:
        body["version"] = version
    accepted = _call(url, "POST", f"/workflows/{workflow_id}/runs", json=body)
    console.print(f"Run [bold]{accepted['run_id']}[/] of {workflow_id} v{accepted['version']}")
    if not wait:
        return
    run = _wait(
        url, f"/workflows/runs/{accepted['run_id']}", timeout, lambda r: f"Run {r['status']}…", RUN_FINISHED
    )
    table = _table("node", "type", "status", "task", "error")
    for node in run["nodes"]:
        table.add_row(
            node["node_id"], node["type"], node["status"], node["task_id"] or "", node["error"] or ""
        )
    console.print(table)
    colour = "green" if run["status"] == RunStatus.SUCCEEDED else "red"
    console.print(f"[{colour}]{run['status']}[/]" + (f": {run['error']}" if run["error"] else ""))
    console.print_json(data=run["outputs"])
    if run["status"] != RunStatus.SUCCEEDED:
        raise typer.Exit(1)


@workflows_app.command("export")
def workflows_export(
    workflow_id: str,
    version: int = typer.Option(None, "--version"),
    output: Path = typer.Option(None, "--output", "-o", help="Write the script here instead of printing it."),
    url: str = URL_OPTION,
) -> None:
    """The workflow as a Python script that runs it against the HTTP API."""
    params: dict[str, Any] = {"language": "python"}
    if version:
        params["version"] = version
    exported = _call(url, "GET", f"/workflows/{workflow_id}/export", params=params)
    if output is None:
        sys.stdout.write(exported["code"])
        return
    output.write_text(exported["code"])
    console.print(f"Wrote {output} (v{exported['version']}); run it with: python {output} --url {url}")


@app.command()
def mcp(url: str = URL_OPTION) -> None:
    """Serve the platform to MCP clients over stdio (submit tasks, their status and steps, knowledge,
    agents)."""
    from agent_lightning.mcp_server import build_server, remote_api

    build_server(remote_api(url, os.environ.get("ALP_API_KEY"))).run("stdio")


if __name__ == "__main__":  # last: `python -m agent_lightning.cli` knows every command defined above
    app()
