"""One account per mailbox: invisible characters and lists refused, IDN domains folded (B5).

Issue 10 item 6: ``vic\\u00adtim@example.com`` (a soft hyphen) looked like the
victim's address and was a second account; ``a@x.com,b@y.com`` was accepted
as one address; ``ü.example`` and ``xn--tda.example`` were two accounts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from apiclient import PASSWORD, login, signup
from oneauth.apps.models import AppRecord
from oneauth.db import ops
from oneauth.identity.users import InvalidEmail, normalize_email
from oneauth.services import Services
from oneauth.settings import Settings

INVISIBLE = [
    "vic\u00adtim@example.com",  # soft hyphen
    "vic\u200btim@example.com",  # zero-width space
    "vic\u200ctim@example.com",  # zero-width non-joiner
    "vic\u200dtim@example.com",  # zero-width joiner
    "victim\u2060@example.com",  # word joiner
    "\ufeffvictim@example.com",  # BOM
    "victim@exam\u00adple.com",  # soft hyphen in the domain (UTS-46 would drop it)
    "victim@exam\u200bple.com",
    "\u202evictim@example.com",  # right-to-left override
    "victim\u202a@example.com",  # left-to-right embedding
    "victim\u2066@example.com",  # left-to-right isolate
    "victim\u2069@example.com",  # pop directional isolate
    "vic\u034ftim@example.com",  # combining grapheme joiner (default ignorable, not Cf)
    "vic\u3164tim@example.com",  # Hangul filler
    "victim\ufe0f@example.com",  # variation selector
    "vic\x07tim@example.com",  # control character
    "vic\ttim@example.com",
    "vic tim@example.com",  # whitespace inside
    "vic\u00a0tim@example.com",  # no-break space
]
LISTS = [
    "victim@example.com,attacker@evil.example",
    "victim@example.com;attacker@evil.example",
    '"victim@example.com" <attacker@evil.example>',
    "victim <victim@example.com>",
    "victim@example.com attacker@evil.example",
    "victim@attacker@example.com",
    "victim\uff20attacker@example.com",  # fullwidth @: NFKC makes it a second @
    "victim@example.com\uff0cb@y.example",  # fullwidth comma
    "(comment)victim@example.com",
    "victim@[127.0.0.1]",
]


@pytest.mark.parametrize("email", INVISIBLE + LISTS)
def test_invisible_characters_and_lists_are_refused(email: str) -> None:
    with pytest.raises(InvalidEmail):
        normalize_email(email)


@pytest.mark.parametrize(
    ("spellings", "key"),
    [
        (["ada@ü.example", "ada@xn--tda.example", "ada@XN--TDA.Example", "ada@u\u0308.example"],
         "ada@ü.example"),
        (["ada@bücher.example", "ada@xn--bcher-kva.example", "ada@BÜCHER.example"],
         "ada@bücher.example"),
        (["Ada@Example.COM", "ada@example.com", " ada@example.com ", "ada@ＥＸＡＭＰＬＥ.com"],
         "ada@example.com"),
    ],
)  # fmt: skip
def test_one_key_per_mailbox(spellings: list[str], key: str) -> None:
    assert {normalize_email(s) for s in spellings} == {key}


@pytest.mark.parametrize("email", ["ada@xn--zzzz.example", "ada@-x.example", "ada@x_y.example"])
def test_invalid_domains_are_refused(email: str) -> None:
    with pytest.raises(InvalidEmail):
        normalize_email(email)


def _user_count(settings: Settings, app: AppRecord) -> int:
    with (
        ops.connect(settings.database_url) as conn,
        conn.transaction(),
        ops.app_context(conn, app.names),
    ):
        row = conn.execute("SELECT count(*) FROM users").fetchone()
    assert row is not None
    return int(row[0])


def _without_request_id(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "request_id"}


@pytest.fixture(scope="module")
def app(provision: Callable[..., AppRecord]) -> AppRecord:
    return provision()


async def test_lookalike_signup_is_422_and_makes_no_second_account(
    client: httpx.AsyncClient, app: AppRecord, settings: Settings
) -> None:
    await signup(client, app.app_id, "victim@example.com")
    before = _user_count(settings, app)
    for email in INVISIBLE + LISTS:
        response = await client.post(
            f"/apps/{app.app_id}/v1/signup", json={"email": email, "password": PASSWORD}
        )
        assert response.status_code == 422, (email, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert (body["code"], body["field"]) == ("validation_failed", "email")
        # The same answer as for a lookalike of an address nobody registered.
        unused = email.replace("victim", "nobody")
        other = await client.post(
            f"/apps/{app.app_id}/v1/signup", json={"email": unused, "password": PASSWORD}
        )
        assert _without_request_id(other.json()) == _without_request_id(body)
        # And it does not sign anyone in either.
        assert (await login(client, app.app_id, email)).status_code == 401
    assert _user_count(settings, app) == before


@pytest.mark.parametrize(
    ("signup_as", "login_as"),
    [
        ("ida@xn--tda.example", "ida@ü.example"),
        ("ivo@bücher.example", "ivo@xn--bcher-kva.example"),
        ("Ian@ＥＸＡＭＰＬＥ.org", "ian@example.org"),
    ],
)
async def test_idn_spellings_are_one_account(
    client: httpx.AsyncClient, app: AppRecord, settings: Settings, signup_as: str, login_as: str
) -> None:
    created = await signup(client, app.app_id, signup_as)
    before = _user_count(settings, app)
    response = await login(client, app.app_id, login_as)
    assert response.status_code == 200, response.text
    again = await client.post(
        f"/apps/{app.app_id}/v1/signup", json={"email": login_as, "password": PASSWORD}
    )
    assert again.status_code == 409, again.text  # email_taken: the same account
    assert _user_count(settings, app) == before
    me = await client.get(
        f"/apps/{app.app_id}/v1/me",
        headers={"authorization": f"Bearer {response.json()['access_token']}"},
    )
    assert me.json()["sub"] == created["user"]["id"]


async def test_folded_spellings_stay_inside_their_app(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    first, second = provision(), provision()
    await signup(client, first.app_id, "una@xn--tda.example")
    assert (await login(client, second.app_id, "una@ü.example")).status_code == 401
    await signup(client, second.app_id, "una@ü.example")  # a separate account: 201
    assert (await login(client, second.app_id, "una@xn--tda.example")).status_code == 200


@pytest.mark.parametrize("path", ["/v1/password/reset/request", "/v1/email/verify/request"])
async def test_mail_requests_refuse_lookalikes_alike_for_every_address(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], path: str
) -> None:
    app = provision()
    await signup(client, app.app_id, "mailee@example.com")
    bodies = []
    for email in ("mai\u200blee@example.com", "nob\u200body@example.com"):
        response = await client.post(f"/apps/{app.app_id}{path}", json={"email": email})
        assert response.status_code == 422, response.text
        assert response.json()["field"] == "email"
        bodies.append(_without_request_id(response.json()))
    assert bodies[0] == bodies[1]


async def test_a_row_stored_under_older_rules_still_works(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], services: Services
) -> None:
    """A stored address that today's rules refuse (written before them) must not
    break the flows that key throttles and mail on it: no 5xx."""
    app = provision()
    tokens = await signup(client, app.app_id, "legacy@example.com")
    async with services.router.app(app.app_id) as conn:
        moved = await conn.execute(
            "UPDATE users SET email = $1 WHERE email_normalized = $2",
            "leg\u200bacy@example.com",
            "legacy@example.com",
        )
    assert moved == "UPDATE 1"
    auth = {"authorization": f"Bearer {tokens['access_token']}"}
    changed = await client.post(
        f"/apps/{app.app_id}/v1/password",
        json={"current_password": PASSWORD, "new_password": PASSWORD + " again"},
        headers=auth,
    )
    assert changed.status_code == 204, changed.text
    again = await login(client, app.app_id, "legacy@example.com", PASSWORD + " again")
    assert again.status_code == 200, again.text
    asked = await client.post(
        f"/apps/{app.app_id}/v1/email/change",
        json={"new_email": "modern@example.com", "password": PASSWORD + " again"},
        headers={"authorization": f"Bearer {again.json()['access_token']}"},
    )
    assert asked.status_code == 202, asked.text
