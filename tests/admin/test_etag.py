"""ETag / If-Match (oneauth.admin.etag): the flow every settings update uses."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from oneauth.admin.etag import PreconditionFailed, PreconditionRequired, etag_of, require_match


def request(if_match: str | None) -> Request:
    headers = [] if if_match is None else [(b"if-match", if_match.encode())]
    return Request({"type": "http", "method": "PATCH", "path": "/", "headers": headers})


def test_the_etag_is_of_the_canonical_value() -> None:
    tag = etag_of({"b": 1, "a": [1, "x"]})
    assert tag == etag_of({"a": [1, "x"], "b": 1})  # key order does not matter
    assert tag != etag_of({"a": [1, "x"], "b": 2})
    assert tag.startswith('"')
    assert tag.endswith('"')
    assert len(tag) == 66


def test_get_then_patch_with_if_match() -> None:
    settings = {"mfa": "optional", "branding": {"color": "#123456"}}
    current = etag_of(settings)
    require_match(request(current), current)  # the ETag a GET answered
    require_match(request(f'"other", {current}'), current)
    changed = etag_of({**settings, "mfa": "required"})  # someone else saved meanwhile
    with pytest.raises(PreconditionFailed) as stale:
        require_match(request(current), changed)
    assert stale.value.status == 412
    assert stale.value.headers["etag"] == changed
    with pytest.raises(PreconditionFailed):
        require_match(request("W/" + current), current)  # weak never matches


@pytest.mark.parametrize("header", [None, "", "*", "  "])
def test_without_a_real_if_match_it_is_428(header: str | None) -> None:
    with pytest.raises(PreconditionRequired) as missing:
        require_match(request(header), etag_of({}))
    assert missing.value.status == 428
    assert missing.value.code == "precondition_required"
