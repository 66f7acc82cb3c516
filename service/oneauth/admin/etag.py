"""ETag / If-Match on admin updates of settings (issue 15; RFC 9110 sections 8.8.3, 13.1.1).

A GET of settings answers ``ETag: "<sha256 of the canonical settings>"``; the
PATCH must send it back in ``If-Match``: without it 428 ``precondition_required``
(RFC 6585), with a stale one 412 ``precondition_failed``, so two operators
editing at once cannot silently overwrite each other (lost update). The check
and the write happen in one transaction (the caller reads the current value
``FOR UPDATE`` or from a row it locks), so the comparison cannot go stale
between the two. ``If-Match: *`` is refused like a missing header: it would
skip exactly the check this is for.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from starlette.requests import Request

from oneauth.errors import ApiError

__all__ = [
    "PreconditionFailed",
    "PreconditionRequired",
    "canonical",
    "etag_of",
    "require_match",
]


class PreconditionRequired(ApiError):
    code, status, title = (
        "precondition_required",
        428,
        "Send If-Match with the ETag of the current resource",
    )


class PreconditionFailed(ApiError):
    code, status, title = (
        "precondition_failed",
        412,
        "The resource changed since it was read (its ETag no longer matches)",
    )


def canonical(value: Any) -> bytes:
    """A fixed serialisation: sorted keys, no spaces, UTF-8."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def etag_of(value: Any) -> str:
    """The strong ETag (quoted) of a JSON-serialisable value."""
    return '"' + hashlib.sha256(canonical(value)).hexdigest() + '"'


def require_match(request: Request, current: str) -> None:
    """Raise unless If-Match names ``current`` (the ETag of the value about to change)."""
    header = request.headers.get("if-match", "").strip()
    if not header or header == "*":
        raise PreconditionRequired(
            "this update needs If-Match with the ETag a GET answered (If-Match: * is not enough)",
            headers={"etag": current},
        )
    offered = {tag.strip() for tag in header.split(",")}
    if current not in offered:  # strong comparison: a weak W/"..." never matches
        raise PreconditionFailed(
            "the resource changed since that ETag; GET it again and retry",
            headers={"etag": current},
        )
