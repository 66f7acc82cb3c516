"""Decode + validate the hot routes' inputs three ways; ns per request (issue 11).

    python -m ops.bench.validation [--rounds N]

Same bytes for each way:

* ``hand``: what the views did before the contract: ``untrusted.loads`` then
  ``require_str`` (JSON), ``parse_form`` then ``dict.get`` checks (forms);
* ``msgspec``: the bounded loader (or ``parse_form``), then ``msgspec.convert``
  into a Struct carrying the limits (what ``oneauth.http.contract`` does);
  ``msgspec-raw`` decodes the bytes straight into the Struct (no bounded loader:
  shown for scale only, it does not refuse depth/NUL/surrogates the same way);
* ``pydantic``: the bounded loader (or ``parse_form``), then ``model_validate``;
* ``contract``: what the endpoints run: ``parse_form`` then
  ``oneauth.http.contract.convert`` into the declared model
  (``oneauth.oauth.models.TokenForm`` / ``TokenForm7009``).

The ``... response`` cases encode a success body: ``dict`` is ``json.dumps`` of
the hand-built dict (before the views encoded their response models), ``model``
builds the declared Struct and encodes it (``oneauth.http.contract.json_response``).

Needs the ``bench`` extra (pydantic). Not run by the test suite.
"""

from __future__ import annotations

import argparse
import json
import timeit
from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec
import pydantic

from oneauth.api.models import Me, TokenSet
from oneauth.errors import ValidationFailed
from oneauth.http.contract import convert
from oneauth.http.requests import parse_form
from oneauth.oauth.models import Introspection, TokenForm, TokenForm7009
from oneauth.untrusted import loads

Short = Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
Email = Annotated[str, msgspec.Meta(min_length=1, max_length=320)]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
PShort = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=4096)]
PEmail = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=320)]
PPassword = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=1024)]


class MRefresh(msgspec.Struct, forbid_unknown_fields=False):
    grant_type: Literal["refresh_token"]
    refresh_token: Short
    client_id: Short | None = None
    scope: Short | None = None


class MClientCredentials(msgspec.Struct):
    grant_type: Literal["client_credentials"]
    scope: Short | None = None
    client_id: Short | None = None
    client_secret: Short | None = None


class MIntrospect(msgspec.Struct):
    token: Short
    token_type_hint: Short | None = None
    client_id: Short | None = None
    client_secret: Short | None = None


class MLogin(msgspec.Struct):
    email: Email
    password: Password


class MBearer(msgspec.Struct):
    authorization: Annotated[str, msgspec.Meta(pattern=r"^[Bb][Ee][Aa][Rr][Ee][Rr] \S+$")]


class PRefresh(pydantic.BaseModel):
    grant_type: Literal["refresh_token"]
    refresh_token: PShort
    client_id: PShort | None = None
    scope: PShort | None = None


class PClientCredentials(pydantic.BaseModel):
    grant_type: Literal["client_credentials"]
    scope: PShort | None = None
    client_id: PShort | None = None
    client_secret: PShort | None = None


class PIntrospect(pydantic.BaseModel):
    token: PShort
    token_type_hint: PShort | None = None
    client_id: PShort | None = None
    client_secret: PShort | None = None


class PLogin(pydantic.BaseModel):
    email: PEmail
    password: PPassword


class PBearer(pydantic.BaseModel):
    authorization: Annotated[
        str, pydantic.StringConstraints(pattern=r"^[Bb][Ee][Aa][Rr][Ee][Rr] \S+$")
    ]


REFRESH = b"grant_type=refresh_token&refresh_token=rt_" + b"x" * 43 + b"&client_id=cl_shop_web"
CLIENT_CREDENTIALS = (
    b"grant_type=client_credentials&scope=orders.read+orders.write"
    b"&client_id=cl_batch&client_secret=" + b"s" * 43
)
INTROSPECT = b"token=eyJ" + b"a" * 600 + b"&token_type_hint=access_token&client_id=cl_rs"
LOGIN = b'{"email": "alice@example.com", "password": "correct horse battery staple"}'
BEARER = "Bearer eyJ" + "a" * 600
ACCESS = "eyJ" + "a" * 300 + ".eyJ" + "b" * 300 + "." + "c" * 86
TOKENS: dict[str, Any] = {
    "access_token": ACCESS,
    "token_type": "Bearer",
    "expires_in": 900,
    "scope": "openid email offline_access",
    "refresh_token": "ort_" + "r" * 43,
}
ACTIVE: dict[str, Any] = {
    "active": True,
    "token_type": "Bearer",
    "scope": "openid email",
    "client_id": "cl_shop_web",
    "sub": "9b2f7f3e-8a3c-4c1e-9a43-0e5f3f1f2a11",
    "exp": 1_900_000_000,
    "iat": 1_899_999_100,
    "iss": "https://auth.example.com/apps/shop",
    "aud": "https://auth.example.com/apps/shop",
    "app_id": "shop",
    "sid": "0c4b8b7e-5a55-4bd3-8d9e-5a1f0d5e7c22",
}
ME: dict[str, Any] = {
    "sub": "9b2f7f3e-8a3c-4c1e-9a43-0e5f3f1f2a11",
    "app_id": "shop",
    "email": "alice@example.com",
    "email_verified": True,
    "created_at": "2026-12-01T10:00:00+00:00",
    "updated_at": "2026-12-01T10:00:00+00:00",
    "scope": "email openid",
    "sid": "0c4b8b7e-5a55-4bd3-8d9e-5a1f0d5e7c22",
}


