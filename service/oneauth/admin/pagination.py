"""Cursor (keyset) pagination for every admin list (issue 15).

Every list answers ``{"items": [...], "next_cursor": "<opaque>" | null}``; the
next page is ``?cursor=<next_cursor>`` with the same filters. Cursors are
base64url JSON of the last row's sort key (e.g. ``created_at`` and ``id``):
the query continues strictly after it (``WHERE (created_at, id) > ($1, $2)``
on an index), never with OFFSET, so a page costs the same at row 10 and at
row 10,000,000 and rows inserted meanwhile are neither skipped nor repeated.

A cursor is input like any other: one that does not decode, names other keys
than the list's, or holds a value of the wrong type is 422 ``validation_failed``
with ``field: cursor``, never a 500. It is not signed: any well-formed cursor
only moves the start of a list the caller may read anyway.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, TypeVar

import msgspec
from starlette.requests import Request

from oneauth.errors import ValidationFailed
from oneauth.http.contract import _explain

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_CURSOR",
    "MAX_LIMIT",
    "Limit",
    "decode_cursor",
    "encode_cursor",
    "next_cursor",
    "query",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_CURSOR = 1024
Limit = Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_CURSOR)]

Q = TypeVar("Q", bound=msgspec.Struct)
# A key's type: str, int, datetime (ISO 8601, timezone-aware) or uuid.UUID.
KeyType = type


def _bad(detail: str) -> ValidationFailed:
    return ValidationFailed(detail, extra={"field": "cursor"})


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if value is None or isinstance(value, (str, int)):
        return value
    raise TypeError(f"cannot put a {type(value).__name__} in a cursor")


def encode_cursor(values: Mapping[str, Any]) -> str:
    """The opaque cursor for ``values`` (the last row's sort key)."""
    data = {name: _plain(value) for name, value in values.items()}
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(
    raw: str | None, keys: Mapping[str, KeyType] | Sequence[str]
) -> dict[str, Any] | None:
    """The sort key a cursor holds, as typed values; None for no cursor (first page).

    ``keys``: the list's key names and their types (a plain sequence: all str).
    The cursor must hold exactly those keys; anything else is 422."""
    if raw is None or raw == "":
        return None
    types = dict(keys) if isinstance(keys, Mapping) else dict.fromkeys(keys, str)
    if len(raw) > MAX_CURSOR:
        raise _bad("cursor is too long")
    try:
        padded = raw + "=" * (-len(raw) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        raise _bad("cursor is not one this list answered") from None
    if not isinstance(data, dict) or set(data) != set(types):
        raise _bad("cursor is not one this list answered")
    out: dict[str, Any] = {}
    for name, kind in types.items():
        value = data[name]
        try:
            if kind is int:
                if type(value) is not int or not -(2**63) <= value < 2**63:
                    raise ValueError
                out[name] = value
            elif kind is datetime:
                if not isinstance(value, str):
                    raise ValueError
                when = datetime.fromisoformat(value)
                if when.tzinfo is None:
                    raise ValueError
                out[name] = when
            elif kind is uuid.UUID:
                if not isinstance(value, str):
                    raise ValueError
                out[name] = uuid.UUID(value)
            else:
                if not isinstance(value, str) or "\x00" in value:
                    raise ValueError
                out[name] = value
        except ValueError:
            raise _bad(f"cursor holds a bad {name}") from None
    return out


def next_cursor(rows: Sequence[Any], limit: int, *keys: str) -> str | None:
    """The cursor after ``rows`` when the query fetched ``limit + 1`` of them and
    got more than ``limit`` (there is a next page); the caller keeps ``rows[:limit]``."""
    if len(rows) <= limit:
        return None
    last = rows[limit - 1]
    return encode_cursor({key: last[key] for key in keys})


def query(request: Request, model: type[Q]) -> Q:
    """The query string as ``model`` (numbers from text; an empty value is absent; an
    unknown or repeated parameter is 422)."""
    values: dict[str, Any] = {}
    seen: set[str] = set()
    for name, value in request.query_params.multi_items():
        if name in seen:
            raise ValidationFailed(f"{name} is given twice", extra={"field": name})
        seen.add(name)
        if value != "":  # an empty form field (the console's search box): not given
            values[name] = value
    hints = model.__struct_fields__
    for name in seen:
        if name not in hints:
            raise ValidationFailed(f"unknown query parameter {name}", extra={"field": name})
    try:
        return msgspec.convert(values, model, strict=False)
    except msgspec.ValidationError as exc:
        field, detail = _explain(str(exc), values, model)  # worded like every other 422
        raise ValidationFailed(detail, extra={"field": field} if field else None) from None
