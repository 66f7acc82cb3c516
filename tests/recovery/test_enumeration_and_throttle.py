"""P4: no enumeration by answer, status or timing; no mail bombing (audited throttles)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from oneauth.apps.models import AppRecord
from oneauth.identity import one_time
from oneauth.mail import throttle
from oneauth.mail.backends import MemoryBackend
from oneauth.services import Services

from .conftest import post, query, signup, unique_email

REQUESTS = [
    ("/v1/password/reset/request", {}),
    ("/v1/passwordless/start", {"method": "link"}),
    ("/v1/passwordless/start", {"method": "code"}),
    ("/v1/email/verify/request", {}),
]


def _shape(r: httpx.Response) -> tuple[int, list[str], list[tuple[str, int]]]:
    body = r.json()
    return r.status_code, sorted(body), sorted((k, len(str(v))) for k, v in body.items())


@pytest.mark.parametrize(("path", "extra"), REQUESTS)
async def test_same_answer_for_known_and_unknown(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    path: str,
    extra: dict[str, str],
) -> None:
    app = provision(app_settings={"passwordless": True, "require_verified_email": True})
    known = unique_email("known")
    await signup(client, app, known)
    a = await post(client, app, path, {"email": known, **extra})
    b = await post(client, app, path, {"email": unique_email("nobody"), **extra})
    assert a.status_code == 202
    assert _shape(a) == _shape(b)
    assert a.headers.get("cache-control") == b.headers.get("cache-control") == "no-store"


async def test_same_work_for_known_and_unknown(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same statements run either way; one of them issues only if the account exists."""
    app = provision()
    known = unique_email("known")
    await signup(client, app, known)
    calls: list[str] = []
    real_issue, real_take = one_time.issue_for_address, throttle.take

    async def spy_issue(*args: Any, **kwargs: Any) -> Any:
        calls.append("issue_for_address")
        return await real_issue(*args, **kwargs)

    async def spy_take(*args: Any, **kwargs: Any) -> Any:
        calls.append("throttle")
        return await real_take(*args, **kwargs)

    monkeypatch.setattr(one_time, "issue_for_address", spy_issue)
    monkeypatch.setattr(throttle, "take", spy_take)
    await post(client, app, "/v1/password/reset/request", {"email": known})
    known_calls, calls[:] = list(calls), []
    await post(client, app, "/v1/password/reset/request", {"email": unique_email("nobody")})
    assert known_calls == calls == ["throttle", "issue_for_address"]


async def test_timing_is_close_for_known_and_unknown(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    """Medians with a generous bound (this is not a precise timing attack test)."""
    app = provision()
    known = [unique_email("known") for _ in range(4)]
    for addr in known:
        await signup(client, app, addr)

    async def one(addr: str) -> float:
        start = time.perf_counter()
        r = await post(client, app, "/v1/password/reset/request", {"email": addr})
        assert r.status_code == 202
        return time.perf_counter() - start

    known_times, unknown_times = [], []
    # 3 per address (+ signup) stays under the address limit, 28 under the IP limit.
    for i in range(12):
        known_times.append(await one(known[i % 4]))
        unknown_times.append(await one(unique_email("nobody")))
    k, u = statistics.median(known_times), statistics.median(unknown_times)
    assert abs(k - u) < max(0.5 * max(k, u), 0.010), (k, u)


async def test_mail_requests_are_throttled_per_address_and_audited(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
    services: Services,
) -> None:
    app = provision()
    addr = unique_email()
    await signup(client, app, addr)  # the verification mail counts too
    statuses = [
        (await post(client, app, "/v1/password/reset/request", {"email": addr})).status_code
        for _ in range(6)
    ]
    assert statuses == [202, 202, 202, 202, 429, 429]
    r = await post(client, app, "/v1/password/reset/request", {"email": addr})
    assert int(r.headers["retry-after"]) > 0
    # An unknown address is throttled exactly the same way (no enumeration).
    nobody = unique_email("nobody")
    statuses = [
        (await post(client, app, "/v1/password/reset/request", {"email": nobody})).status_code
        for _ in range(6)
    ]
    assert statuses == [202, 202, 202, 202, 202, 429]
    await deliver(app)
    assert len(mailbox.to(addr)) == 5
    denied = await query(
        services,
        app,
        "SELECT count(*) AS n FROM audit_log WHERE event = 'password.reset_request'"
        " AND outcome = 'denied'",
    )
    assert denied[0]["n"] == 4


async def test_mail_requests_are_throttled_per_ip(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    statuses = [
        (
            await post(client, app, "/v1/password/reset/request", {"email": unique_email("n")})
        ).status_code
        for _ in range(throttle.PER_IP.limit + 1)
    ]
    assert statuses[-1] == 429
    assert statuses[:-1] == [202] * throttle.PER_IP.limit
