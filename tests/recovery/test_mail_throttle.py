"""P4/P8: the recovery-mail throttle counts per address and requester (issue 10, item 6).

One requester using up an address's allowance must not keep the owner, asking
from elsewhere, from getting their mail; a higher per-address cap still bounds
many requesters together; concurrent requests never exceed the limits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette

from oneauth.apps.models import AppRecord
from oneauth.mail import throttle
from oneauth.services import Services

from .conftest import post, query, signup, unique_email

RESET = "/v1/password/reset/request"


@asynccontextmanager
async def client_at(app: Starlette, ip: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(ip, 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def queued_for(services: Services, app: AppRecord, address: str) -> int:
    rows = await query(
        services,
        app,
        "SELECT count(*) AS n FROM outbox WHERE recipient = $1 AND kind = 'reset_password'",
        address,
    )
    return int(rows[0]["n"])


async def test_one_requester_cannot_use_up_the_owners_mail(
    service: Starlette,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
) -> None:
    app = provision()
    victim = unique_email("victim")
    await signup(client, app, victim)
    async with client_at(service, "203.0.113.9") as attacker:
        statuses = [
            (await post(attacker, app, RESET, {"email": victim})).status_code
            for _ in range(throttle.PER_REQUESTER.limit + 5)
        ]
    before = await queued_for(services, app, victim)
    async with client_at(service, "198.51.100.44") as owner:
        r = await post(owner, app, RESET, {"email": victim})
    assert r.status_code == 202, r.text  # the owner, elsewhere, still gets a mail ...
    assert await queued_for(services, app, victim) == before + 1
    # ... while the requester got exactly its allowance (refusals use up nothing).
    assert statuses == [202] * throttle.PER_REQUESTER.limit + [429] * 5
    assert before == throttle.PER_REQUESTER.limit


async def test_the_per_address_cap_bounds_many_requesters(
    service: Starlette,
    provision: Callable[..., AppRecord],
    services: Services,
) -> None:
    app = provision()
    victim = unique_email("botnet")
    sent = 0
    requester = 0
    while sent < throttle.PER_ADDRESS.limit:
        requester += 1
        async with client_at(service, f"192.0.2.{requester}") as c:
            for _ in range(throttle.PER_REQUESTER.limit):
                if sent == throttle.PER_ADDRESS.limit:
                    break
                assert (await post(c, app, RESET, {"email": victim})).status_code == 202
                sent += 1
    async with client_at(service, "192.0.2.200") as fresh:
        r = await post(fresh, app, RESET, {"email": victim})
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) > 0
    # Refusals are audited under the address's keyed hash, not the address.
    denied = await query(
        services,
        app,
        "SELECT target_id FROM audit_log WHERE event = 'password.reset_request'"
        " AND outcome = 'denied'",
    )
    assert len(denied) == 1
    assert denied[0]["target_id"].startswith("acct:")
    assert victim not in denied[0]["target_id"]


async def test_concurrent_requests_never_exceed_the_allowance(
    service: Starlette,
    provision: Callable[..., AppRecord],
    services: Services,
) -> None:
    app = provision()
    victim = unique_email("burst")
    async with client_at(service, "203.0.113.10") as attacker:
        responses = await asyncio.gather(
            *(post(attacker, app, RESET, {"email": victim}) for _ in range(20))
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [202] * throttle.PER_REQUESTER.limit + [429] * (
        20 - throttle.PER_REQUESTER.limit
    )
    # An unknown address (nothing is queued): the counters themselves say so.
    counts = await query(
        services, app, "SELECT key, failures FROM throttle WHERE key LIKE 'mail:%'"
    )
    assert sorted(r["failures"] for r in counts) == [throttle.PER_REQUESTER.limit] * 3
