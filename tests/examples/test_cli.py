"""examples/cli: a public client with PKCE and a loopback redirect (RFC 8252), run as
a real process against the live fixture; the test is the user's browser: it opens
the printed address, fills the hosted login form, and follows the redirect to the
tool's loopback listener."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from oneauth.testing import CALLBACK, OneauthApp, sign_in_through_pages

from .conftest import EXAMPLES

TOOL = EXAMPLES / "cli" / "oneauth_login.py"


def run(issuer: str, client_id: str, token_file: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            str(TOOL),
            "--issuer",
            issuer,
            "--client-id",
            client_id,
            "--token-file",
            str(token_file),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def browse(proc: subprocess.Popen[str], email: str, password: str) -> None:
    """Do what the user does with the printed address."""
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("Open this address")
    url = proc.stdout.readline().strip()
    redirect_uri = parse_qs(urlsplit(url).query)["redirect_uri"][0]
    assert redirect_uri.startswith("http://127.0.0.1:")  # its own loopback port
    with httpx.Client(timeout=30) as browser:
        back = sign_in_through_pages(
            browser, url, email=email, password=password, stop_at=redirect_uri
        )
        assert "Signed in" in browser.get(back).text  # the tool's loopback page


def test_the_cli_signs_in_with_pkce_and_calls_userinfo(shop: OneauthApp, tmp_path: Path) -> None:
    cli = shop.create_client("cli", redirect_uris=[CALLBACK])  # public: no secret
    assert cli.client_secret is None
    ada = shop.create_user()
    tokens = tmp_path / "tokens.json"

    proc = run(shop.issuer, cli.client_id, tokens, "login", "--no-browser", "--timeout", "60")
    browse(proc, ada.email, ada.password)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "signed in" in out
    assert tokens.stat().st_mode & 0o077 == 0  # the user's only
    saved = json.loads(tokens.read_text())
    assert shop.verifier().verify(saved["access_token"]).sub == ada.id

    who = run(shop.issuer, cli.client_id, tokens, "whoami")
    out, err = who.communicate(timeout=60)
    assert who.returncode == 0, err
    assert json.loads(out)["email"] == ada.email

    # An expired access token is refreshed with the saved refresh token.
    tokens.write_text(json.dumps({**saved, "expires_in": 0}))
    who = run(shop.issuer, cli.client_id, tokens, "whoami")
    out, err = who.communicate(timeout=60)
    assert who.returncode == 0, err
    assert json.loads(out)["sub"] == ada.id
    assert json.loads(tokens.read_text())["refresh_token"] != saved["refresh_token"]


def test_the_cli_at_another_app_does_not_sign_in_this_apps_user(
    shop: OneauthApp, other_app: OneauthApp, tmp_path: Path
) -> None:
    """Cross-app: the tool pointed at app B with A's client id gets an error page, no code."""
    a, b = shop, other_app
    a_cli = a.create_client("cli", redirect_uris=[CALLBACK])
    proc = run(
        b.issuer, a_cli.client_id, tmp_path / "t.json", "login", "--no-browser", "--timeout", "2"
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    url = proc.stdout.readline().strip()
    page = httpx.get(url, timeout=30)
    assert page.status_code == 400  # unknown client: oneauth's own error page, no redirect
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "no answer from the browser" in err
    assert not (tmp_path / "t.json").exists()
