"""Issue 13, without a database: how the authorization request reads its org forms
(scope normalisation, refusals), the sealed request's org members (and requests sealed
before them), and what of an org's branding reaches the picker."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import pytest

from oneauth.oauth import organizations
from oneauth.oauth.authorize import AuthorizationRequest, AuthorizeError, _scope
from oneauth.oauth.clients import Client
from oneauth.secretbox import SecretBox

ORG = "org_" + "A" * 22


def client(*scopes: str) -> Client:
    return Client(
        client_id="c1",
        name="RP",
        kind="public",
        first_party=False,
        redirect_uris=("https://rp.example.com/cb",),
        post_logout_redirect_uris=(),
        grant_types=frozenset({"authorization_code"}),
        scopes=frozenset(scopes or ("openid", "email", "organization")),
        token_endpoint_auth_method="none",
        access_token_ttl=None,
        refresh_token_ttl=None,
        created_at=datetime.now(UTC),
        disabled=False,
    )


def fail(error: str, description: str) -> AuthorizeError:
    return AuthorizeError(error, description, redirect_uri="https://rp.example.com/cb", state=None)


@pytest.mark.parametrize(
    ("raw", "org_id", "expected"),
    [
        ("openid email", None, (("openid", "email"), None, False)),
        ("openid organization", None, (("openid", "organization"), None, True)),
        ("organization:acme openid", None, (("openid", "organization"), "acme", False)),
        # Repeated, or with the bare form beside it: one "organization" in the scope.
        (
            "openid organization organization:acme organization:acme",
            None,
            (("openid", "organization"), "acme", True),
        ),
        # organization_id alone puts the scope value in (and so needs its registration).
        ("openid", ORG, (("openid", "organization"), None, False)),
    ],
)
def test_scope_forms_become_one_organization_value(
    raw: str, org_id: str | None, expected: tuple[Any, ...]
) -> None:
    assert _scope(raw, org_id, client(), fail) == expected


@pytest.mark.parametrize(
    ("raw", "org_id", "scopes", "error"),
    [
        ("openid organization:acme organization:globex", None, (), "more than one organization"),
        ("openid organization:ACME", None, (), "not a valid slug"),
        ("openid organization:", None, (), "not a valid slug"),
        ("openid organization:-acme", None, (), "not a valid slug"),
        ("openid organization", None, ("openid",), "register the client with the organization"),
        ("openid", ORG, ("openid",), "register the client with the organization"),
        ("", None, (), "scope is required"),
    ],
)
def test_scope_refusals(raw: str, org_id: str | None, scopes: tuple[str, ...], error: str) -> None:
    with pytest.raises(AuthorizeError) as refused:
        _scope(raw, org_id, client(*scopes), fail)
    assert refused.value.error == "invalid_scope"
    assert error in refused.value.description


def request(**kwargs: Any) -> AuthorizationRequest:
    values: dict[str, Any] = {
        "client_id": "c1",
        "redirect_uri": "https://rp.example.com/cb",
        "scope": ("openid", "organization"),
        "state": "s",
        "nonce": None,
        "code_challenge": "x" * 43,
        "prompt": (),
        "fresh_after": None,
        "login_hint": None,
        "expires": int(time.time()) + 600,
    }
    values.update(kwargs)
    return AuthorizationRequest(**values)


def test_sealed_request_keeps_its_org_and_older_seals_still_open() -> None:
    box = SecretBox({"k1": bytes(32)}, "k1")
    picked = request(org_pick=True)
    assert picked.wants_org
    chosen = picked.for_org(ORG)
    assert (chosen.org_id, chosen.org_slug, chosen.org_pick) == (ORG, None, False)
    assert AuthorizationRequest.unseal(box, "shop", chosen.seal(box, "shop")) == chosen
    assert request(org_slug="acme").signed_in().org_slug == "acme"  # survives the sign-in
    # A request sealed before issue 13 has no org members: it opens, for no org.
    old = {k: v for k, v in asdict(request()).items() if not k.startswith("org_")}
    sealed = box.seal(json.dumps(old).encode(), context="app:shop/authorization-request")
    opened = AuthorizationRequest.unseal(box, "shop", sealed)
    assert opened is not None
    assert not opened.wants_org
    # Another app's seal does not open here.
    assert AuthorizationRequest.unseal(box, "forum", chosen.seal(box, "shop")) is None


def row(**kwargs: Any) -> dict[str, Any]:
    values = {
        "id": ORG,
        "slug": "acme",
        "name": "Acme",
        "status": "active",
        "mfa_required": False,
        "branding": "{}",
    }
    values.update(kwargs)
    return values


def test_only_validated_branding_reaches_the_picker() -> None:
    good = organizations._of(
        row(
            branding=json.dumps(
                {
                    "display_name": "ACME Widgets",
                    "logo_url": "https://cdn.example.com/a.png",
                    "primary_color": "#C0FFEE",
                }
            )
        )
    )
    assert (good.display_name, good.logo_url, good.color) == (
        "ACME Widgets",
        "https://cdn.example.com/a.png",
        "#c0ffee",
    )
    bad = organizations._of(
        row(
            status="suspended",
            branding=json.dumps(
                {
                    "display_name": "",
                    "logo_url": "javascript:alert(1)",
                    "primary_color": "red; background: url(x)",
                }
            ),
        )
    )
    assert (bad.display_name, bad.logo_url, bad.color, bad.active) == ("Acme", None, None, False)
    assert organizations._of(row(branding="[1]")).display_name == "Acme"


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("org_" + "a" * 16, True),
        ("org_" + "a" * 64, True),
        ("org_" + "a" * 15, False),
        ("org_" + "a" * 65, False),
        ("org_aaaaaaaaaaaaaaaa/x", False),
        ("ORG_aaaaaaaaaaaaaaaa", False),
    ],
)
def test_org_id_syntax_matches_the_schema(value: str, ok: bool) -> None:
    assert bool(organizations.ORG_ID.fullmatch(value)) is ok
