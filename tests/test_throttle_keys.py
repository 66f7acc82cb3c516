"""Throttle and audit keys for emails are keyed HMACs, per app (issue 10, item 6).

A bare SHA-256 of an address can be reversed with a list of addresses; the
stored keys must match no such list, depend on the master key and on the app.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import secrets
from collections.abc import Callable

import httpx
import pytest

from apiclient import login, signup
from oneauth import audit
from oneauth.apps.models import AppRecord
from oneauth.errors import InvalidCredentials
from oneauth.flows import password
from oneauth.identity import throttle
from oneauth.services import Services

EMAILS = [f"person{n}@example.com" for n in range(4)]


def sha256_dictionary(emails: list[str]) -> set[str]:
    """What an attacker with a list of addresses would try: plain and labelled hashes."""
    out = set()
    for e in emails:
        for text in (e, "acct|" + e, f"acct|{e}".upper(), e.upper()):
            digest = hashlib.sha256(text.encode()).hexdigest()
            out.add(digest[:16])  # any prefix of it shows up as this
    return out


async def stored_keys(services: Services, app: AppRecord) -> list[str]:
    async with services.router.enter(app) as conn:
        keys = [r["key"] for r in await conn.fetch("SELECT key FROM throttle")]
        targets = [
            r["target_id"]
            for r in await conn.fetch(
                "SELECT target_id FROM audit_log WHERE target_type = 'account'"
            )
        ]
    return keys + targets


async def test_stored_keys_match_no_dictionary_of_sha256_values(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
) -> None:
    app = provision()
    await signup(client, app.app_id, EMAILS[0])
    for email in EMAILS:
        assert (await login(client, app.app_id, email, "not-the-password")).status_code == 401
        r = await client.post(
            f"/apps/{app.app_id}/v1/password/reset/request", json={"email": email}
        )
        assert r.status_code == 202
    stored = await stored_keys(services, app)
    assert any(k.startswith("mail:") for k in stored)
    assert any(k.startswith("acct:") for k in stored)
    dictionary = sha256_dictionary(EMAILS)
    for key in stored:
        assert not any(h in key for h in dictionary), key
        assert not any(e in key for e in EMAILS), key
    # What is stored is this app's keyed hash of the address.
    names = throttle.Names(services.settings.master_key, app.app_id)
    for email in EMAILS:
        assert names.account(email) in stored


async def test_keys_depend_on_the_master_key_and_the_app(
    provision: Callable[..., AppRecord],
    services: Services,
) -> None:
    a, b = provision(), provision()
    other_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    other = dataclasses.replace(
        services, settings=dataclasses.replace(services.settings, master_key=other_key)
    )
    meta = audit.RequestMeta(ip_hash="0" * 32)
    seen: dict[tuple[str, str], set[str]] = {}
    for app in (a, b):
        record = await services.registry.require_active(app.app_id)
        for svc in (services, other):
            with pytest.raises(InvalidCredentials):
                await password.login(svc, record, "same@example.com", "wrong password", meta)
        async with services.router.enter(app) as conn:
            rows = await conn.fetch("SELECT key FROM throttle WHERE key LIKE 'acct:%'")
        seen[(app.app_id, "both")] = {r["key"] for r in rows}
        for label, svc in (("default", services), ("other", other)):
            names = throttle.Names(svc.settings.master_key, app.app_id)
            seen[(app.app_id, label)] = {names.account("same@example.com")}
    for app in (a, b):
        default, again = seen[(app.app_id, "default")], seen[(app.app_id, "other")]
        assert default != again  # another master key: other keys
        assert default | again == seen[(app.app_id, "both")]  # and both were stored
    assert seen[(a.app_id, "both")].isdisjoint(seen[(b.app_id, "both")])  # per app