def _dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def require_str(data: dict[str, Any], field: str, *, max_length: int = 1024) -> str:
    """The hand validation the views used before the contract (retired from
    ``oneauth.http.requests``), kept here as the baseline."""
    value = data.get(field)
    if not isinstance(value, str) or not value:
        raise ValidationFailed(
            f"{field} is required and must be a non-empty string", extra={"field": field}
        )
    if len(value) > max_length:
        raise ValidationFailed(
            f"{field} is longer than {max_length} characters", extra={"field": field}
        )
    return value


def _hand_form(raw: bytes, required: tuple[str, ...]) -> dict[str, str]:
    form = parse_form(raw)
    for name in required:
        if not form.get(name):
            raise ValidationFailed(f"{name} is required")
    return form


def _hand_bearer(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _hand_login(raw: bytes) -> tuple[str, str]:
    data = loads(raw)
    assert isinstance(data, dict)
    return require_str(data, "email", max_length=320), require_str(data, "password")


CASES: dict[str, dict[str, Callable[[], Any]]] = {
    "token refresh_token (form)": {
        "hand": lambda: _hand_form(REFRESH, ("grant_type", "refresh_token")),
        "msgspec": lambda: msgspec.convert(parse_form(REFRESH), MRefresh),
        "pydantic": lambda: PRefresh.model_validate(parse_form(REFRESH)),
        "contract": lambda: convert(parse_form(REFRESH), TokenForm),
    },
    "token client_credentials (form)": {
        "hand": lambda: _hand_form(CLIENT_CREDENTIALS, ("grant_type",)),
        "msgspec": lambda: msgspec.convert(parse_form(CLIENT_CREDENTIALS), MClientCredentials),
        "pydantic": lambda: PClientCredentials.model_validate(parse_form(CLIENT_CREDENTIALS)),
        "contract": lambda: convert(parse_form(CLIENT_CREDENTIALS), TokenForm),
    },
    "introspect (form)": {
        "hand": lambda: _hand_form(INTROSPECT, ("token",)),
        "msgspec": lambda: msgspec.convert(parse_form(INTROSPECT), MIntrospect),
        "pydantic": lambda: PIntrospect.model_validate(parse_form(INTROSPECT)),
        "contract": lambda: convert(parse_form(INTROSPECT), TokenForm7009),
    },
    "/v1/login (JSON)": {
        "hand": lambda: _hand_login(LOGIN),
        "msgspec": lambda: msgspec.convert(loads(LOGIN), MLogin),
        "msgspec-raw": lambda: msgspec.json.decode(LOGIN, type=MLogin),
        "pydantic": lambda: PLogin.model_validate(loads(LOGIN)),
        "pydantic-raw": lambda: PLogin.model_validate_json(LOGIN),
    },
    "/v1/me (bearer header)": {
        "hand": lambda: _hand_bearer(BEARER),
        "msgspec": lambda: msgspec.convert({"authorization": BEARER}, MBearer),
        "pydantic": lambda: PBearer.model_validate({"authorization": BEARER}),
    },
    "token response": {
        "dict": lambda: _dumps(dict(TOKENS)),
        "model": lambda: msgspec.json.encode(TokenSet(**TOKENS)),
    },
    "introspect response": {
        "dict": lambda: _dumps(dict(ACTIVE)),
        "model": lambda: msgspec.json.encode(Introspection(**ACTIVE)),
    },
    "/v1/me response": {
        "dict": lambda: _dumps(dict(ME)),
        "model": lambda: msgspec.json.encode(Me(**ME)),
    },
}


def measure(rounds: int) -> dict[str, dict[str, float]]:
    """ns per call, best of five runs of ``rounds`` calls each."""
    results: dict[str, dict[str, float]] = {}
    for case, ways in CASES.items():
        results[case] = {}
        for way, call in ways.items():
            call()  # fail loudly on a broken fixture before timing it
            best = min(timeit.repeat(call, number=rounds, repeat=5))
            results[case][way] = best / rounds * 1e9
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20_000)
    args = parser.parse_args(argv)
    print(f"msgspec {msgspec.__version__}, pydantic {pydantic.VERSION}; ns/op, best of 5")
    for case, ways in measure(args.rounds).items():
        figures = "  ".join(f"{way} {ns:,.0f}" for way, ns in ways.items())
        print(f"{case:34} {figures}")


if __name__ == "__main__":
    main()
