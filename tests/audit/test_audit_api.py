"""The audit log in the app admin API: query, NDJSON export, verify, checkpoints
(admin:audit:read; app B's admin cannot read app A's log)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from admin._support import admin_token, bearer
from oneauth.admin.scopes import APP_ADMIN_SCOPES
from oneauth.apps.models import AppRecord
from oneauth.services import Services
from oneauth.settings import Settings

from ._helpers import ids, make_sealer, superuser, write

ROUTES = [
    ("GET", "/audit"),
    ("GET", "/audit/export"),
    ("POST", "/audit/verify"),
    ("GET", "/audit/checkpoints"),
]


def _url(app: AppRecord, path: str) -> str:
    return f"/apps/{app.app_id}/admin/v1{path}"


async def test_query_filters_and_pages_newest_first(
    client: httpx.AsyncClient,
    services: Services,
    provision: Callable[..., AppRecord],
    settings: Settings,
) -> None:
    app = provision()
    token = await admin_token(client, settings, app, ["admin:audit:read"])
    await write(services, app, 5, event="test.alpha")
    await write(services, app, 2, event="test.beta")
    await make_sealer(services).seal_app(app)
    r = await client.get(
        _url(app, "/audit"), params={"event": "test", "limit": 3}, headers=bearer(token)
    )
    assert r.status_code == 200, r.text
    page = r.json()
    assert [e["event"] for e in page["items"]] == ["test.beta", "test.beta", "test.alpha"]
    assert page["items"][0]["id"] > page["items"][1]["id"]
    assert all(e["row_hash"] for e in page["items"])  # sealed
    seen = [e["id"] for e in page["items"]]
    while page["next_cursor"]:
        r = await client.get(
            _url(app, "/audit"),
            params={"event": "test", "limit": 3, "cursor": page["next_cursor"]},
            headers=bearer(token),
        )
        page = r.json()
        seen += [e["id"] for e in page["items"]]
    assert len(seen) == 7
    assert seen == sorted(seen, reverse=True)
    r = await client.get(
        _url(app, "/audit"),
        params={"event": "test.beta", "target": "t1", "outcome": "success"},
        headers=bearer(token),
    )
    assert [e["target_id"] for e in r.json()["items"]] == ["t1"]
    r = await client.get(
        _url(app, "/audit"), params={"from": "2999-01-01T00:00:00Z"}, headers=bearer(token)
    )
    assert r.json()["items"] == []
    for bad in (
        {"from": "yesterday"},
        {"from": "2024-01-01T00:00:00"},
        {"cursor": "x"},
        {"no": "1"},
    ):
        r = await client.get(_url(app, "/audit"), params=bad, headers=bearer(token))
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["code"] == "validation_failed"


async def test_export_streams_ndjson_and_is_audited(
    client: httpx.AsyncClient,
    services: Services,
    provision: Callable[..., AppRecord],
    settings: Settings,
) -> None:
    from oneauth.admin.app_api import audit as audit_api

    app = provision()
    token = await admin_token(client, settings, app, ["admin:audit:read"])
    await write(services, app, 7)
    await make_sealer(services).seal_app(app)
    batch, audit_api.EXPORT_BATCH = audit_api.EXPORT_BATCH, 3  # several batches
    try:
        async with client.stream("GET", _url(app, "/audit/export"), headers=bearer(token)) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("application/x-ndjson")
            lines = [json.loads(line) async for line in r.aiter_lines() if line]
    finally:
        audit_api.EXPORT_BATCH = batch
    exported = [line["id"] for line in lines]
    assert exported == sorted(exported)
    assert set(await ids(services, app)) - set(exported) <= {max(await ids(services, app))}
    assert lines[0]["row_hash"]
    assert lines[1]["prev_hash"] == lines[0]["row_hash"]
    async with services.router.enter(app) as conn:
        assert (
            await conn.fetchval("SELECT count(*) FROM audit_log WHERE event = 'admin.audit.export'")
            == 1
        )


async def test_verify_and_checkpoints_over_the_api(
    client: httpx.AsyncClient,
    services: Services,
    provision: Callable[..., AppRecord],
    settings: Settings,
    pg_admin_dsn: str,
) -> None:
    app = provision()
    token = await admin_token(client, settings, app, ["admin:audit:read"])
    await write(services, app, 4)
    sealer = make_sealer(services)
    await sealer.seal_app(app)
    await sealer.checkpoint(app)
    r = await client.post(_url(app, "/audit/verify"), headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json()["intact"] is True
    assert r.json()["checkpoints_matched"] == 1
    r = await client.get(_url(app, "/audit/checkpoints"), headers=bearer(token))
    assert r.status_code == 200
    (cp,) = r.json()["items"]
    assert cp["seq"] == 1
    assert cp["kind"] == "periodic"
    assert cp["jws"].count(".") == 2
    victim = (await ids(services, app))[1]
    with superuser(pg_admin_dsn, settings, app) as su:
        su.execute("UPDATE audit_log SET event = 'user.nothing' WHERE id = %s", (victim,))
    r = await client.post(_url(app, "/audit/verify"), headers=bearer(token))
    body = r.json()
    assert body["intact"] is False
    assert body["first_problem"]["kind"] == "changed"
    assert body["first_problem"]["audit_id"] == victim


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_every_audit_route_needs_admin_audit_read_of_this_app(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    method: str,
    path: str,
) -> None:
    a, b = provision(), provision()
    others = sorted(APP_ADMIN_SCOPES - {"admin:audit:read"})
    without = await admin_token(client, settings, a, others)
    r = await client.request(method, _url(a, path), headers=bearer(without))
    assert r.status_code == 403
    assert 'scope="admin:audit:read"' in r.headers["www-authenticate"]
    r = await client.request(method, _url(a, path))
    assert r.status_code == 401
    # App B's admin token, with the scope, is worthless at app A.
    b_token = await admin_token(client, settings, b, ["admin:audit:read"])
    r = await client.request(method, _url(a, path), headers=bearer(b_token))
    assert r.status_code == 401
    assert r.json()["code"] == "invalid_token"
    a_token = await admin_token(client, settings, a, ["admin:audit:read"])
    r = await client.request(method, _url(a, path), headers=bearer(a_token))
    assert r.status_code == 200


async def test_b_sees_none_of_as_rows_or_checkpoints(
    client: httpx.AsyncClient,
    services: Services,
    provision: Callable[..., AppRecord],
    settings: Settings,
) -> None:
    a, b = provision(), provision()
    await write(services, a, 3, event="test.secret_of_a")
    sealer = make_sealer(services)
    await sealer.seal_app(a)
    await sealer.checkpoint(a)
    token = await admin_token(client, settings, b, ["admin:audit:read"])
    r = await client.get(_url(b, "/audit"), params={"event": "test"}, headers=bearer(token))
    assert r.json()["items"] == []
    r = await client.get(_url(b, "/audit/checkpoints"), headers=bearer(token))
    assert r.json()["items"] == []
    r = await client.get(_url(b, "/audit/export"), headers=bearer(token))
    assert "secret_of_a" not in r.text
