"""Apps A and B, the same email in both, each with an org ``acme`` (issue 13, B1).

Two unrelated orgs: A's org id is unknown at B, A's invitation token does nothing
at B (its MAC is keyed by the app, its row is in A's schema), and an org admin of
A's acme can do nothing at B's acme, neither with A's token nor with the B account
of the same address.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from oneauth.apps.models import AppRecord
from oneauth.mail.backends import MemoryBackend
from oneauth.services import Services
from orgs._surfaces import invitation_token, members_of, org_of, person, problem, unique_email


async def test_an_org_of_app_a_is_nothing_at_app_b(
    client: httpx.AsyncClient,
    services: Services,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
) -> None:
    a, b = provision(), provision()
    email = unique_email("same")
    ada_a = await person(client, services, a, email)
    ada_b = await person(client, services, b, email)
    bob_b = await person(client, services, b)
    acme_a = await org_of(services, a, "acme", admin=ada_a)
    acme_b = await org_of(services, b, "acme", admin=bob_b)
    assert acme_a.id != acme_b.id

    def at(app: AppRecord, path: str) -> str:
        return f"/apps/{app.app_id}/v1{path}"

    # A's org id is unknown at B, for the B account of the same address too.
    for path in ("", "/members", "/invitations"):
        problem(
            await client.get(at(b, f"/orgs/{acme_a.id}{path}"), headers=ada_b.auth),
            404,
            "org_not_found",
        )
    # B's acme exists, but A's admin is not its member: nothing there either.
    problem(await client.get(at(b, f"/orgs/{acme_b.id}"), headers=ada_b.auth), 404, "org_not_found")
    problem(
        await client.delete(at(b, f"/orgs/{acme_b.id}/members/{bob_b.id}"), headers=ada_b.auth),
        404,
        "org_not_found",
    )
    problem(
        await client.post(
            at(b, f"/orgs/{acme_b.id}/invitations"),
            json={"email": unique_email()},
            headers=ada_b.auth,
        ),
        404,
        "org_not_found",
    )
    # A's token is not B's: refused before any org is looked at.
    problem(await client.get(at(b, f"/orgs/{acme_b.id}"), headers=ada_a.auth), 401, "invalid_token")
    problem(await client.get(at(b, "/orgs"), headers=ada_a.auth), 401, "invalid_token")
    # The B account of the same address belongs to no org of B.
    assert (await client.get(at(b, "/orgs"), headers=ada_b.auth)).json()["items"] == []

    # An invitation of A (to the address that has an account in both apps).
    guest = unique_email("guest")
    made = await client.post(
        at(a, f"/orgs/{acme_a.id}/invitations"), json={"email": guest}, headers=ada_a.auth
    )
    assert made.status_code == 201, made.text
    token = await invitation_token(services, mailbox, a, guest)
    guest_b = await person(client, services, b, guest)
    problem(
        await client.post(
            at(b, "/invitations/accept"), json={"token": token}, headers=guest_b.auth
        ),
        400,
        "invitation_invalid",
    )
    assert guest_b.id not in await members_of(services, b, acme_b.id)
    # B's hosted page knows nothing of it either; A's invitation is still open at A.
    page = await client.get(f"/apps/{b.app_id}/invitations/accept", params={"token": token})
    assert page.status_code == 400
    assert "invitation_invalid" in page.text
    guest_a = await person(client, services, a, guest)
    joined = await client.post(
        at(a, "/invitations/accept"), json={"token": token}, headers=guest_a.auth
    )
    assert joined.status_code == 200, joined.text
    assert joined.json()["id"] == acme_a.id
    # A's invitation id names nothing at B.
    listed = await client.get(at(a, f"/orgs/{acme_a.id}/invitations"), headers=ada_a.auth)
    assert listed.json()["items"] == []
    problem(
        await client.delete(
            at(b, f"/orgs/{acme_b.id}/invitations/{made.json()['id']}"), headers=bob_b.auth
        ),
        404,
        "invitation_not_found",
    )
