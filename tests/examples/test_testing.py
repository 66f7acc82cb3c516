"""``oneauth.testing`` itself: the throwaway service, its apps, users and tokens (issue 18,
item 2), each checked against the live service (discovery, JWKS, the verifier)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest

from oneauth.testing import Oneauth, OneauthApp, OneauthError, SignInFailed, start_oneauth
from oneauth.verifier import VerificationError, Verifier


def test_the_service_answers_discovery_and_tokens_verify(shop: OneauthApp) -> None:
    doc = httpx.get(shop.discovery_url).json()
    assert doc["issuer"] == shop.issuer
    assert doc["token_endpoint"] == shop.token_endpoint
    assert shop.issuer.startswith("http://127.0.0.1:")

    ada = shop.create_user()
    tokens = ada.sign_in(scope="openid email offline_access")
    claims = Verifier(issuer=shop.issuer, audience=shop.audience, app_id=shop.app_id).verify(
        tokens.access_token
    )
    assert claims.sub == ada.id
    assert tokens.id_claims["email"] == ada.email
    again = shop.refresh(tokens)
    assert shop.verifier().verify(again.access_token).sub == ada.id


def test_roles_permissions_and_orgs_reach_the_token(shop: OneauthApp) -> None:
    shop.create_role("accounts", permissions=["invoice:read", "invoice:write"])
    bea = shop.create_user(roles=["accounts", "support"], orgs={"acme": ["admin"]})
    plain = bea.sign_in(scope="openid permissions")
    assert plain.claims["roles"] == ["accounts", "support"]
    assert set(plain.claims["permissions"]) == {"invoice:read", "invoice:write"}
    assert "org_id" not in plain.claims

    in_acme = bea.sign_in(org="acme")
    claims = shop.verifier().verify(in_acme.access_token)
    assert claims.org_slug == "acme"
    assert claims.has_org_role("admin")
    acme = shop.org("acme")
    assert claims.org_id == acme.id
    assert shop.sign_in(bea, org=acme.id).claims["org_id"] == acme.id

    # A user who is not a member gets no token for the org.
    outsider = shop.create_user()
    with pytest.raises(OneauthError, match="access_denied"):
        outsider.sign_in(org="acme")


def test_clients_confidential_public_and_machine(shop: OneauthApp) -> None:
    web = shop.create_client("web", confidential=True, redirect_uris=["https://web.test/cb"])
    assert web.client_secret is not None
    user = shop.create_user()
    assert user.sign_in(client=web).claims["client_id"] == web.client_id

    third = shop.create_client("third party", first_party=False)
    with pytest.raises(OneauthError, match="access_denied"):
        user.sign_in(client=third, consent=False)
    assert user.sign_in(client=third).claims["client_id"] == third.client_id

    machine = shop.create_client(
        "batch", confidential=True, grant_types=["client_credentials"], scopes=["orders:read"]
    )
    token = shop.client_token(machine, scope="orders:read")
    claims = shop.verifier().verify(token.access_token)
    assert claims.is_client_token
    assert claims.scopes == frozenset({"orders:read"})


def test_a_wrong_password_fails_the_sign_in_with_the_pages_message(shop: OneauthApp) -> None:
    user = shop.create_user()
    wrong = type(user)(user.id, user.email, "not-" + user.password, shop)
    with pytest.raises(SignInFailed, match=r"400 at .*password is not right"):
        wrong.sign_in()


def test_apps_are_apart(shop: OneauthApp, other_app: OneauthApp) -> None:
    """Cross-app: app B neither knows app A's user, nor takes A's client or admin token."""
    a, b = shop, other_app
    assert a.issuer != b.issuer
    ada = a.create_user()
    with pytest.raises(SignInFailed):
        b.sign_in(ada)  # B's pages do not know A's user
    a_client = a.sign_in_client()
    with pytest.raises(SignInFailed):
        b.sign_in(b.create_user(), client=a_client)  # A's client is unknown at B
    denied = httpx.get(
        f"{b.issuer}/admin/v1/users", headers={"Authorization": f"Bearer {a.admin_token()}"}
    )
    assert denied.status_code == 401
    # A's token does not verify as B's.
    token = ada.sign_in().access_token
    with pytest.raises(VerificationError):
        b.verifier().verify(token)


def test_the_database_is_removed_afterwards_on_a_shared_server(pg_admin_dsn: str) -> None:
    with start_oneauth(admin_dsn=pg_admin_dsn) as server:
        database = server.database.database
        app = server.app("one")
        assert app.create_user().sign_in().access_token
        base = server.base_url
    with psycopg.connect(pg_admin_dsn) as conn:
        left = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        assert left.fetchone() is None
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/healthz", timeout=2)


def test_threads_signing_in_at_once_share_one_client_and_token(
    live_oneauth: Oneauth, other_app: OneauthApp
) -> None:
    """A test that signs users in from several threads at once (the helpers are sync)
    gets one sign-in client and one admin token, not one per thread."""
    fresh = OneauthApp(live_oneauth, other_app.app_id, other_app.admin_client)
    users = [fresh.create_user() for _ in range(4)]
    before = fresh.admin("GET", "/clients?limit=200")["items"]
    with ThreadPoolExecutor(4) as pool:
        tokens = list(pool.map(lambda u: u.sign_in(), users))
    assert [t.claims["sub"] for t in tokens] == [u.id for u in users]
    assert len({t.claims["client_id"] for t in tokens}) == 1
    after = fresh.admin("GET", "/clients?limit=200")["items"]
    assert len(after) == len(before) + 1
