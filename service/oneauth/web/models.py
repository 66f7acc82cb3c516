"""Query and form models of the hosted pages of issue 12 (registration, account).

Hosted pages answer bad input with a page, not problem details: a form that does
not fit its model is shown again with a message (422), never a 5xx.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

# A sealed authorization request (secretbox: "v1.<key id>.<nonce>.<ciphertext>", base64url
# parts); the pages open at most 16,384 characters of it.
Sealed = Annotated[str, msgspec.Meta(max_length=16_384, pattern=r"^[A-Za-z0-9_.-]*$")]
# In a query string it must also fit a request line (uvicorn/h11: 16 KiB with the headers).
SealedQuery = Annotated[str, msgspec.Meta(max_length=8192, pattern=r"^[A-Za-z0-9_.-]*$")]
Csrf = Annotated[str, msgspec.Meta(max_length=128)]


class FlowQuery(msgspec.Struct, kw_only=True):
    """GET /register: the sealed authorization request the page continues."""

    flow: SealedQuery | None = None


class RegisterForm(msgspec.Struct, kw_only=True):
    """POST /register."""

    csrf: Csrf | None = None
    flow: Sealed | None = None
    email: Annotated[str, msgspec.Meta(max_length=320)] | None = None
    password: Annotated[str, msgspec.Meta(max_length=1024)] | None = None


class AccountForm(msgspec.Struct, kw_only=True):
    """POST /account/...: every change on the account page carries the CSRF token."""

    csrf: Csrf | None = None
    name: Annotated[str, msgspec.Meta(max_length=100)] | None = None
