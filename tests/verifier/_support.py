"""Shared helpers for the verifier tests (fixtures live in conftest.py)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from oneauth.verifier import AccessTokenClaims, VerificationError, Verifier
from oneauth.verifier.testing import TokenMinter

from ._keyserver import KeyServer

AUDIENCE = "orders-api"

_E = TypeVar("_E", bound=VerificationError)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def json_b64(obj: Any) -> str:
    return b64(json.dumps(obj, separators=(",", ":")).encode())


def header_of(token: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(unb64(token.split(".")[0]))
    return obj


def claims_of(token: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(unb64(token.split(".")[1]))
    return obj


@dataclass
class LiveIssuer:
    """One oneauth app as the key server publishes it, plus its token minter."""

    server: KeyServer
    app_id: str
    minter: TokenMinter

    @property
    def issuer(self) -> str:
        return self.minter.issuer

    def publish(self) -> None:
        self.server.publish(self.app_id, self.minter.jwks)

    def count(self, kind: str = "jwks") -> int:
        return self.server.count(self.app_id, kind)

    def verifier(self, **kwargs: Any) -> Verifier:
        kwargs.setdefault("clock", self.minter.clock)
        return Verifier(self.issuer, AUDIENCE, self.app_id, **kwargs)


async def run(verifier: Verifier, token: str, mode: str) -> AccessTokenClaims:
    if mode == "sync":
        return verifier.verify(token)
    return await verifier.averify(token)


async def rejected(verifier: Verifier, token: str, mode: str, error: type[_E], check: str) -> _E:
    """Assert the exact error class and check name, and that the token is not echoed."""
    with pytest.raises(VerificationError) as info:
        await run(verifier, token, mode)
    exc = info.value
    assert type(exc) is error, f"expected {error.__name__}, got {type(exc).__name__}: {exc}"
    assert exc.check == check
    for part in token.split("."):
        if len(part) > 8:
            assert part not in str(exc)
            assert part not in repr(exc)
    return exc
