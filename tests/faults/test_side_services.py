"""SMTP down, an upstream's DNS failing, a webhook endpoint hanging: sign-in is unaffected (Q5).

A TCP port that accepts and never answers stands in for both the SMTP server
and the webhook endpoint (the worst kind of down: no refusal, only timeouts);
an OpenID provider is registered at an ``.invalid`` issuer, whose name never
resolves. The delivery workers run inside the service. While reset mails,
``user.created`` webhooks and federated sign-in starts pile up against them,
password sign-in keeps its latency: the slow work is in the background, on
its own connections, and upstream calls are bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import statistics
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from .rig import PASSWORD, Rig

DONE = "https://app.example.com/signed-in"


@contextlib.contextmanager
def hanging_port() -> Iterator[int]:
    """Accepts connections and never sends a byte (nor closes them)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conn, _ = sock.accept()
                held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        sock.close()


async def _login_latencies(base: str, rig: Rig, email: str, count: int) -> list[float]:
    took = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        for _ in range(count):
            started = time.monotonic()
            r = await http.post(
                f"/apps/{rig.app_id}/v1/login", json={"email": email, "password": PASSWORD}
            )
            assert r.status_code == 200, r.text
            took.append(time.monotonic() - started)
    return took


@pytest.fixture
def hang() -> Iterator[int]:
    with hanging_port() as port:
        yield port


async def test_sign_in_latency_with_smtp_dns_and_webhooks_down(rig: Rig, hang: int) -> None:
    rig.cli(
        "webhooks", "create", "--app", rig.app_id, "--url", f"http://127.0.0.1:{hang}/hook",
        "--events", "user.created",
    )  # fmt: skip
    secret = rig.root / "upstream-secret"
    secret.write_text("s3cret-upstream\n")
    made = rig.cli(
        "providers", "create", "--app", rig.app_id, "--kind", "oidc", "--name", "Nowhere",
        "--issuer", "https://idp.oneauth-faults.invalid", "--client-id", "oneauth",
        "--client-secret-file", str(secret), "--json",
    )  # fmt: skip
    rig.cli("apps", "configure", rig.app_id, "--set", f"link_urls=[{json.dumps(DONE)}]")
    shown = json.loads(made.stdout)
    provider_id = shown.get("provider_id") or shown["id"]
    server = rig.serve(
        email_backend="smtp",
        email_worker="inprocess",
        smtp_host="127.0.0.1",
        smtp_port=hang,
        smtp_tls="none",
    )
    email = f"steady-{time.monotonic_ns()}@example.com"
    async with httpx.AsyncClient(base_url=server.base, timeout=30) as http:
        r = await http.post(
            f"/apps/{rig.app_id}/v1/signup", json={"email": email, "password": PASSWORD}
        )
        assert r.status_code == 201, r.text
    await _login_latencies(server.base, rig, email, 2)  # warm
    baseline = await _login_latencies(server.base, rig, email, 6)

    # The background work first: webhooks (user.created) and mails (password
    # resets) that now sit on the hanging port; hashing is over before timing.
    side: list[int] = []
    async with httpx.AsyncClient(base_url=server.base, timeout=30) as http:
        for n in range(4):
            r = await http.post(
                f"/apps/{rig.app_id}/v1/signup",
                json={"email": f"hook{n}-{time.monotonic_ns()}@example.com", "password": PASSWORD},
            )
            side.append(r.status_code)
        for _ in range(3):
            r = await http.post(
                f"/apps/{rig.app_id}/v1/password/reset/request", json={"email": email}
            )
            side.append(r.status_code)
    stop = asyncio.Event()
    starts: list[tuple[int, float]] = []

    async def federated_starts() -> None:
        # Each one needs the upstream's discovery document: a name that never resolves.
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as http:
            while not stop.is_set():
                began = time.monotonic()
                r = await http.get(
                    f"/apps/{rig.app_id}/federation/{provider_id}/start",
                    params={"redirect_uri": DONE},
                )
                starts.append((r.status_code, time.monotonic() - began))
                await asyncio.sleep(0.05)

    piling = asyncio.create_task(federated_starts())
    await asyncio.sleep(0.5)
    during = await _login_latencies(server.base, rig, email, 6)
    stop.set()
    await piling
    side += [s for s, _ in starts]
    assert starts, "no federated sign-in started"
    assert all(s == 503 for s, _ in starts), starts
    assert side, "nothing was sent to the failing services"
    assert 500 not in side, side
    # The outbox and the webhook queue really hold undelivered work.
    with rig.in_app() as conn:
        queued = conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()
    assert queued is not None
    assert queued[0] > 0
    before, after = statistics.median(baseline), statistics.median(during)
    assert after < before * 1.5 + 0.25, (baseline, during)
