"""The email flows' hosted pages read their query and form through their declared
models (``oneauth.web.models``, issue 11), answering as they did by hand."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from oneauth.apps.models import AppRecord

from .test_pages import csrf_of


async def test_reset_and_link_pages_answer_bad_values_as_before(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    base = f"/apps/{app.app_id}"
    # A link token that cannot be one of ours (LinkQuery's pattern): the bad-link page.
    for path in ("/reset", "/verify", "/email/confirm"):
        for token in ("short", "a" * 129, "bad token with spaces 12345"):
            r = await client.get(f"{base}{path}", params={"token": token})
            assert r.status_code == 400, (path, token)
            assert "<code>invalid_link_or_code</code>" in r.text
    page = await client.get(f"{base}/recover")
    csrf = csrf_of(page)
    # Longer than any token of ours: a bad link, not the code form.
    r = await client.post(
        f"{base}/reset",
        data={"token": "t" * 129, "new_password": "a long new passphrase", "csrf": csrf},
    )
    assert r.status_code == 400
    assert "<code>invalid_link_or_code</code>" in r.text
    # An empty token is no token: the code form asks again.
    r = await client.post(
        f"{base}/reset",
        data={"token": "", "code": "123456", "new_password": "a long new passphrase", "csrf": csrf},
    )
    assert r.status_code == 400
    assert "That code is not right" in r.text
    # A new password beyond the input limit: the form says enter one.
    r = await client.post(
        f"{base}/reset", data={"code": "123456", "new_password": "p" * 5000, "csrf": csrf}
    )
    assert r.status_code == 400
    assert "Enter a new password." in r.text
    # An address beyond 320 characters: the form says enter a valid one.
    r = await client.post(
        f"{base}/recover", data={"email": "a" * 400 + "@example.com", "csrf": csrf}
    )
    assert r.status_code == 400
    assert "Enter a valid email address." in r.text
    # A non-ASCII CSRF token: refused as any wrong one (hmac.compare_digest raised: a 500).
    r = await client.post(f"{base}/recover", data={"email": "a@example.com", "csrf": "\u00e9" * 8})
    assert r.status_code == 403
    assert "<code>csrf</code>" in r.text
