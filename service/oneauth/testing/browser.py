"""A browser without a browser: follows redirects and fills oneauth's hosted login and
consent forms with httpx, so a test can sign a user in the way a person would.

Used by :meth:`oneauth.testing.OneauthApp.sign_in` and by tests of relying
parties (a web app, a CLI) that need the hosted pages answered for them.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx

__all__ = ["Form", "SignInFailed", "forms", "sign_in_through_pages"]

_MAX_STEPS = 16


class SignInFailed(AssertionError):
    """The hosted pages did not lead back to the client (wrong password, an error page,
    a step the helper cannot answer such as a second factor)."""


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get").lower()))
            self._in_form = True
        elif not self._in_form or not a.get("name"):
            return
        elif tag == "input":
            self.forms[-1].fields[a["name"]] = a.get("value", "")
        elif tag == "button":
            self.forms[-1].buttons.append((a["name"], a.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


def forms(page: str) -> list[Form]:
    parser = _Forms()
    parser.feed(page)
    return parser.forms


def _error_of(page: str) -> str:
    found = re.search(r'role="alert"[^>]*>(.*?)<', page, re.S)
    if found:
        return html.unescape(found.group(1)).strip()
    title = re.search(r"<h1>(.*?)</h1>", page, re.S)
    return html.unescape(title.group(1)).strip() if title else "an unexpected page"


def sign_in_through_pages(
    http: httpx.Client,
    start: str,
    *,
    email: str,
    password: str,
    stop_at: str,
    consent: bool = True,
) -> str:
    """GET ``start`` and answer pages until a redirect to ``stop_at``; return its URL.

    ``http`` keeps the cookies (one browser) and must not follow redirects by
    itself. The login form gets ``email`` and ``password``; the consent page is
    allowed (or denied with ``consent=False``). Anything else raises
    :class:`SignInFailed` with the page's message.
    """
    response = http.get(start)
    posted_password = False
    for _ in range(_MAX_STEPS):
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if location.startswith(stop_at):
                return location
            response = http.get(location)
            continue
        page = response.text
        if response.status_code != 200 or "text/html" not in response.headers.get(
            "content-type", ""
        ):
            raise SignInFailed(f"{response.status_code} at {response.url}: {_error_of(page)}")
        found = forms(page)
        login = next((f for f in found if "password" in f.fields), None)
        decision = next((f for f in found if any(n == "decision" for n, _ in f.buttons)), None)
        if login is not None:
            if posted_password:
                raise SignInFailed(f"the login form came back: {_error_of(page)}")
            posted_password = True
            data = {**login.fields, "email": email, "password": password}
            response = http.post(urljoin(str(response.url), login.action), data=data)
        elif decision is not None:
            data = {**decision.fields, "decision": "allow" if consent else "deny"}
            response = http.post(urljoin(str(response.url), decision.action), data=data)
        else:
            raise SignInFailed(
                f"a page this helper cannot answer at {response.url}: {_error_of(page)}"
            )
    raise SignInFailed(f"no redirect to {stop_at} after {_MAX_STEPS} steps")
