"""Inputs of the console's pages (queries and forms), for the contract and OpenAPI.

Every member is optional and bounded: a page reads its query leniently (a value
the model refuses is left out, :func:`oneauth.http.contract.lenient`), so a
tampered URL gets the page without that filter, never a 5xx.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

Short = Annotated[str, msgspec.Meta(max_length=200)]
Cursor = Annotated[str, msgspec.Meta(max_length=2000)]
Token = Annotated[str, msgspec.Meta(max_length=200)]


class LoginQuery(msgspec.Struct, kw_only=True):
    next: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


class CallbackQuery(msgspec.Struct, kw_only=True):
    code: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    state: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    error: Short | None = None
    error_description: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    iss: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


class PickerQuery(msgspec.Struct, kw_only=True):
    q: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    after: Annotated[str, msgspec.Meta(max_length=40)] | None = None


class UsersQuery(msgspec.Struct, kw_only=True):
    email: Annotated[str, msgspec.Meta(max_length=320)] | None = None
    status: Annotated[str, msgspec.Meta(max_length=20)] | None = None
    cursor: Cursor | None = None


class CursorQuery(msgspec.Struct, kw_only=True):
    cursor: Cursor | None = None


class AuditQuery(msgspec.Struct, kw_only=True):
    event: Short | None = None
    actor: Short | None = None
    target: Short | None = None
    outcome: Annotated[str, msgspec.Meta(max_length=20)] | None = None
    # datetime-local or RFC 3339 text; passed on to the API, which validates it
    from_: Annotated[str, msgspec.Meta(max_length=40)] | None = msgspec.field(
        default=None, name="from"
    )
    to: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    cursor: Cursor | None = None


class SettingsQuery(msgspec.Struct, kw_only=True):
    # the branding preview: colours and logo shown before they are saved
    preview_color: Annotated[str, msgspec.Meta(max_length=7)] | None = None
    preview_logo_url: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


class PreviewCssQuery(msgspec.Struct, kw_only=True):
    color: Annotated[str, msgspec.Meta(max_length=6)] | None = None
    text: Annotated[str, msgspec.Meta(max_length=6)] | None = None


class ActionForm(msgspec.Struct, kw_only=True):
    """A button of a console page: only the CSRF token."""

    csrf: Token = ""


class ClientForm(msgspec.Struct, kw_only=True):
    csrf: Token = ""
    name: Annotated[str, msgspec.Meta(max_length=100)] = ""
    kind: Annotated[str, msgspec.Meta(max_length=20)] = "confidential"
    grant_types: Annotated[str, msgspec.Meta(max_length=200)] = ""
    redirect_uris: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    scopes: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    idempotency_key: Annotated[str, msgspec.Meta(max_length=100)] = ""


class KeyRotateForm(msgspec.Struct, kw_only=True):
    csrf: Token = ""
    # checkboxes: "on" when ticked (the API's force / emergency rotations)
    force: Annotated[str, msgspec.Meta(max_length=10)] = ""
    emergency: Annotated[str, msgspec.Meta(max_length=10)] = ""


class SettingsForm(msgspec.Struct, kw_only=True):
    csrf: Token = ""
    etag: Annotated[str, msgspec.Meta(max_length=200)] = ""
    primary_color: Annotated[str, msgspec.Meta(max_length=7)] = ""
    logo_url: Annotated[str, msgspec.Meta(max_length=2000)] = ""
