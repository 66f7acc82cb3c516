"""Drive an upstream's HTML login/consent pages with httpx, as a browser without
JavaScript would: follow redirects while they stay at the upstream, fill and post
each page's form, stop at the first redirect that leaves the upstream."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urljoin

import httpx

from oidc._support import Form, forms

MAX_STEPS = 16


def within(url: str, prefix: str) -> bool:
    """Whether ``url`` is at the upstream whose base (issuer) is ``prefix``."""
    prefix = prefix.rstrip("/")
    return url == prefix or url.startswith((f"{prefix}/", f"{prefix}?"))


def _fill(page: Form, fill: Mapping[str, str]) -> dict[str, str]:
    data = dict(page.fields)
    buttons: dict[str, str] = {}
    for key, value in page.buttons:
        buttons.setdefault(key, value)
    for key, value in fill.items():
        if key in data or key in buttons:
            data[key] = value
    for key, value in buttons.items():
        data.setdefault(key, value)  # the (first) submit button, as a browser sends it
    return data


def _next_form(response: httpx.Response) -> Form:
    found = [f for f in forms(response.text) if f.method == "post"]
    if not found:
        raise AssertionError(
            f"upstream page without a form ({response.status_code}): {response.text[:2000]}"
        )
    return found[0]


def _link(response: httpx.Response, pattern: str | None) -> str | None:
    found = re.search(pattern, response.text) if pattern else None
    return None if found is None else urljoin(str(response.url), found.group(1))


async def drive(
    http: httpx.AsyncClient,
    url: str,
    prefix: str,
    fill: Mapping[str, str],
    *,
    follow_link: str | None = None,
) -> str:
    """Returns the absolute URL of the redirect that leaves ``prefix``. With
    ``follow_link`` (a regex whose group 1 is an href), a page with such a link has
    it followed instead of its form posted (a "Cancel" link, say)."""
    response = await http.get(url, follow_redirects=False)
    for _ in range(MAX_STEPS):
        if response.is_redirect:
            target = urljoin(str(response.url), response.headers["location"])
            if not within(target, prefix):
                return target
            response = await http.get(target, follow_redirects=False)
            continue
        if response.status_code != 200:
            raise AssertionError(
                f"upstream answered {response.status_code}: {response.text[:2000]}"
            )
        link = _link(response, follow_link)
        if link is not None:
            response = await http.get(link, follow_redirects=False)
            continue
        page = _next_form(response)
        action = urljoin(str(response.url), page.action or str(response.url))
        response = await http.post(action, data=_fill(page, fill), follow_redirects=False)
    raise AssertionError("the upstream's pages did not end in a redirect")


def drive_sync(
    http: httpx.Client,
    url: str,
    prefix: str,
    fill: Mapping[str, str],
    *,
    follow_link: str | None = None,
) -> str:
    """The same with a sync client."""
    response = http.get(url, follow_redirects=False)
    for _ in range(MAX_STEPS):
        if response.is_redirect:
            target = urljoin(str(response.url), response.headers["location"])
            if not within(target, prefix):
                return target
            response = http.get(target, follow_redirects=False)
            continue
        if response.status_code != 200:
            raise AssertionError(
                f"upstream answered {response.status_code}: {response.text[:2000]}"
            )
        link = _link(response, follow_link)
        if link is not None:
            response = http.get(link, follow_redirects=False)
            continue
        page = _next_form(response)
        action = urljoin(str(response.url), page.action or str(response.url))
        response = http.post(action, data=_fill(page, fill), follow_redirects=False)
    raise AssertionError("the upstream's pages did not end in a redirect")
