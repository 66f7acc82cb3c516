"""The upstream's tokens of an identity, kept only where the provider says so
(``keep_tokens``; issue 14, F10).

Off (the default): nothing of the upstream's token response is stored; the
tokens are used once (code exchange, userinfo) and dropped. On: the access
token, refresh token, expiry and scope are sealed (AES-256-GCM, the service's
master key) with the app, the provider and the upstream identity (issuer,
subject) in the associated data, so a sealed value moved to another identity's
row, another provider or another app's schema does not open. Each sign-in
through the identity replaces them; unlinking (or deleting the provider, or the
user) deletes the row and them with it; switching the option off forgets them
(:func:`oneauth.federation.providers.update`).

The service reads them with :func:`of_user` (e.g. to call the upstream's API on
the user's behalf); nothing serves them to a client.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg

from oneauth.secretbox import SecretBox, SecretBoxError

__all__ = ["KEPT", "context", "of_user", "open_sealed", "seal"]

# What is kept of a token response (RFC 6749 section 5.1); never the ID token.
KEPT = ("access_token", "refresh_token", "expires_at", "expires_in", "scope", "token_type")


def context(app_id: str, provider_id: str, issuer: str, subject: str) -> str:
    """The associated data: the app, the provider and the upstream identity."""
    return f"app:{app_id}/idp-tokens/{provider_id}/{issuer}/{subject}"


def seal(
    box: SecretBox,
    app_id: str,
    provider_id: str,
    issuer: str,
    subject: str,
    tokens: Mapping[str, Any],
) -> str | None:
    kept = {k: tokens[k] for k in KEPT if tokens.get(k) is not None}
    if not kept.get("access_token"):
        return None
    data = json.dumps(kept, default=str).encode()
    return box.seal(data, context=context(app_id, provider_id, issuer, subject))


def open_sealed(
    box: SecretBox, app_id: str, provider_id: str, issuer: str, subject: str, sealed: str
) -> dict[str, Any]:
    """Raises SecretBoxError where the value was sealed for another app, provider
    or identity (or tampered with)."""
    raw = box.open(sealed, context=context(app_id, provider_id, issuer, subject))
    found = json.loads(raw)
    if not isinstance(found, dict):
        raise SecretBoxError("the sealed tokens are not an object")
    return found


async def of_user(
    conn: asyncpg.Connection,
    box: SecretBox,
    app_id: str,
    user_id: uuid.UUID,
    provider_id: str,
) -> dict[str, Any] | None:
    """The kept tokens of ``user_id``'s identity at ``provider_id`` in this app
    (the connection is the app's, through the router), or None: none kept, no
    such identity, or a value that does not open for this identity (SecretBoxError)."""
    from oneauth.federation import identities

    row = await identities.sealed_tokens(conn, user_id, provider_id)
    if row is None:
        return None
    issuer, subject, sealed = row
    try:
        return open_sealed(box, app_id, provider_id, issuer, subject, sealed)
    except SecretBoxError:
        return None
