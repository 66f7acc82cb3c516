"""examples/webapp: a server-side web app (Starlette + authlib, code flow + PKCE)
signing users in at the live fixture's hosted login page, driven by an httpx
browser; sign-out ends oneauth's session too; another app's user cannot get in."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from starlette.types import ASGIApp

from oneauth.testing import OneauthApp, SignInFailed, serve_asgi, sign_in_through_pages

from .conftest import load_example

webapp = load_example("webapp/webapp.py")


@dataclass
class Site:
    app: OneauthApp
    url: str


@pytest.fixture(scope="module")
def site(shop: OneauthApp) -> Iterator[Site]:

    def make(base_url: str) -> ASGIApp:
        client = shop.create_client(
            "web app",
            confidential=True,
            redirect_uris=[f"{base_url}/callback"],
            post_logout_redirect_uris=[f"{base_url}/"],
        )
        assert client.client_secret is not None
        app: ASGIApp = webapp.create_app(
            issuer=shop.issuer,
            client_id=client.client_id,
            client_secret=client.client_secret,
            base_url=base_url,
        )
        return app

    # localhost: another site than oneauth's 127.0.0.1, as in a deployment.
    with serve_asgi(make, host="localhost") as url:
        yield Site(shop, url)


def test_a_user_signs_in_and_out_of_the_web_app(site: Site) -> None:
    ada = site.app.create_user()
    with httpx.Client(timeout=30) as browser:
        assert "Not signed in" in browser.get(f"{site.url}/").text
        back = sign_in_through_pages(
            browser,
            f"{site.url}/login",
            email=ada.email,
            password=ada.password,
            stop_at=f"{site.url}/callback",
        )
        home = browser.get(back, follow_redirects=True)
        assert home.status_code == 200
        assert f'<strong id="email">{ada.email}</strong>' in home.text

        # Sign-out: the app's session, then oneauth's (RP-initiated logout).
        out = browser.get(f"{site.url}/logout", follow_redirects=True)
        assert out.status_code == 200, out.text
        assert str(out.url).startswith(f"{site.url}/?state=")  # back home from oneauth
        assert "Not signed in" in out.text
        # oneauth forgot the browser: /login shows the login page again.
        again = browser.get(f"{site.url}/login", follow_redirects=True)
        assert 'name="password"' in again.text


def test_a_user_of_another_app_cannot_sign_in(site: Site, other_app: OneauthApp) -> None:
    other = other_app.create_user()
    with httpx.Client(timeout=30) as browser, pytest.raises(SignInFailed, match="not right"):
        sign_in_through_pages(
            browser,
            f"{site.url}/login",
            email=other.email,
            password=other.password,
            stop_at=f"{site.url}/callback",
        )
