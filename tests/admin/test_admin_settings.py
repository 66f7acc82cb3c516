"""The app admin API's settings (issue 15): GET answers the ETag a PATCH must send; the
PATCH is a configure job for the operator-role runner (the serving role cannot write
the registry, D1), for the caller's own app only."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Callable, Iterator

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

import platformkit
from admin._support import admin_client, admin_token, bearer, token_of
from admin.test_admin_rest_fuzz import VALUES
from oneauth.admin import delegation
from oneauth.admin.app_api import settings as settings_api
from oneauth.admin.scopes import APP_ADMIN_SCOPES
from oneauth.apps import lifecycle, policy, registry
from oneauth.apps.models import AppRecord
from oneauth.db import ops
from oneauth.platform import runner
from oneauth.services import Services
from oneauth.settings import Settings

platform_init = platformkit.platform_init  # the fixtures, imported (tests/platform has
runners = platformkit.runners  # no package: `platform` would shadow the stdlib's)

RW = {"admin:settings:read", "admin:settings:write"}


def _url(app: AppRecord) -> str:
    return f"/apps/{app.app_id}/admin/v1/settings"


def _audit_rows(
    settings: Settings, app: AppRecord, event: str, target: str | None = None
) -> list[tuple[object, ...]]:
    with (
        ops.connect(settings.operator_url) as conn,
        conn.transaction(),
        ops.app_context(conn, app.names),
    ):
        return conn.execute(
            "SELECT outcome, actor_type, actor_id, target_id, details FROM audit_log"
            " WHERE event = %s AND (%s::text IS NULL OR target_id = %s) ORDER BY id",
            (event, target, target),
        ).fetchall()


async def _get(client: httpx.AsyncClient, app: AppRecord, h: dict[str, str]) -> httpx.Response:
    r = await client.get(_url(app), headers=h)
    assert r.status_code == 200, r.text
    return r


# First in the module, before any test starts the runners: the job is not run in time.
async def test_patch_answers_202_with_a_location_when_the_runner_is_late(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    sync_conn: lifecycle.Conn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(settings_api, "WAIT_SECONDS", 0.3)
    app = provision()
    h = bearer(await admin_token(client, settings, app, RW))
    tag = (await _get(client, app, h)).headers["etag"]
    r = await client.patch(
        _url(app), json={"set": {"passwordless": True}}, headers={**h, "if-match": tag}
    )
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] == "queued"
    assert r.headers["location"] == f"{_url(app)}/jobs/{job['job_id']}"
    polled = await client.get(r.headers["location"], headers=h)
    assert polled.status_code == 200
    assert polled.json()["status"] == "queued"
    # Nothing is lost: a runner carries it out later, and the Location says so.
    assert runner.drain(sync_conn, settings) >= 1
    polled = await client.get(r.headers["location"], headers=h)
    assert polled.json()["status"] == "succeeded"
    assert polled.json()["settings"] == {"passwordless": True}
    assert (await _get(client, app, h)).json()["settings"] == {"passwordless": True}


async def test_patch_with_if_match_changes_the_app_then_stale_412_then_missing_428(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    sync_conn: lifecycle.Conn,
    runners: None,
) -> None:
    app = provision()
    cid, secret = admin_client(settings, app, RW)
    h = bearer(await token_of(client, app.app_id, cid, secret))
    info = await client.get(f"/apps/{app.app_id}/v1/app")
    assert info.json()["audience"] == f"http://testserver/apps/{app.app_id}/api"  # cached now
    first = (await _get(client, app, h)).headers["etag"]
    change = {"set": {"audience": "https://api.shop.example", "self_signup": False}}
    with psycopg.connect(settings.operator_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {registry.CHANNEL}")
        r = await client.patch(_url(app), json=change, headers={**h, "if-match": first})
        assert r.status_code == 200, r.text
        # Every other process is told (the registry's change notice) and drops the app.
        told = False
        for notice in listener.notifies(timeout=5):
            if notice.payload == app.app_id:
                told = True
                break
    assert told
    assert r.json()["settings"] == change["set"]
    assert r.json()["effective"]["self_signup"] is False
    second = r.headers["etag"]
    assert second != first
    assert (await _get(client, app, h)).headers["etag"] == second
    # Effective at the app at once: its public facts and its signup.
    info = await client.get(f"/apps/{app.app_id}/v1/app")
    assert info.json()["audience"] == "https://api.shop.example"
    signup = await client.post(
        f"/apps/{app.app_id}/v1/signup",
        json={"email": "new@example.com", "password": "correct horse battery staple"},
    )
    assert signup.status_code == 403
    assert signup.json()["code"] == "signup_disabled"
    # Audited in the app's own log with the acting client.
    rows = _audit_rows(settings, app, "admin.settings.update")
    assert len(rows) == 1
    outcome, actor_type, actor_id, target_id, details = rows[0]
    assert (outcome, actor_type, actor_id, target_id) == ("success", "client", cid, app.app_id)
    assert isinstance(details, dict)
    assert details["client_id"] == cid
    assert details["set"] == ["audience", "self_signup"]
    # And in the control-plane log, marked as the app's own admin API's job.
    platform = lifecycle.get(sync_conn, "platform")
    assert platform is not None
    (job,) = _audit_rows(settings, platform, "platform.app.configure", target=app.app_id)
    assert job[:3] == ("success", "client", cid)
    assert isinstance(job[4], dict)
    assert job[4]["via"] == "app_admin_api"
    # The stale ETag: 412 with the current one; nothing changes.
    r = await client.patch(
        _url(app), json={"unset": ["self_signup"]}, headers={**h, "if-match": first}
    )
    assert r.status_code == 412, r.text
    assert r.json()["code"] == "precondition_failed"
    assert r.headers["etag"] == second
    # Without If-Match (or with *): 428.
    for extra in ({}, {"if-match": "*"}):
        r = await client.patch(_url(app), json={"unset": ["self_signup"]}, headers={**h, **extra})
        assert r.status_code == 428, r.text
        assert r.json()["code"] == "precondition_required"
    # Unset with the current ETag: back to the default.
    r = await client.patch(
        _url(app), json={"unset": ["self_signup"]}, headers={**h, "if-match": second}
    )
    assert r.status_code == 200, r.text
    assert r.json()["settings"] == {"audience": "https://api.shop.example"}
    assert r.json()["effective"]["self_signup"] is True
    assert len(_audit_rows(settings, app, "admin.settings.update")) == 2


async def test_two_patches_with_one_etag_exactly_one_wins(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    runners: None,
) -> None:
    app = provision()
    h = bearer(await admin_token(client, settings, app, RW))
    tag = (await _get(client, app, h)).headers["etag"]
    answers = await asyncio.gather(
        *(
            client.patch(
                _url(app), json={"set": {"access_token_ttl": ttl}}, headers={**h, "if-match": tag}
            )
            for ttl in (300, 900)
        )
    )
    assert sorted(r.status_code for r in answers) == [200, 412], [r.text for r in answers]
    won = next(r for r in answers if r.status_code == 200)
    lost = next(r for r in answers if r.status_code == 412)
    assert lost.json()["code"] == "precondition_failed"
    shown = await _get(client, app, h)
    assert shown.json()["settings"] == won.json()["settings"]
    assert shown.headers["etag"] == won.headers["etag"] == lost.headers["etag"]
    outcomes = sorted(str(row[0]) for row in _audit_rows(settings, app, "admin.settings.update"))
    # A loser refused by the runner is audited as a failure; one refused before it
    # was queued (the ETag had moved already) leaves no job.
    assert outcomes in (["success"], ["failure", "success"])


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"set": {"no_such_setting": 1}}, "no_such_setting"),
        ({"unset": ["no_such_setting"]}, "no_such_setting"),
        ({"set": {"access_token_ttl": 5}}, "access_token_ttl"),
        ({"set": {"mfa": "sometimes"}}, "mfa"),
        ({"set": {"self_signup": None}}, "self_signup"),
        ({"set": {"passwordless": True}, "unset": ["passwordless"]}, "passwordless"),
        ({"set": {"refresh_idle_ttl": 400000, "session_absolute_ttl": 300}}, "refresh_idle_ttl"),
    ],
)
async def test_bad_key_or_value_is_422_naming_it_and_nothing_changes(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    runners: None,
    body: dict[str, object],
    named: str,
) -> None:
    app = provision()
    h = bearer(await admin_token(client, settings, app, RW))
    before = await _get(client, app, h)
    r = await client.patch(_url(app), json=body, headers={**h, "if-match": before.headers["etag"]})
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "validation_failed"
    assert named in r.json()["detail"]
    after = await _get(client, app, h)
    assert after.headers["etag"] == before.headers["etag"]
    assert after.json() == before.json()


async def test_the_body_cannot_name_another_app(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    runners: None,
) -> None:
    a, b = provision(), provision()
    hb = bearer(await admin_token(client, settings, b, RW))
    tag = (await _get(client, b, hb)).headers["etag"]
    body = {"app_id": a.app_id, "set": {"passwordless": True}}
    r = await client.patch(_url(b), json=body, headers={**hb, "if-match": tag})
    assert r.status_code == 422, r.text
    ha = bearer(await admin_token(client, settings, a, {"admin:settings:read"}))
    assert (await _get(client, a, ha)).json()["settings"] == {}


async def test_app_b_admin_cannot_read_or_change_app_a_settings_or_jobs(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    runners: None,
) -> None:
    a, b = provision(), provision()
    ha = bearer(await admin_token(client, settings, a, RW))
    hb = bearer(await admin_token(client, settings, b))
    r = await client.get(_url(a), headers=hb)
    assert r.status_code == 401
    assert "etag" not in r.headers
    tag = (await _get(client, a, ha)).headers["etag"]
    r = await client.patch(
        _url(a), json={"set": {"passwordless": True}}, headers={**hb, "if-match": tag}
    )
    assert r.status_code == 401
    assert (await _get(client, a, ha)).json()["settings"] == {}
    # A's change queued through A's API: its job is invisible to B, even at B's route.
    done = await client.patch(
        _url(a), json={"set": {"passwordless": True}}, headers={**ha, "if-match": tag}
    )
    assert done.status_code == 200, done.text
    job_id = _last_job_id(settings, a.app_id)
    assert (await client.get(f"{_url(b)}/jobs/{job_id}", headers=hb)).status_code == 404
    assert (await client.get(f"{_url(a)}/jobs/{job_id}", headers=hb)).status_code == 401
    mine = await client.get(f"{_url(a)}/jobs/{job_id}", headers=ha)
    assert mine.status_code == 200
    assert mine.json()["status"] == "succeeded"
    assert (await client.get(f"{_url(a)}/jobs/not-a-uuid", headers=ha)).status_code == 404


def _last_job_id(settings: Settings, app_id: str) -> str:
    with ops.connect(settings.operator_url) as conn:
        row = conn.execute(
            "SELECT id::text FROM oneauth.platform_jobs WHERE app_id = %s"
            " ORDER BY created_at DESC LIMIT 1",
            (app_id,),
        ).fetchone()
    assert row is not None
    return str(row[0])


async def test_a_console_operator_patches_and_is_the_audited_actor(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    services: Services,
    runners: None,
) -> None:
    app = provision()
    operator = str(uuid.uuid4())
    with ops.connect(settings.operator_url) as conn:
        conn.execute(
            "INSERT INTO oneauth.console_grants (operator_sub, app_id, role)"
            " VALUES (%s, %s, 'admin')",
            (operator, app.app_id),
        )
    minted = await delegation.mint(
        services, app, operator, "op@example.com", sorted(APP_ADMIN_SCOPES)
    )
    h = bearer(minted.access_token)
    tag = (await _get(client, app, h)).headers["etag"]
    body = {"set": {"primary_color": "#0a7d5a"}, "unset": ["logo_url"]}  # the console's shape
    r = await client.patch(_url(app), json=body, headers={**h, "if-match": tag})
    assert r.status_code == 200, r.text
    assert r.json()["settings"] == {"primary_color": "#0a7d5a"}
    rows = _audit_rows(settings, app, "admin.settings.update")
    assert len(rows) == 1
    outcome, actor_type, actor_id, _, details = rows[0]
    assert (outcome, actor_type, actor_id) == ("success", "operator", operator)
    assert isinstance(details, dict)
    assert details["client_id"] == "oneauth-console"
    assert details["via"] == "console"
    assert details["operator_email"] == "op@example.com"


SETTING_NAMES = sorted(policy.setting_names())
PATCHES = st.fixed_dictionaries(
    {},
    optional={
        "set": st.dictionaries(st.sampled_from([*SETTING_NAMES, "junk"]), VALUES, max_size=4),
        "unset": st.lists(st.sampled_from([*SETTING_NAMES, "junk", ""]), max_size=3),
        "junk": VALUES,
    },
)


@examples(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(body=PATCHES)
async def test_patch_never_answers_5xx(
    client: httpx.AsyncClient,
    fuzzed_app: tuple[AppRecord, dict[str, str]],
    runners: None,
    body: dict[str, object],
) -> None:
    """I1: with a token that passes the guard and the current ETag, no body makes the
    PATCH answer 5xx; a refusal is problem+json and changes nothing."""
    app, h = fuzzed_app
    before = await _get(client, app, h)
    r = await client.patch(_url(app), json=body, headers={**h, "if-match": before.headers["etag"]})
    assert r.status_code in (200, 202, 422), (body, r.text)
    if r.status_code == 422:
        assert r.headers["content-type"].startswith("application/problem+json")
        assert (await _get(client, app, h)).headers["etag"] == before.headers["etag"]


@pytest.fixture(scope="module")
def _fuzz_wait() -> Iterator[None]:
    # A valid fuzzed change need not be waited for: the runners carry it out anyway.
    wait, settings_api.WAIT_SECONDS = settings_api.WAIT_SECONDS, 0.05
    yield
    settings_api.WAIT_SECONDS = wait


@pytest.fixture
async def fuzzed_app(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    _fuzz_wait: None,
) -> tuple[AppRecord, dict[str, str]]:
    app = provision()
    return app, bearer(await admin_token(client, settings, app, RW))


async def test_read_scope_alone_cannot_patch(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    app = provision()
    h = bearer(await admin_token(client, settings, app, {"admin:settings:read"}))
    tag = (await _get(client, app, h)).headers["etag"]
    r = await client.patch(
        _url(app), json={"set": {"passwordless": True}}, headers={**h, "if-match": tag}
    )
    assert r.status_code == 403
    assert r.json()["code"] == "insufficient_scope"
    assert 'scope="admin:settings:write"' in r.headers["www-authenticate"]


async def test_settings_etag_names_what_is_stored_now(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    sync_conn: lifecycle.Conn,
) -> None:
    app = provision()
    url = _url(app)
    h = bearer(await admin_token(client, settings, app, {"admin:settings:read"}))
    r = await client.get(url, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["effective"]["passwordless"] is False
    canonical = json.dumps(body["settings"], sort_keys=True, separators=(",", ":"))
    assert r.headers["etag"] == '"' + hashlib.sha256(canonical.encode()).hexdigest() + '"'
    first = r.headers["etag"]
    # The operator changes a setting: the next GET shows it (read fresh, not from the
    # process cache) with another ETag, so an If-Match with the first one is stale.
    lifecycle.configure(sync_conn, app.app_id, set_values={"passwordless": True})
    r = await client.get(url, headers=h)
    assert r.json()["settings"]["passwordless"] is True
    assert r.json()["effective"]["passwordless"] is True
    assert r.headers["etag"] != first
