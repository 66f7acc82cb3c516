"""The platform API (/admin/v1/apps, /admin/v1/jobs) and its job runner (issue 15, B4)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable

import httpx
import pytest

import platformkit
from admin._support import admin_token, bearer
from apiclient import signup
from conftest import new_app_id
from oneauth.apps import lifecycle, receipts
from oneauth.apps.models import AppRecord
from oneauth.db import ops
from oneauth.settings import Settings
from platformkit import platform_client, platform_token

platform_init = platformkit.platform_init  # the fixtures
runners = platformkit.runners
READ, WRITE = "platform:apps:read", "platform:apps:write"


@pytest.fixture(scope="module")
async def tokens(settings: Settings, platform_init: object, service: object) -> dict[str, str]:
    transport = httpx.ASGITransport(app=service)  # type: ignore[arg-type]
    made: dict[str, str] = {}
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        for name, scopes in (("read", [READ]), ("write", [WRITE]), ("both", [READ, WRITE])):
            cid, secret = platform_client(settings, scopes, name=name)
            made[name] = await platform_token(http, cid, secret)
    return made


def _audit_rows(settings: Settings, event: str, target: str) -> list[tuple[object, ...]]:
    with ops.connect(settings.operator_url) as conn:
        app = lifecycle.get(conn, "platform")
        assert app is not None
        with conn.transaction(), ops.app_context(conn, app.names):
            return conn.execute(
                "SELECT outcome, actor_type, actor_id, details FROM audit_log"
                " WHERE event = %s AND target_id = %s ORDER BY id",
                (event, target),
            ).fetchall()


async def _provision(
    client: httpx.AsyncClient, token: str, app_id: str, *, key: str | None = None, wait: int = 10
) -> httpx.Response:
    headers = bearer(token)
    if key is not None:
        headers["idempotency-key"] = key
    return await client.post(
        f"/admin/v1/apps?wait={wait}",
        json={"app_id": app_id, "display_name": f"Shop {app_id}"},
        headers=headers,
    )


async def test_provision_job_app_exists_and_its_issuer_works(
    client: httpx.AsyncClient, tokens: dict[str, str], runners: None, settings: Settings
) -> None:
    app_id = new_app_id("papi")
    r = await _provision(client, tokens["both"], app_id)
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/admin/v1/jobs/{job['job_id']}"
    assert job["status"] == "succeeded", job
    assert job["kind"] == "provision"
    app = job["result"]
    assert app["app_id"] == app_id
    assert app["status"] == "active"
    assert app["issuer"] == f"http://testserver/apps/{app_id}"
    assert app["migrate_status"] == "current"
    assert app["schema_version"] == app["latest_schema_version"]
    # Registry data only: nothing of the app's users, clients or keys.
    assert set(app) == {
        "app_id",
        "display_name",
        "status",
        "issuer",
        "created_at",
        "schema_version",
        "latest_schema_version",
        "migrate_status",
        "settings",
    }
    doc = await client.get(f"/apps/{app_id}/.well-known/openid-configuration")
    assert doc.status_code == 200
    assert doc.json()["issuer"] == app["issuer"]
    await signup(client, app_id, "first@example.com")  # the app serves at once
    shown = await client.get(f"/admin/v1/apps/{app_id}", headers=bearer(tokens["read"]))
    assert shown.status_code == 200
    assert shown.json() == app
    assert shown.headers["etag"].startswith('"')
    polled = await client.get(r.headers["location"], headers=bearer(tokens["read"]))
    assert polled.status_code == 200
    assert polled.json() == job
    # Audited in the control-plane log: the call and the job, with the acting client.
    requested = _audit_rows(settings, "platform.app.provision.requested", app_id)
    done = _audit_rows(settings, "platform.app.provision", app_id)
    assert len(requested) == 1
    assert len(done) == 1
    assert requested[0][1] == "client" == done[0][1]
    assert requested[0][2] == done[0][2]
    assert done[0][0] == "success"


async def test_suspend_404s_the_app_at_once_then_resume_then_delete(
    client: httpx.AsyncClient,
    tokens: dict[str, str],
    runners: None,
    provision: Callable[..., AppRecord],
    settings: Settings,
) -> None:
    app = provision()
    path = f"/apps/{app.app_id}/.well-known/openid-configuration"
    assert (await client.get(path)).status_code == 200  # cached in the registry now
    w = bearer(tokens["write"])
    r = await client.post(f"/admin/v1/apps/{app.app_id}/suspend?wait=10", headers=w)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "succeeded"
    assert r.json()["result"]["status"] == "suspended"
    assert r.json()["receipt"] is None  # only a delete has one
    assert (await client.get(path)).status_code == 404
    r = await client.post(f"/admin/v1/apps/{app.app_id}/resume?wait=10", headers=w)
    assert r.json()["result"]["status"] == "active"
    assert (await client.get(path)).status_code == 200
    r = await client.delete(f"/admin/v1/apps/{app.app_id}?wait=10", headers=w)
    assert r.status_code == 202
    assert r.json()["result"]["status"] == "deleted"
    assert (await client.get(path)).status_code == 404
    # The signed deletion receipt (K3), as `oneauth apps delete` prints it, and the
    # same one `oneauth apps receipt` reads back; the job's GET shows it again.
    receipt = r.json()["receipt"]
    with ops.connect(settings.operator_url) as conn:
        claims = receipts.verify(receipt, receipts.public_keys(conn))
        assert receipts.stored(conn, app.app_id) == receipt
    assert claims["app_id"] == app.app_id
    assert claims["dek_id"]
    job = await client.get(f"/admin/v1/jobs/{r.json()['job_id']}", headers=bearer(tokens["read"]))
    assert job.json().get("receipt") == receipt, job.text
    # A deleted id is never provisioned again; suspending it is a 404.
    again = await _provision(client, tokens["write"], app.app_id)
    assert again.status_code == 409
    assert again.json()["code"] == "app_exists"
    gone = await client.post(f"/admin/v1/apps/{app.app_id}/suspend", headers=w)
    assert gone.status_code == 404


async def test_idempotent_provision_replays_and_refuses_another_body(
    client: httpx.AsyncClient, tokens: dict[str, str], runners: None
) -> None:
    app_id = new_app_id("pidem")
    key = secrets.token_hex(8)
    first = await _provision(client, tokens["write"], app_id, key=key)
    second = await _provision(client, tokens["write"], app_id, key=key)
    assert first.status_code == second.status_code == 202
    assert second.headers["idempotency-replayed"] == "true"
    assert second.json()["job_id"] == first.json()["job_id"]
    assert second.json()["status"] == "succeeded"
    other = await _provision(client, tokens["write"], new_app_id("pidem"), key=key)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"


async def test_two_provisions_of_one_id_at_once_make_one_app(
    client: httpx.AsyncClient, tokens: dict[str, str], runners: None, settings: Settings
) -> None:
    """Different keys, the same app_id, at once, two runners: one app; the other job
    fails cleanly (app_exists) or the call is refused outright (409 before queuing)."""
    app_id = new_app_id("prace")
    answers = await asyncio.gather(
        *(_provision(client, tokens["write"], app_id, key=secrets.token_hex(8)) for _ in range(2))
    )
    statuses = sorted(r.status_code for r in answers)
    jobs = [r.json() for r in answers if r.status_code == 202]
    succeeded = [j for j in jobs if j["status"] == "succeeded"]
    assert len(succeeded) == 1, [r.json() for r in answers]
    others = [r.json() for r in answers if r.json().get("job_id") != succeeded[0]["job_id"]]
    assert len(others) == 1
    other = others[0]
    if "job_id" in other:  # queued before the app existed: its job failed, cleanly
        assert statuses == [202, 202]
        assert other["status"] == "failed"
        assert other["error"]["code"] == "app_exists"
        assert other["result"] is None
    else:
        assert statuses == [202, 409]
        assert other["code"] == "app_exists"
    with ops.connect(settings.operator_url) as conn:
        count = conn.execute(
            "SELECT count(*) FROM oneauth.apps WHERE app_id = %s", (app_id,)
        ).fetchone()
    assert count == (1,)


async def test_configure_needs_the_etag(
    client: httpx.AsyncClient,
    tokens: dict[str, str],
    runners: None,
    provision: Callable[..., AppRecord],
) -> None:
    app = provision()
    both = bearer(tokens["both"])
    path = f"/admin/v1/apps/{app.app_id}"
    shown = await client.get(path, headers=both)
    tag = shown.headers["etag"]
    change = {"display_name": "Renamed", "settings": {"self_signup": False}}
    missing = await client.patch(path, json=change, headers=both)
    assert missing.status_code == 428
    assert missing.json()["code"] == "precondition_required"
    stale = await client.patch(path, json=change, headers={**both, "if-match": '"0"'})
    assert stale.status_code == 412
    bad = await client.patch(
        path, json={"settings": {"self_sign_up": False}}, headers={**both, "if-match": tag}
    )
    assert bad.status_code == 422
    assert bad.json()["field"] == "settings"
    done = await client.patch(f"{path}?wait=10", json=change, headers={**both, "if-match": tag})
    assert done.status_code == 202, done.text
    assert done.json()["status"] == "succeeded", done.json()
    assert done.json()["result"]["display_name"] == "Renamed"
    assert done.json()["result"]["settings"] == {"self_signup": False}
    again = await client.patch(path, json=change, headers={**both, "if-match": tag})
    assert again.status_code == 412  # the old ETag is stale now
    back = await client.get(path, headers=both)
    unset = await client.patch(
        f"{path}?wait=10",
        json={"settings": {"self_signup": None}},
        headers={**both, "if-match": back.headers["etag"]},
    )
    assert unset.json()["result"]["settings"] == {}


async def test_scopes_per_route(
    client: httpx.AsyncClient, tokens: dict[str, str], provision: Callable[..., AppRecord]
) -> None:
    """Read routes need platform:apps:read, write routes platform:apps:write."""
    app = provision()
    read, write = bearer(tokens["read"]), bearer(tokens["write"])
    reads = [
        ("GET", "/admin/v1/apps"),
        ("GET", f"/admin/v1/apps/{app.app_id}"),
        ("GET", "/admin/v1/jobs"),
        ("GET", f"/admin/v1/jobs/{'0' * 8}-0000-0000-0000-{'0' * 12}"),
    ]
    writes = [
        ("POST", "/admin/v1/apps"),
        ("PATCH", f"/admin/v1/apps/{app.app_id}"),
        ("POST", f"/admin/v1/apps/{app.app_id}/suspend"),
        ("POST", f"/admin/v1/apps/{app.app_id}/resume"),
        ("DELETE", f"/admin/v1/apps/{app.app_id}"),
    ]
    for (method, path), missing in [(r, WRITE) for r in reads] + [(w, READ) for w in writes]:
        token = write if missing == WRITE else read
        r = await client.request(method, path, headers=token, json={})
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["code"] == "insufficient_scope"
        needed = READ if missing == WRITE else WRITE
        assert f'scope="{needed}"' in r.headers["www-authenticate"]
    for method, path in reads:
        r = await client.request(method, path, headers=read)
        assert r.status_code in (200, 404), (method, path, r.text)
    # Nothing was changed by the refused writes.
    assert (await client.get(f"/admin/v1/apps/{app.app_id}", headers=read)).json()[
        "status"
    ] == "active"


async def test_platform_and_app_tokens_stay_in_their_trees(
    client: httpx.AsyncClient,
    tokens: dict[str, str],
    settings: Settings,
    provision: Callable[..., AppRecord],
) -> None:
    app = provision()
    app_token = await admin_token(client, settings, app)  # every admin scope of app A
    r = await client.get("/admin/v1/apps", headers=bearer(app_token))
    assert r.status_code == 401
    assert r.json()["code"] == "invalid_token"
    for path in (f"/apps/{app.app_id}/admin/v1/users", "/apps/platform/admin/v1/users"):
        r = await client.get(path, headers=bearer(tokens["both"]))
        assert r.status_code in (401, 404), (path, r.text)
        if path.startswith(f"/apps/{app.app_id}"):
            assert r.status_code == 401
            assert r.json()["code"] == "invalid_token"
    assert (await client.get("/admin/v1/apps")).status_code == 401
    junk = await client.get("/admin/v1/apps", headers=bearer("a.b.c"))
    assert junk.status_code == 401
    # An operator's own sign-in token of the platform app is not a platform API token.
    with ops.connect(settings.operator_url) as conn:
        platform = lifecycle.get(conn, "platform")
    assert platform is not None
    user_token = await _platform_user_token(client, settings, platform)
    r = await client.get("/admin/v1/apps", headers=bearer(user_token))
    assert r.status_code == 403


async def _platform_user_token(
    client: httpx.AsyncClient, settings: Settings, platform: AppRecord
) -> str:
    """A user token of the platform app, minted with its own issuer as a sign-in would."""
    from oneauth.services import Services

    services: Services = client._transport.app.state.services  # type: ignore[attr-defined]
    async with services.router.enter(platform) as conn:
        issuer = await services.issuer(platform, conn)
    token, _ = issuer.access_token(
        sub="00000000-0000-4000-8000-000000000001",
        client_id="cl_oneauth-console",
        scope="openid email",
        ttl=300,
    )
    return token


async def test_unknown_and_reserved_apps_are_404(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    both = bearer(tokens["both"])
    for app_id in ("platform", "console", "nope-nope-nope"):
        r = await client.get(f"/admin/v1/apps/{app_id}", headers=both)
        assert r.status_code == 404, app_id
        assert r.json()["code"] == "app_not_found"
        r = await client.post(f"/admin/v1/apps/{app_id}/suspend", headers=both)
        assert r.status_code == 404, app_id
    for app_id in ("platform", "admin"):
        r = await _provision(client, tokens["both"], app_id, wait=0)
        assert r.status_code == 422
        assert r.json()["field"] == "app_id"
    bad = await client.get("/admin/v1/apps?cursor=!!", headers=both)
    assert bad.status_code == 422
    assert bad.json()["field"] == "cursor"
    assert (await client.get("/admin/v1/apps?limit=500", headers=both)).status_code == 422
    assert (await client.get("/admin/v1/jobs/not-a-uuid", headers=both)).status_code == 404
