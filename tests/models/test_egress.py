"""The outbound-URL guard (core/egress.py) and the model service's use of it: a tenant admin cannot aim a
model alias at the server's own network (SSRF), by any spelling of the address, nor by a DNS answer that
changes between the check and the connection; the operator's allow-list opens what it names, and nothing
more."""

from __future__ import annotations

import ipaddress
from contextlib import asynccontextmanager

import httpx
import pytest
from support import served
from tenants import bearer_in
from test_auth import add_user, bearer, with_auth
from upstream import FakeUpstream

from agent_lightning.app import create_app
from agent_lightning.core.config import Settings
from agent_lightning.core.egress import EgressDenied, EgressGuard, is_public, parse_rule

REFUSED = [
    "127.0.0.1",
    "127.8.9.10",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "100.100.100.200",
    "0.0.0.0",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.0.170",
    "198.18.0.1",
    "::1",
    "::",
    "fe80::1",
    "fd00:ec2::254",
    "fc00::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "2002:7f00:1::",
    "2002:a9fe:a9fe::",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b::7f00:1",
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo whose client is 127.0.0.1
]
PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
]


@pytest.mark.parametrize("address", REFUSED)
def test_private_loopback_link_local_multicast_and_reserved_addresses_are_refused(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_unicast_addresses_pass(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def test_allow_list_entries() -> None:
    v4 = ipaddress.ip_address("10.1.2.3")
    assert parse_rule("10.0.0.0/8").matches_address(v4, 1)
    assert parse_rule("10.1.2.3:8080").matches_address(v4, 8080)
    assert not parse_rule("10.1.2.3:8080").matches_address(v4, 8081)
    assert parse_rule("[::1]:11434").matches_address(ipaddress.ip_address("::1"), 11434)
    assert parse_rule("fd00::/8").matches_address(ipaddress.ip_address("fd00::5"), 443)
    assert parse_rule("ollama.internal").matches_name("ollama.internal", 11434)
    assert parse_rule("*.corp.example").matches_name("llm.corp.example", 443)
    assert not parse_rule("*.corp.example").matches_name("corp.example.evil.com", 443)
    assert not parse_rule("ollama.internal:11434").matches_name("ollama.internal", 22)
    for bad in ("", "http://x/", "a b", "host:99999"):
        with pytest.raises(ValueError):
            parse_rule(bad)


async def test_every_spelling_of_loopback_and_metadata_is_refused_before_connecting() -> None:
    guard = EgressGuard()
    for url in (
        "http://127.0.0.1:9/v1",
        "http://localhost:9/",
        "http://[::1]:9/",
        "http://[::ffff:127.0.0.1]:9/",
        "http://2130706433:9/",
        "http://0x7f.1:9/",
        "http://127.1:9/",
        "http://0:9/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "ftp://8.8.8.8/",
        "file:///etc/passwd",
        "http:///nohost",
    ):
        with pytest.raises(EgressDenied):
            await guard.check(url)
    await guard.check("https://8.8.8.8/v1")  # a public address, no DNS involved


async def test_the_operator_allow_list_opens_only_what_it_names() -> None:
    upstream = FakeUpstream("internal").start()
    other = FakeUpstream("other").start()
    try:
        guard = EgressGuard([f"127.0.0.1:{upstream.port}"])
        async with guard.client() as client:
            ok = await client.post(f"{upstream.url}/v1/embeddings", json={"model": "m", "input": ["x"]})
            assert ok.status_code == 200
            with pytest.raises(EgressDenied):
                await client.post(f"{other.url}/v1/embeddings", json={"model": "m", "input": ["x"]})
        assert len(other.requests) == 0
    finally:
        upstream.stop()
        other.stop()


async def test_dns_rebinding_cannot_move_the_connection_to_a_refused_address() -> None:
    """The attacker's DNS answers an allowed address to the check and a refused one afterwards: the request
    goes to the address that was checked (resolved once, then pinned), never to the refused one."""
    allowed = FakeUpstream("allowed", host="127.0.0.2").start()
    internal = FakeUpstream("internal", host="127.0.0.1").start()
    internal_port = internal.port
    answers = ["127.0.0.2", "127.0.0.1"]
    asked: list[str] = []

    async def rebinding_dns(host: str, port: int) -> list[str]:
        asked.append(host)
        return [answers[min(len(asked), len(answers)) - 1]]

    try:
        guard = EgressGuard(["127.0.0.2"], resolver=rebinding_dns)
        async with guard.client() as client:
            response = await client.post(
                f"http://rebind.example:{allowed.port}/v1/embeddings", json={"model": "m", "input": ["x"]}
            )
        assert response.status_code == 200
        assert asked == ["rebind.example"]  # one resolution: the connection used the checked answer
        assert allowed.headers[0]["host"] == f"rebind.example:{allowed.port}"  # the request is unchanged
        assert internal.requests == []

        guard._cache.clear()  # the next resolution answers 127.0.0.1: refused, nothing sent
        async with guard.client() as client:
            with pytest.raises(EgressDenied):
                await client.post(f"http://rebind.example:{internal_port}/v1/embeddings", json={})
        assert internal.requests == []
    finally:
        allowed.stop()
        internal.stop()


async def test_redirects_are_checked_at_every_hop() -> None:
    import threading
    import time

    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import RedirectResponse
    from starlette.routing import Route
    from upstream import free_port

    internal = FakeUpstream("internal").start()
    port = free_port()
    app = Starlette(
        routes=[
            Route(
                "/go",
                lambda request: RedirectResponse(f"{internal.url}/v1/embeddings", 307),
                methods=["POST"],
            )
        ]
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.2", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        async with EgressGuard(["127.0.0.2"]).client(follow_redirects=True) as client:
            with pytest.raises(EgressDenied):
                await client.post(f"http://127.0.0.2:{port}/go", json={"model": "m", "input": ["x"]})
        assert internal.requests == []
    finally:
        server.should_exit = True
        thread.join(5)
        internal.stop()


async def test_https_keeps_the_host_name_for_sni_and_the_certificate(tmp_path) -> None:
    """Pinned to an address, a TLS request still verifies the certificate of the name in the URL."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("models.example")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    upstream = FakeUpstream(
        "tls",
        host="127.0.0.2",
        ssl_keyfile=str(tmp_path / "server.pem"),
        ssl_certfile=str(tmp_path / "server.pem"),
    ).start()

    async def dns(host: str, port: int) -> list[str]:
        return ["127.0.0.2"]

    import ssl

    context = ssl.create_default_context()
    ca.configure_trust(context)  # trusts only the test CA
    guard = EgressGuard(["127.0.0.2"], resolver=dns)
    try:
        async with guard.client(verify=context) as client:
            ok = await client.post(
                f"https://models.example:{upstream.port}/v1/embeddings", json={"model": "m", "input": ["x"]}
            )
            assert ok.status_code == 200
            assert upstream.headers[0]["host"] == f"models.example:{upstream.port}"
            # A name the certificate does not carry fails verification, though the address is the same.
            with pytest.raises(httpx.ConnectError):
                await client.post(f"https://other.example:{upstream.port}/v1/embeddings", json={})
    finally:
        upstream.stop()


def _strict(settings: Settings) -> Settings:
    """The suite's settings without the loopback allowance its fake upstreams need."""
    return with_auth(settings, egress_allow=[], openai_api_key=None, anthropic_api_key=None)


async def test_a_tenant_admin_cannot_aim_a_model_at_the_servers_network(settings: Settings) -> None:
    internal = FakeUpstream("internal").start()  # stands for a service on the server's loopback
    try:
        async with served(_strict(settings)) as client:
            await add_user(client, "mallory", "admin", tenant="b")
            headers = await bearer_in(client, "mallory", "b")
            for base in (
                f"{internal.url}/v1",
                f"http://localhost:{internal.port}/v1",
                f"http://[::ffff:127.0.0.1]:{internal.port}/v1",
                "http://169.254.169.254/v1",
            ):
                created = await client.post(
                    "/models",
                    headers=headers,
                    json={
                        "id": "grab",
                        "deployments": [{"provider": "openai-compatible", "model": "m", "base_url": base}],
                    },
                )
                assert created.status_code == 422, (base, created.text)
                assert created.json()["error"]["code"] == "egress_denied"
            assert internal.requests == []
    finally:
        internal.stop()


@asynccontextmanager
async def models_app(settings: Settings):
    app = create_app(settings, services=["models"])
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        yield client


async def test_an_alias_stored_before_the_guard_fails_at_call_time_without_a_request(
    settings: Settings,
) -> None:
    internal = FakeUpstream("internal").start()
    try:
        async with models_app(settings) as client:  # allowed while the operator allows loopback …
            created = await client.post(
                "/models",
                json={
                    "id": "old",
                    "deployments": [
                        {"provider": "openai-compatible", "model": "m", "base_url": f"{internal.url}/v1"}
                    ],
                },
            )
            assert created.status_code == 201, created.text
        async with models_app(settings.model_copy(update={"egress_allow": []})) as client:  # … and no more
            for stream in (False, True):
                answer = await client.post(
                    "/v1/chat/completions",
                    json={"model": "old", "stream": stream, "messages": [{"role": "user", "content": "hi"}]},
                )
                assert answer.status_code == 503, answer.text
            ours = await client.post(
                "/inference/chat", json={"model": "old", "messages": [{"role": "user", "content": "hi"}]}
            )
            assert ours.status_code == 503
            assert "ALP_EGRESS_ALLOW" in ours.json()["error"]["details"]["last_error"]
        assert internal.requests == []
    finally:
        internal.stop()


async def test_the_allow_setting_opens_a_private_upstream(settings: Settings) -> None:
    upstream = FakeUpstream("ollama").start()
    try:
        allowed = with_auth(settings, egress_allow=[f"127.0.0.1:{upstream.port}"])
        async with served(allowed) as client:
            await add_user(client, "ada", "admin")
            headers = await bearer(client, "ada")
            created = await client.post(
                "/models",
                headers=headers,
                json={
                    "id": "ollama",
                    "deployments": [
                        {"provider": "openai-compatible", "model": "m", "base_url": f"{upstream.url}/v1"}
                    ],
                },
            )
            assert created.status_code == 201, created.text
            answer = await client.post(
                "/v1/chat/completions",
                headers=headers,
                json={"model": "ollama", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["choices"][0]["message"]["content"] == "ollama says: hi"
    finally:
        upstream.stop()
