"""Domain auto-join: only a verified address at a verified domain, per the org's policy;
through the real sign-in and email-verification paths."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

import httpx
import pytest

from conftest import Isolated
from oneauth import audit, errors
from oneauth.apps.models import AppRecord
from oneauth.identity import addresses
from oneauth.identity.users import normalize_email
from oneauth.orgs import domains
from oneauth.orgs import service as orgs
from oneauth.services import Services

from ._support import OPERATOR, PASSWORD, make_user, unique_email


async def _org(
    services: Services, app: AppRecord, domain: str, policy: str, *, verified: bool = True
) -> orgs.Org:
    async with services.router.enter(app) as conn:
        org = await orgs.create(conn, name=f"{policy} {domain}", actor=OPERATOR)
        await domains.add(conn, org.id, domain, actor=OPERATOR)
        if verified:
            await domains.verify(conn, org.id, domain, actor=OPERATOR)
        return await orgs.update(conn, org.id, actor=OPERATOR, join_policy=policy)


async def test_policies_off_offer_automatic_and_never_unverified(
    services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    auto = await _org(services, app, "auto.example", "automatic")
    offer = await _org(services, app, "offer.example", "offer")
    off = await _org(services, app, "off.example", "off")
    pending = await _org(services, app, "pending.example", "automatic", verified=False)
    async with services.router.enter(app) as conn:
        await orgs.create_custom_role(conn, auto.id, "staff", ["org:read"], actor=OPERATOR)
        await orgs.update(conn, auto.id, actor=OPERATOR, default_role="staff")
    users = {
        name: await make_user(services, app, unique_email(domain=f"{name}.example"))
        for name in ("auto", "offer", "off", "pending")
    }
    unverified = await make_user(services, app, unique_email(domain="auto.example"), verified=False)
    sub = await make_user(services, app, unique_email(domain="sub.auto.example"))
    # Made before the transaction below: a second connection for this app while
    # one is held can wait on the held one (the router's per-connection app bound).
    late = await make_user(services, app, unique_email(domain="auto.example"))
    async with services.router.enter(app) as conn:
        assert [o.id for o in await domains.join_automatic(conn, users["auto"])] == [auto.id]
        joined = await orgs.membership(conn, auto.id, users["auto"].id)
        assert joined is not None
        assert (joined.joined_via, joined.roles) == ("domain", ["staff"])
        assert await domains.join_automatic(conn, users["auto"]) == []  # once
        assert await domains.join_automatic(conn, users["offer"]) == []
        assert [o.id for o in await domains.offers(conn, users["offer"])] == [offer.id]
        m = await domains.join_offered(conn, users["offer"], offer.id)
        assert m.roles == ["member"]
        assert await domains.offers(conn, users["offer"]) == []
        for name, org in (("off", off), ("pending", pending)):
            assert await domains.join_automatic(conn, users[name]) == []
            assert await domains.offers(conn, users[name]) == []
            with pytest.raises(errors.OrgNotFound):
                await domains.join_offered(conn, users[name], org.id)
        # Never on an unverified address, even if the caller's row says otherwise.
        assert await domains.join_automatic(conn, unverified) == []
        lying = dataclasses.replace(unverified, email_verified=True)
        assert await domains.join_automatic(conn, lying) == []
        assert await domains.join_automatic(conn, sub) == []  # exact domains only
        for org in (auto, offer, off, pending):
            listed, _ = await orgs.members(conn, org.id)
            assert unverified.id not in {x.user_id for x in listed}
        # Suspended: no joins.
        await orgs.suspend(conn, auto.id, actor=OPERATOR)
        assert await domains.join_automatic(conn, late) == []


async def test_a_verified_domain_has_one_owner_org_even_when_raced(
    isolated: Isolated, provision: Callable[..., AppRecord]
) -> None:
    services = isolated.services
    app = provision()
    async with services.router.enter(app) as conn:
        a = await orgs.create(conn, name="A", actor=OPERATOR)
        b = await orgs.create(conn, name="B", actor=OPERATOR)
        for org in (a, b):
            await domains.add(conn, org.id, "Race.Example", actor=OPERATOR)
        assert [d.domain for d in await domains.list_domains(conn, a.id)] == ["race.example"]
        with pytest.raises(errors.DomainNotFound):
            await domains.verify(conn, a.id, "other.example", actor=OPERATOR)

    async def verify(org_id: str) -> str:
        try:
            async with services.router.enter(app) as conn:
                await domains.verify(conn, org_id, "race.example", actor=OPERATOR)
        except errors.DomainTaken:
            return "taken"
        return "verified"

    results = await asyncio.gather(verify(a.id), verify(b.id))
    assert sorted(results) == ["taken", "verified"]
    async with services.router.enter(app) as conn:
        owners = await conn.fetch(
            "SELECT org_id FROM org_domains"
            " WHERE domain = 'race.example' AND verified_at IS NOT NULL"
        )
        assert len(owners) == 1
        owner = owners[0]["org_id"]
        await domains.remove(conn, owner, "race.example", actor=OPERATOR)
        other = b.id if owner == a.id else a.id
        assert (await domains.verify(conn, other, "race.example", actor=OPERATOR)).verified
        with pytest.raises(errors.DomainNotFound):
            await domains.remove(conn, owner, "race.example", actor=OPERATOR)


async def test_sign_in_and_email_verification_join_automatically(
    client: httpx.AsyncClient, services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    org = await _org(services, app, "signin.example", "automatic")
    verified = await make_user(services, app, unique_email(domain="signin.example"), password=True)
    r = await client.post(
        f"/apps/{app.app_id}/v1/login", json={"email": verified.email, "password": PASSWORD}
    )
    assert r.status_code == 200, r.text
    async with services.router.enter(app) as conn:
        m = await orgs.membership(conn, org.id, verified.id)
        assert m is not None
        assert m.joined_via == "domain"
    # Unverified: signing in joins nothing; verifying the mailbox does.
    later = await make_user(services, app, unique_email(domain="signin.example"), verified=False)
    async with services.router.enter(app) as conn:
        assert await domains.join_automatic(conn, later) == []
        await addresses.mailbox_proven(
            conn, later.id, normalize_email(later.email), method="verify_code", meta=audit.SYSTEM
        )
    async with services.router.enter(app) as conn:
        assert await orgs.membership(conn, org.id, later.id) is not None
