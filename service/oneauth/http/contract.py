"""One declaration per route: its inputs, its answers and its errors (issue 11).

A view is declared with :func:`operation`: its request model (a JSON body, a
form or a query, each a :class:`msgspec.Struct`), its response models per
status and the error statuses it can answer. The view decodes its input with
:func:`json_body` (or :func:`form_body`): the bytes go through the one bounded
loader (:mod:`oneauth.untrusted`: depth, NUL, lone surrogates, number range)
and then into the model, which carries the remaining limits (string lengths,
enums). A model mismatch is the API's 422 ``validation_failed`` problem naming
the ``field``, as the hand validation it replaces answered.

``/openapi.json`` (:mod:`oneauth.http.openapi`) is generated from these
declarations, so a route is documented and fuzzed (schemathesis) by construction.

msgspec was chosen by measurement (``python -m ops.bench.validation``; the figures
are in the README): converting an already bounded-decoded object costs less than
the ``require_str`` calls it replaces, pydantic v2 about four times more.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args, get_type_hints

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from oneauth.errors import ValidationFailed
from oneauth.http.requests import read_form, read_json

__all__ = [
    "Operation",
    "declared",
    "form_body",
    "json_body",
    "json_response",
    "lenient",
    "operation",
]

M = TypeVar("M", bound=msgspec.Struct)
View = Callable[[Request], Awaitable[Response]]
ErrorFormat = Literal["problem", "oauth", "html"]


@dataclass(frozen=True)
class Operation:
    """What one route (one method) accepts and answers; read by the OpenAPI generator."""

    summary: str
    # A route serving GET and POST (authorize, logout, the hosted pages) reads its
    # query on GET and its body on POST: the document says so per method.
    body: type[msgspec.Struct] | None = None  # application/json, not on GET
    form: type[msgspec.Struct] | None = None  # application/x-www-form-urlencoded, not on GET
    query: type[msgspec.Struct] | None = None  # on GET only
    # status -> model; None: that status has no body (204, 302, an empty 200)
    responses: Mapping[int, Any] = field(default_factory=dict)
    errors: tuple[int, ...] = ()  # statuses answered in ``error_format``
    error_format: ErrorFormat = "problem"
    bearer: bool = False  # takes an access token in Authorization: Bearer
    # Takes an operator's admin token (the admin API, issue 15: "adminToken" in the
    # document's security schemes, its routes tagged "admin").
    admin: bool = False
    # The one scope the admin route needs (set by oneauth.admin.guard.admin_operation
    # and platform_operation); shown as the security requirement's scope.
    admin_scope: str | None = None
    # Takes an Idempotency-Key header (create calls of the admin API).
    idempotent: bool = False
    # Needs If-Match with the resource's ETag (updates of settings).
    if_match: bool = False
    tags: tuple[str, ...] = ()
    media_type: str = "application/json"  # of the success responses


def operation(op: Operation) -> Callable[[View], View]:
    """Attach ``op`` to a view; the view is otherwise unchanged."""

    def attach(view: View) -> View:
        view.__contract__ = op  # type: ignore[attr-defined]
        return view

    return attach


def declared(view: object) -> Operation | None:
    found = getattr(view, "__contract__", None)
    return found if isinstance(found, Operation) else None


def json_response(
    body: msgspec.Struct, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """``body`` encoded by its model (unset members left out)."""
    return Response(
        msgspec.json.encode(body),
        status_code=status_code,
        media_type="application/json",
        headers=dict(headers or {}),
    )


async def json_body(request: Request, model: type[M]) -> M:
    """The JSON body as ``model``: bounded loader first, then the model's limits."""
    return convert(await read_json(request), model)


async def form_body(request: Request, model: type[M]) -> M:
    """The form as ``model``: each pair checked as text and sent once
    (:func:`oneauth.http.requests.read_form`), then the model's limits. The model is
    the view's only input: no handler reads the pairs beside it."""
    return convert(await read_form(request), model)


def lenient(data: Mapping[str, Any], model: type[M]) -> tuple[M, frozenset[str]]:
    """``data`` as ``model`` with the values the model refuses left out, and their
    names: for the hosted pages and ``/oauth/authorize``, which answer a bad value
    with a page or a redirect of their own (never a problem document), decided by
    which parameter it was. The model's members must all be optional."""
    values = dict(data)
    refused: set[str] = set()
    while True:
        try:
            return msgspec.convert(values, model), frozenset(refused)
        except msgspec.ValidationError as exc:
            name, _ = _explain(str(exc), values, model)
            if name is None or name not in values:  # a required member: a declaration bug
                raise
            del values[name]
            refused.add(name)


def convert(data: Mapping[str, Any], model: type[M]) -> M:
    try:
        return msgspec.convert(data, model)
    except msgspec.ValidationError as exc:
        name, detail = _explain(str(exc), data, model)
        raise ValidationFailed(detail, extra={"field": name} if name else None) from None


_AT = re.compile(r" - at `\$\.(\w+)`")
_MISSING = re.compile(r"missing required field `(\w+)`")
_TOO_LONG = re.compile(r"length <= (\d+)")


def _explain(
    message: str, data: Mapping[str, Any], model: type[msgspec.Struct]
) -> tuple[str | None, str]:
    """The field and a sentence, in the words the hand validation used (kept because
    clients and tests read them)."""
    missing = _MISSING.search(message)
    at = _AT.search(message)
    name = missing.group(1) if missing else at.group(1) if at else None
    if name is None:
        return None, message
    value = data.get(name)
    too_long = _TOO_LONG.search(message)
    if too_long and isinstance(value, str):
        return name, f"{name} is longer than {too_long.group(1)} characters"
    if missing or "Expected `str" in message:
        return name, f"{name} is required and must be a non-empty string"
    if "Invalid enum value" in message:
        return name, f"{name} must be {' or '.join(_choices(model, name))}"
    return name, f"{name}: {_AT.sub('', message)}"


def _choices(model: type[msgspec.Struct], name: str) -> list[str]:
    hint = get_type_hints(model, include_extras=True).get(name)
    args = [a for a in get_args(hint) if a is not type(None)]
    while len(args) == 1 and get_args(args[0]):  # Annotated[Literal[...], ...] or X | None
        args = list(get_args(args[0]))
    return [str(a) for a in args]
