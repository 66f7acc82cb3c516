"""Webhooks against a real receiver (uvicorn on loopback) that checks signatures."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from apiclient import PASSWORD, login, signup
from oneauth.apps.models import AppRecord
from oneauth.asgi import create_app
from oneauth.db.notify import Notifier
from oneauth.services import Services
from oneauth.settings import Settings
from oneauth.webhooks import EVENT_TYPES, emit, endpoints, signing
from oneauth.webhooks.events import DELIVERIES_CHANNEL

from ._receiver import Receiver
from .conftest import add_endpoint, deliveries, make_worker


def _email() -> str:
    return f"wh-{uuid.uuid4().hex[:12]}@example.com"


async def test_delivered_with_valid_signature_and_headers(
    services: Services,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    receiver: Receiver,
) -> None:
    app = provision()
    endpoint, secret = await add_endpoint(services, receiver, app, f"ok-{app.app_id}")
    assert secret.startswith("whsec_")
    addr = _email()
    body = await signup(client, app.app_id, addr)
    worker = make_worker(services)
    report = await worker.deliver_app(app)
    assert report.sent == 1
    [got] = receiver.of(f"ok-{app.app_id}")
    assert got.valid  # the receiver checked the v1 HMAC with the endpoint's secret
    assert got.headers["webhook-signature"].startswith("v1,")
    assert got.headers["content-type"] == "application/json"
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 60
    payload = json.loads(got.body)
    assert set(payload) == {"id", "type", "timestamp", "app_id", "data"}
    assert payload["id"] == got.headers["webhook-id"]
    assert payload["id"].startswith("evt_")
    assert payload["type"] == "user.created"
    assert payload["app_id"] == app.app_id
    assert payload["data"] == {"user_id": body["user"]["id"], "email": addr, "via": "signup"}
    # A changed body or an old timestamp does not verify.
    assert not signing.verify(secret, got.headers, got.body + b" ")
    assert not signing.verify(secret, got.headers, got.body, now=time.time() + 3600)
    [row] = await deliveries(services, app)
    assert row.status == "delivered"
    assert row.attempts == 1
    assert row.last_status == 200
    # At rest the secret is sealed, bound to the app and the endpoint.
    async with services.router.enter(app) as conn:
        sealed = await conn.fetchval(
            "SELECT secret_sealed FROM webhook_endpoints WHERE id = $1", endpoint.id
        )
    assert secret not in sealed
    assert secret.split("_", 1)[1] not in sealed
    assert endpoints.open_secret(services.box, app.app_id, endpoint.id, sealed) == secret
    with pytest.raises(Exception, match="authenticate"):
        endpoints.open_secret(services.box, "other", endpoint.id, sealed)


async def test_failing_endpoint_retried_with_backoff_then_dead_lettered_and_replayed(
    services: Services,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    receiver: Receiver,
) -> None:
    app = provision()
    name = f"fail-{app.app_id}"
    await add_endpoint(services, receiver, app, name, status=500)
    await signup(client, app.app_id, _email())
    worker = make_worker(services, max_attempts=4, backoff_base=0.3, backoff_cap=5.0)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        await worker.deliver_app(app)
        [row] = await deliveries(services, app)
        if row.status == "dead":
            break
        await asyncio.sleep(0.05)
    assert row.status == "dead"
    assert row.attempts == 4
    assert row.last_status == 500
    assert row.last_error == "answered 500"
    hits = [r.at for r in receiver.of(name)]
    assert len(hits) == 4
    assert len({r.headers["webhook-id"] for r in receiver.of(name)}) == 1
    gaps = [b - a for a, b in itertools.pairwise(hits)]
    # 0.3 s, 0.6 s, 1.2 s (x 0.8..1.2 jitter): exponential, never at once.
    assert gaps[0] >= 0.24
    assert gaps[1] >= 0.48
    assert gaps[2] >= 0.96
    assert gaps[2] > gaps[0]
    async with services.router.enter(app) as conn:
        audited = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE event = 'webhook.delivery'"
            " AND target_id = $1 AND outcome = 'failure'",
            str(row.id),
        )
    assert audited == 1
    # Replay once the receiver is fixed: a new attempt row, the same event id.
    receiver.configure(name, status=200)
    async with services.router.enter(app) as conn:
        again = await endpoints.replay(conn, app.app_id, row.id)
    assert again is not None
    assert again.replay_of == row.id
    assert again.status == "pending"
    report = await worker.deliver_app(app)
    assert report.sent == 1
    last = receiver.of(name)[-1]
    assert last.valid
    assert last.headers["webhook-id"] == row.event_id
    rows = {d.id: d for d in await deliveries(services, app)}
    assert rows[row.id].status == "dead"
    assert rows[again.id].status == "delivered"


async def test_a_hanging_endpoint_times_out_and_is_retried(
    services: Services,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    receiver: Receiver,
) -> None:
    app = provision()
    name = f"hang-{app.app_id}"
    await add_endpoint(services, receiver, app, name, delay=5.0)
    await signup(client, app.app_id, _email())
    worker = make_worker(services, timeout=0.3, max_attempts=2, backoff_base=60.0)
    started = time.monotonic()
    report = await worker.deliver_app(app)
    assert time.monotonic() - started < 3.0  # the cap on one exchange held
    assert report.retried == 1
    [row] = await deliveries(services, app)
    assert row.status == "pending"
    assert row.last_error == "timed out"
    assert row.attempts == 1
    assert (row.next_attempt_at.timestamp() - time.time()) > 30  # backed off, not hammered


async def test_a_rolled_back_change_emits_nothing(
    services: Services,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    receiver: Receiver,
) -> None:
    app = provision()
    await add_endpoint(services, receiver, app, f"tx-{app.app_id}", types=("org.created",))
    with pytest.raises(RuntimeError):
        async with services.router.enter(app) as conn:
            queued = await emit(conn, app, "org.created", {"org_id": "org_x", "slug": "x"})
            assert queued == 1  # written in this transaction ...
            raise RuntimeError("the change fails")
    assert await deliveries(services, app) == []  # ... and gone with it
    async with services.router.enter(app) as conn:
        assert await emit(conn, app, "org.created", {"org_id": "org_y", "slug": "y"}) == 1
    assert len(await deliveries(services, app)) == 1
    # A signup refused (the address is taken) emits nothing either.
    addr = _email()
    await signup(client, app.app_id, addr)
    await add_endpoint(services, receiver, app, f"tx2-{app.app_id}")
    again = await client.post(
        f"/apps/{app.app_id}/v1/signup", json={"email": addr, "password": PASSWORD}
    )
    assert again.status_code in (201, 202, 409)
    assert [d.event_type for d in await deliveries(services, app)] == ["org.created"]


async def test_no_query_for_an_app_without_endpoints(
    services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    async with services.router.enter(app) as conn:
        assert await emit(conn, app, "user.deleted", {"user_id": "u"}) == 0  # fills the cache
    async with services.router.enter(app) as conn:
        # An aborted transaction refuses every statement: emit must not send one.
        with pytest.raises(Exception, match="division"):
            await conn.execute("SELECT 1/0")
        assert await emit(conn, app, "user.deleted", {"user_id": "u"}) == 0
        await conn.execute("ROLLBACK")
        await conn.execute("BEGIN")


async def test_an_endpoint_made_elsewhere_is_seen_after_its_notify(
    services: Services, provision: Callable[..., AppRecord], receiver: Receiver
) -> None:
    """Another process adds the endpoint: this process's cache drops the app on
    the NOTIFY, so the next event is queued."""
    app = provision()
    async with services.router.enter(app) as conn:
        assert await emit(conn, app, "org.deleted", {"org_id": "o"}) == 0
    # The other process (plain SQL here): only its NOTIFY reaches our cache.
    async with services.router.enter(app) as conn:
        await conn.execute(
            "INSERT INTO webhook_endpoints (id, url, secret_sealed, event_types)"
            " VALUES ('whe_elsewhere0000000000', $1, 'v1.x', '{org.deleted}')",
            receiver.url("elsewhere"),
        )
        await conn.execute("SELECT pg_notify('oneauth_webhook_endpoints', $1)", app.app_id)
    for _ in range(200):
        async with services.router.enter(app) as conn:
            if await emit(conn, app, "org.deleted", {"org_id": "o"}) == 1:
                break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the NOTIFY did not drop the cached subscriptions")


async def test_a_slow_endpoint_does_not_delay_sign_in(
    services: Services,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    receiver: Receiver,
) -> None:
    app = provision()
    name = f"slow-{app.app_id}"
    await add_endpoint(
        services, receiver, app, name, types=("user.created", "session.revoked"), delay=10.0
    )
    worker = make_worker(services, timeout=15.0)
    # As in the service's lifespan: the worker wakes on the NOTIFY of emit.
    notifier = Notifier(services.settings.listen_url)
    notifier.subscribe(DELIVERIES_CHANNEL, worker.on_notify)
    await notifier.start()
    await worker.start()
    try:
        addr = _email()
        started = time.monotonic()
        await signup(client, app.app_id, addr)
        signup_took = time.monotonic() - started
        await receiver.wait_for(name, 1, within=10)  # the worker now hangs on the endpoint
        assert len(receiver.of(name)) == 1
        timings = []
        for _ in range(3):
            started = time.monotonic()
            response = await login(client, app.app_id, addr)
            timings.append(time.monotonic() - started)
            assert response.status_code == 200, response.text
        # The endpoint holds each request 10 s; sign-ins do not wait for it.
        print(f"signup {signup_took * 1000:.0f} ms, logins {[round(t * 1000) for t in timings]} ms")
        assert signup_took < 5.0, timings
        assert max(timings) < 5.0, timings
        [row] = [d for d in await deliveries(services, app) if d.event_type == "user.created"]
        assert row.status == "sending"  # still in flight while we signed in
    finally:
        await worker.stop()
        await notifier.stop()


async def test_two_workers_never_deliver_one_row_twice(
    services: Services, provision: Callable[..., AppRecord], receiver: Receiver
) -> None:
    app = provision()
    names = [f"pair{i}-{app.app_id}" for i in range(2)]
    for n in names:
        await add_endpoint(services, receiver, app, n, types=("org.created",), delay=0.02)
    async with services.router.enter(app) as conn:
        for i in range(20):
            await emit(conn, app, "org.created", {"org_id": f"org_{i}", "slug": f"s{i}"})
    one = make_worker(services, batch_size=5, lease_seconds=60.0)
    two = make_worker(services, batch_size=5, lease_seconds=60.0)
    reports = await asyncio.gather(one.deliver_app(app), two.deliver_app(app))
    assert sum(r.sent for r in reports) == 40
    assert all(r.sent > 0 for r in reports)  # both took part
    for n in names:
        ids = [r.headers["webhook-id"] for r in receiver.of(n)]
        assert len(ids) == 20
        assert len(set(ids)) == 20
    assert {d.status for d in await deliveries(services, app)} == {"delivered"}


async def test_app_b_endpoints_never_receive_app_a_events(
    services: Services,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    receiver: Receiver,
) -> None:
    a, b = provision(), provision()
    await add_endpoint(services, receiver, a, f"x-{a.app_id}")
    await add_endpoint(services, receiver, b, f"x-{b.app_id}")
    await signup(client, a.app_id, _email())
    worker = make_worker(services)
    await worker.deliver_apps([a, b])
    assert len(receiver.of(f"x-{a.app_id}")) == 1
    assert receiver.of(f"x-{b.app_id}") == []
    assert await deliveries(services, b) == []
    # A's sealed secret moved into B's table does not open there.
    async with services.router.enter(a) as conn:
        row = await conn.fetchrow("SELECT id, secret_sealed FROM webhook_endpoints")
    with pytest.raises(Exception, match="authenticate"):
        endpoints.open_secret(services.box, b.app_id, row["id"], row["secret_sealed"])


async def test_the_change_points_emit_their_events(
    services: Services,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    receiver: Receiver,
) -> None:
    """Each change point queues its event, with ids and no secrets."""
    from oneauth.orgs import service as orgs
    from oneauth.orgs.actor import OPERATOR

    app = provision()
    await add_endpoint(services, receiver, app, f"all-{app.app_id}", types=tuple(EVENT_TYPES))
    addr = _email()
    made = await signup(client, app.app_id, addr)
    user_id = made["user"]["id"]
    second = await login(client, app.app_id, addr)
    auth = {"authorization": f"Bearer {second.json()['access_token']}"}
    new_password = "another-Harbor-lantern-43"
    changed = await client.post(
        f"/apps/{app.app_id}/v1/password",
        json={"current_password": PASSWORD, "new_password": new_password},
        headers=auth,
    )
    assert changed.status_code == 204, changed.text
    out = await client.post(f"/apps/{app.app_id}/v1/logout", headers=auth)
    assert out.status_code == 204
    async with services.router.enter(app) as conn:
        org = await orgs.create(conn, name="Hooks Inc", actor=OPERATOR)
        await orgs.add_member(conn, org.id, user_id, actor=OPERATOR)
        await orgs.remove_member(conn, org.id, user_id, actor=OPERATOR)
        await orgs.delete(conn, org.id, actor=OPERATOR)
    rows = await deliveries(services, app)
    kinds = [d.event_type for d in rows]
    assert kinds == [
        "user.created",
        "user.password_changed",
        "session.revoked",  # the password change ended the signup's session
        "session.revoked",  # the logout
        "org.created",
        "org.member_added",
        "org.member_removed",
        "org.deleted",
    ]
    by_kind = {d.event_type: d.payload["data"] for d in rows}
    assert by_kind["user.password_changed"] == {"user_id": user_id, "via": "change"}
    assert by_kind["session.revoked"]["user_id"] == user_id
    assert by_kind["session.revoked"]["reason"] == "logout"
    assert by_kind["org.member_added"] == {"org_id": org.id, "user_id": user_id, "via": "operator"}
    assert by_kind["org.deleted"] == {"org_id": org.id}
    text = json.dumps([d.payload for d in rows])
    assert PASSWORD not in text
    assert new_password not in text
    assert "access_token" not in text
    assert addr in json.dumps(by_kind["user.created"])
    assert all(addr not in json.dumps(d.payload) for d in rows if d.event_type != "user.created")


async def test_the_service_runs_the_worker_and_a_sweep_finds_what_no_notice_announced(
    settings: Settings,
    services: Services,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    receiver: Receiver,
) -> None:
    # A delivery queued while no worker listened: a fresh worker's first sweep finds
    # it from the table's statistics counter (no NOTIFY reaches it).
    quiet = provision()
    await add_endpoint(services, receiver, quiet, f"sweep-{quiet.app_id}")
    await signup(client, quiet.app_id, _email())
    # The table's change counter moves once the writer flushes its statistics.
    worker = make_worker(services)
    seen: set[str] = set()
    for _ in range(300):  # up to 60 s on a loaded machine
        seen.update(await worker.sweep())
        if receiver.of(f"sweep-{quiet.app_id}"):
            break
        await asyncio.sleep(0.2)
    assert quiet.app_id in seen
    assert len(receiver.of(f"sweep-{quiet.app_id}")) == 1
    # The in-process worker (ONEAUTH_EMAIL_WORKER=inprocess) starts with the mail
    # worker in the ASGI lifespan and wakes on the NOTIFY of emit.
    live = dataclasses.replace(settings, email_worker="inprocess", email_sweep_interval=3600)
    asgi = create_app(live, configure_logging=False)
    async with asgi.router.lifespan_context(asgi):
        own = asgi.state.services
        assert isinstance(own, Services)
        assert own.webhooks is not None
        app = provision()
        await add_endpoint(own, receiver, app, f"inproc-{app.app_id}")
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            await signup(c, app.app_id, _email())
        got = await receiver.wait_for(f"inproc-{app.app_id}", 1, within=30)
        assert len(got) == 1
        assert got[0].valid


async def test_an_accepted_invitation_emits_member_added_and_invitation_accepted(
    services: Services, provision: Callable[..., AppRecord], receiver: Receiver
) -> None:
    from oneauth.flows.mailing import Mailer
    from oneauth.orgs import invitations
    from oneauth.orgs import service as orgs
    from oneauth.orgs.actor import OPERATOR
    from orgs._support import make_user

    app = provision()
    await add_endpoint(services, receiver, app, f"inv-{app.app_id}", types=tuple(EVENT_TYPES))
    email = _email()
    async with services.router.enter(app) as conn:
        org = await orgs.create(conn, name="Invites", actor=OPERATOR)
        invitation, token = await invitations.invite(
            Mailer(services, app), conn, org.id, email, invited_by=OPERATOR
        )
    user = await make_user(services, app, email)
    async with services.router.enter(app) as conn:
        await invitations.accept(conn, Mailer(services, app).macs, token, user)
    rows = await deliveries(services, app)
    assert [d.event_type for d in rows] == [
        "org.created",
        "org.member_added",
        "invitation.accepted",
    ]
    assert rows[1].payload["data"] == {
        "org_id": org.id,
        "user_id": str(user.id),
        "via": "invitation",
    }
    assert rows[2].payload["data"] == {
        "org_id": org.id,
        "invitation_id": str(invitation.id),
        "user_id": str(user.id),
    }
    assert token not in json.dumps([d.payload for d in rows])  # the invitation secret stays out
