"""A downstream service's tests with the oneauth.testing plugin: real tokens from a
real (throwaway) oneauth, signed in through its hosted login page."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from oneauth.testing import Client, OneauthApp, User


def test_no_token_is_401_with_a_bearer_challenge(api: TestClient) -> None:
    response = api.get("/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_signed_in_user_is_known(api: TestClient, oneauth_user: Callable[..., User]) -> None:
    ada = oneauth_user()
    response = api.get("/me", headers=ada.sign_in().authorization)
    assert response.status_code == 200
    assert response.json()["sub"] == ada.id


def test_invoices_need_the_billing_role(api: TestClient, oneauth_user: Callable[..., User]) -> None:
    billing = oneauth_user(roles=["billing"])
    assert api.get("/invoices", headers=billing.sign_in().authorization).status_code == 200
    other = api.get("/invoices", headers=oneauth_user().sign_in().authorization)
    assert other.status_code == 403
    assert 'error="insufficient_scope"' in other.headers["www-authenticate"]


def test_orders_are_per_org_and_admins_create_them(
    api: TestClient, oneauth_app: OneauthApp, oneauth_user: Callable[..., User]
) -> None:
    admin = oneauth_user(orgs={"acme": ["admin"]})
    member = oneauth_user(orgs={"acme": ["member"], "globex": ["admin"]})
    acme = oneauth_app.org("acme")
    globex = oneauth_app.org("globex")

    as_admin = admin.sign_in(org="acme").authorization
    made = api.post(
        f"/orgs/{acme.id}/orders", json={"item": "anvil", "quantity": 2}, headers=as_admin
    )
    assert made.status_code == 201, made.text

    as_member = member.sign_in(org="acme").authorization
    listed = api.get(f"/orgs/{acme.id}/orders", headers=as_member)
    assert [o["item"] for o in listed.json()["orders"]] == ["anvil"]
    refused = api.post(
        f"/orgs/{acme.id}/orders", json={"item": "x", "quantity": 1}, headers=as_member
    )
    assert refused.status_code == 403  # a member, not an admin, of acme

    # An admin of globex holding a globex token cannot use it on acme's URLs.
    as_globex_admin = member.sign_in(org="globex").authorization
    assert api.get(f"/orgs/{acme.id}/orders", headers=as_globex_admin).status_code == 403
    assert api.get(f"/orgs/{globex.id}/orders", headers=as_globex_admin).json()["orders"] == []


def test_reports_take_a_machine_token_with_the_scope(
    api: TestClient, oneauth_app: OneauthApp
) -> None:
    batch = oneauth_app.create_client(
        "reporting",
        confidential=True,
        grant_types=["client_credentials"],
        scopes=["reports:read"],
    )
    token = oneauth_app.client_token(batch)
    assert api.get("/reports", headers=token.authorization).status_code == 200
    assert api.get("/invoices", headers=token.authorization).status_code == 403


def test_the_web_and_public_client_fixtures_sign_in(
    api: TestClient,
    oneauth_app: OneauthApp,
    oneauth_client: Client,
    oneauth_public_client: Client,
    oneauth_user: Callable[..., User],
) -> None:
    ada = oneauth_user()
    web = oneauth_app.sign_in(ada, client=oneauth_client, scope="openid offline_access")
    assert web.claims["client_id"] == oneauth_client.client_id
    refreshed = oneauth_app.refresh(web, client=oneauth_client)
    assert api.get("/me", headers=refreshed.authorization).json()["sub"] == ada.id
    cli = ada.sign_in(client=oneauth_public_client)
    assert cli.claims["client_id"] == oneauth_public_client.client_id
