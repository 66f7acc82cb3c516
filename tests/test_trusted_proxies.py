"""The client address behind trusted proxies (issue 10 item 10): throttles and audit.

Without ONEAUTH_TRUSTED_PROXIES, X-Forwarded-For and Forwarded are ignored: every
request is its TCP peer's. With it, a request from a listed proxy is its
right-most untrusted hop, so two clients behind one load balancer have separate
per-address throttles and their own audit address.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import httpx
import pytest
from starlette.applications import Starlette

from apiclient import signup
from oneauth.apps.models import AppRecord
from oneauth.asgi import create_app
from oneauth.http.requests import ip_hash
from oneauth.services import Services
from oneauth.settings import Settings

PROXY = ("10.9.0.4", 443)  # the load balancer, as the TCP peer
TRUSTED = ("10.9.0.0/16", "2001:db8:ffff::/48")


@pytest.fixture(scope="session")
async def proxied_service(settings: Settings) -> AsyncIterator[Starlette]:
    app = create_app(replace(settings, trusted_proxies=TRUSTED), configure_logging=False)
    async with app.router.lifespan_context(app):
        yield app


def _client(app: Starlette, peer: tuple[str, int] = PROXY) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=peer)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def _lock_out(http: httpx.AsyncClient, app_id: str, email: str, xff: str) -> None:
    """Fail from ``xff`` until the throttle answers 429."""
    headers = {"x-forwarded-for": xff}
    for n in range(15):
        response = await http.post(
            f"/apps/{app_id}/v1/login",
            json={"email": email, "password": f"wrong guess {n}"},
            headers=headers,
        )
        if response.status_code == 429:
            return
        assert response.status_code == 401, response.text
    raise AssertionError("no lockout after 15 failures")


async def _login_from(http: httpx.AsyncClient, app_id: str, email: str, xff: str) -> int:
    from apiclient import PASSWORD

    response = await http.post(
        f"/apps/{app_id}/v1/login",
        json={"email": email, "password": PASSWORD},
        headers={"x-forwarded-for": xff},
    )
    return response.status_code


async def _audit_ip_hashes(services: Services, app_id: str) -> set[str]:
    async with services.router.app(app_id) as conn:
        rows = await conn.fetch(
            "SELECT DISTINCT ip_hash FROM audit_log"
            " WHERE event = 'auth.login' AND ip_hash IS NOT NULL"
        )
    return {r["ip_hash"] for r in rows}


async def test_without_the_setting_forwarded_headers_are_ignored(
    service: Starlette, provision: Callable[..., AppRecord], services: Services
) -> None:
    app = provision()
    async with _client(service) as http:
        await signup(http, app.app_id, "owner@example.com")
        await _lock_out(http, app.app_id, "owner@example.com", "198.51.100.1")
        # Another "client" behind the same proxy shares the proxy's address: locked too.
        assert await _login_from(http, app.app_id, "owner@example.com", "198.51.100.2") == 429
    key = services.ip_hash_key
    assert await _audit_ip_hashes(services, app.app_id) == {ip_hash(key, app.app_id, PROXY[0])}


async def test_behind_a_trusted_proxy_each_client_has_its_own_throttle_and_audit_address(
    proxied_service: Starlette, provision: Callable[..., AppRecord]
) -> None:
    services = proxied_service.state.services
    app = provision()
    async with _client(proxied_service) as http:
        await signup(http, app.app_id, "owner@example.com")
        await _lock_out(http, app.app_id, "owner@example.com", "198.51.100.1")
        assert await _login_from(http, app.app_id, "owner@example.com", "198.51.100.1") == 429
        # The attacker's failures do not lock out the owner at another address.
        assert await _login_from(http, app.app_id, "owner@example.com", "198.51.100.2") == 200
    key = services.ip_hash_key
    assert await _audit_ip_hashes(services, app.app_id) == {
        ip_hash(key, app.app_id, PROXY[0]),  # the signup, sent without a header
        ip_hash(key, app.app_id, "198.51.100.1"),
        ip_hash(key, app.app_id, "198.51.100.2"),
    }


async def test_a_spoofed_header_from_an_untrusted_peer_is_ignored(
    proxied_service: Starlette, provision: Callable[..., AppRecord]
) -> None:
    services = proxied_service.state.services
    app = provision()
    direct = ("203.0.113.50", 5555)  # not a proxy: its headers mean nothing
    async with _client(proxied_service, direct) as http:
        await signup(http, app.app_id, "owner@example.com")
        await _lock_out(http, app.app_id, "owner@example.com", "198.51.100.1")
        # Rotating the header does not give the attacker fresh allowances.
        assert await _login_from(http, app.app_id, "owner@example.com", "198.51.100.9") == 429
        response = await http.post(
            f"/apps/{app.app_id}/v1/login",
            json={"email": "owner@example.com", "password": "x" * 10},
            headers={"forwarded": 'for="[2001:db8::99]"'},
        )
        assert response.status_code == 429
    key = services.ip_hash_key
    assert await _audit_ip_hashes(services, app.app_id) == {ip_hash(key, app.app_id, direct[0])}


async def test_a_spoofed_left_most_entry_resolves_to_the_right_most_untrusted_hop(
    proxied_service: Starlette, provision: Callable[..., AppRecord]
) -> None:
    services = proxied_service.state.services
    app = provision()
    async with _client(proxied_service) as http:
        await signup(http, app.app_id, "owner@example.com")
        # The client wrote "198.51.100.2" itself; the proxies appended its real
        # address and an inner proxy's. The owner really is 198.51.100.2.
        chain = "198.51.100.2, 192.0.2.66, 10.9.1.1"
        await _lock_out(http, app.app_id, "owner@example.com", chain)
        assert await _login_from(http, app.app_id, "owner@example.com", "198.51.100.2") == 200
        # The same through RFC 7239 Forwarded, with a quoted IPv6 hop and port.
        response = await http.post(
            f"/apps/{app.app_id}/v1/login",
            json={"email": "owner@example.com", "password": "x" * 10},
            headers={
                "forwarded": 'for=198.51.100.2, for="[2001:db8::66]:4711";proto=https, '
                'for="[2001:db8:ffff::1]"'
            },
        )
        assert response.status_code == 401
    key = services.ip_hash_key
    assert await _audit_ip_hashes(services, app.app_id) == {
        ip_hash(key, app.app_id, PROXY[0]),  # the signup, sent without a header
        ip_hash(key, app.app_id, "192.0.2.66"),
        ip_hash(key, app.app_id, "198.51.100.2"),
        ip_hash(key, app.app_id, "2001:db8::66"),
    }


async def test_malformed_headers_fall_back_to_the_peer_without_5xx(
    proxied_service: Starlette, provision: Callable[..., AppRecord]
) -> None:
    services = proxied_service.state.services
    app = provision()
    bad = [
        {"x-forwarded-for": "198.51.100.1,,"},
        {"x-forwarded-for": "not-an-address"},
        {"x-forwarded-for": "[2001:db8::1"},
        {"forwarded": 'for="[2001:db8::1]'},
        {"forwarded": "for=[2001:db8::1]"},  # IPv6 must be quoted (RFC 7239 section 6)
        {"forwarded": "for=unknown"},
        {"forwarded": "for=198.51.100.1, proto=https"},
        {"forwarded": "for=198.51.100.1", "x-forwarded-for": "198.51.100.2"},  # disagree
        {"x-forwarded-for": "1" * 9000},
    ]
    async with _client(proxied_service) as http:
        for headers in bad:
            response = await http.post(
                f"/apps/{app.app_id}/v1/login",
                json={"email": "nobody@example.com", "password": "x" * 10},
                headers=headers,
            )
            assert response.status_code in (401, 429), (headers, response.text)
    key = services.ip_hash_key
    assert await _audit_ip_hashes(services, app.app_id) == {ip_hash(key, app.app_id, PROXY[0])}


def test_client_address_rules() -> None:
    from oneauth.http.forwarded import client_address, networks

    trusted = networks(TRUSTED)

    def pick(peer: str, **headers: str) -> str | None:
        raw = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
        return client_address(peer, raw, trusted)

    assert pick("10.9.0.4", x_forwarded_for="198.51.100.1") == "198.51.100.1"
    assert pick("10.9.0.4", x_forwarded_for="198.51.100.1:8080") == "198.51.100.1"
    assert pick("10.9.0.4", x_forwarded_for="[2001:db8::5]:80") == "2001:db8::5"
    assert pick("10.9.0.4", x_forwarded_for="10.9.3.3, 10.9.2.2") == "10.9.3.3"  # all trusted
    assert pick("::ffff:10.9.0.4", x_forwarded_for="198.51.100.1") == "198.51.100.1"
    assert pick("2001:db8:ffff::9", forwarded='For="[2001:DB8::5]"') == "2001:db8::5"
    assert pick("10.9.0.4", forwarded="proto=https") == "10.9.0.4"  # names no client
    assert pick("10.9.0.4", forwarded="for=198.51.100.1", x_forwarded_for="198.51.100.1") == (
        "198.51.100.1"
    )
    assert pick("192.0.2.1", x_forwarded_for="198.51.100.1") == "192.0.2.1"
    assert client_address("10.9.0.4", [(b"x-forwarded-for", b"198.51.100.1")], ()) == "10.9.0.4"


def test_serve_leaves_proxy_headers_to_oneauth() -> None:
    from oneauth.cli.serve import uvicorn_options

    options = uvicorn_options("127.0.0.1", 8000, 1)
    assert options["proxy_headers"] is False
    assert options["forwarded_allow_ips"] == ""
    assert options["log_config"] is None
