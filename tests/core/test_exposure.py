"""Issue 13, safe by default: `alp up --host 0.0.0.0` with authentication off started without a word and made
every caller an admin; a server on loopback answered any Host (DNS rebinding). Checked on real `alp up`
processes."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support import free_port
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from agent_lightning.core.exposure import binding_refusal, is_loopback, request_host

ALP = str(Path(sys.executable).with_name("alp"))


class Server:
    def __init__(self, tmp_path: Path, *args: str, **env: str) -> None:
        self.port = free_port()
        self.log = tmp_path / f"alp-{self.port}.log"
        environ = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "ALP_LOG_LEVEL": "WARNING",
            "ALP_AUTH_ENABLED": "false",
            "ALP_DATA_DIR": str(tmp_path / "data"),
            **env,
        }
        environ.pop("ALP_DATABASE_URL", None)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [ALP, "up", "--port", str(self.port), *args],
                env=environ,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.url = f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_started(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("alp up did not start:\n" + self.output())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def test_alp_up_refuses_every_interface_without_auth_unless_insecure(tmp_path: Path) -> None:
    refused = Server(tmp_path, "--host", "0.0.0.0")
    try:
        code = refused.process.wait(60)
    except subprocess.TimeoutExpired:
        refused.stop()
        raise AssertionError(
            "alp up --host 0.0.0.0 started with authentication off:\n" + refused.output()
        ) from None
    assert code == 2 and "Refusing to listen on 0.0.0.0" in refused.output()
    assert "--insecure" in refused.output()

    insecure = Server(tmp_path, "--host", "0.0.0.0", "--insecure")
    try:
        insecure.wait_started()
        assert "INSECURE: authentication is off" in insecure.output()
    finally:
        insecure.stop()


@pytest.mark.parametrize(
    "host,auth,insecure,refused",
    [
        ("0.0.0.0", False, False, True),
        ("::", False, False, True),
        ("192.168.1.5", False, False, True),
        ("0.0.0.0", True, False, False),
        ("0.0.0.0", False, True, False),
        ("127.0.0.1", False, False, False),
        ("localhost", False, False, False),
        ("::1", False, False, False),
        ("127.0.0.2", False, False, False),
    ],
)
def test_binding_rules(host: str, auth: bool, insecure: bool, refused: bool) -> None:
    assert (binding_refusal(host, auth_enabled=auth, insecure=insecure) is not None) == refused


def test_host_names() -> None:
    assert request_host("LocalHost:8000") == "localhost" and request_host("[::1]:80") == "::1"
    assert (
        request_host("evil.example.") == "evil.example"
        and is_loopback("[::1]")
        and not is_loopback("10.0.0.1")
    )


def test_a_loopback_server_answers_only_loopback_host_names(tmp_path: Path) -> None:
    server = Server(tmp_path, ALP_ALLOWED_HOSTS="alp.internal")
    try:
        server.wait_started()
        for host in ("evil.example", f"evil.example:{server.port}", "attacker.rebind.network", ""):
            response = httpx.get(server.url + "/tasks", headers={"Host": host})
            assert response.status_code == 400, (host, response.text)
            assert response.json()["error"]["code"] == "invalid_host"
            post = httpx.post(server.url + "/assign-task", headers={"Host": host}, json={"description": "x"})
            assert post.status_code == 400
        for host in (
            f"localhost:{server.port}",
            f"127.0.0.1:{server.port}",
            f"[::1]:{server.port}",
            "alp.internal",
        ):
            assert httpx.get(server.url + "/tasks", headers={"Host": host}).status_code == 200, host

        def handshake(host: str) -> bytes:
            """The status line of a WebSocket handshake sent with exactly this Host."""
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(
                    (
                        f"GET /ws/events HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n"
                    ).encode()
                )
                return sock.recv(1024).split(b"\r\n", 1)[0]

        assert b" 101 " not in handshake("evil.example") and b" 403 " in handshake("evil.example")
        assert b" 101 " in handshake(f"localhost:{server.port}")

        async def websocket() -> None:  # a client adding a second Host header is refused too
            async with connect(
                f"ws://127.0.0.1:{server.port}/ws/events", additional_headers={"Host": "evil.example"}
            ):
                pass

        with pytest.raises(InvalidStatus):
            asyncio.run(websocket())
    finally:
        server.stop()
