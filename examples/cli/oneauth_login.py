"""A command-line tool that signs its user in with oneauth as a public client:
authorization code flow with PKCE and a loopback redirect (RFC 8252), no secret.

``login`` listens on 127.0.0.1 at a free port, opens the browser at oneauth's
authorization endpoint (or prints the URL with ``--no-browser``), takes the one
redirect back on ``/callback``, checks ``state`` and ``iss`` (RFC 9207), exchanges the
code with its PKCE verifier and keeps the tokens in a file only the user can read.
``whoami`` shows the UserInfo answer; ``call URL`` sends a request with the access
token (e.g. to examples/resource_server); both refresh an expired token first.

Register the client with the redirect URI ``http://127.0.0.1/callback``: on a
loopback address oneauth lets the port differ (RFC 8252 section 7.3).
Needs only httpx. Run ``python oneauth_login.py --help``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.server
import json
import os
import secrets
import sys
import threading
import time
import webbrowser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

DEFAULT_SCOPE = "openid email profile offline_access"
DEFAULT_TOKEN_FILE = Path.home() / ".config" / "oneauth-example" / "tokens.json"
PAGE = b"<!doctype html><title>Signed in</title><p>Signed in. You can close this window.</p>"


class CliError(Exception):
    """A failure to tell the user (exit status 1)."""


def discover(issuer: str) -> dict[str, Any]:
    response = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=10)
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    if document.get("issuer") != issuer:
        raise CliError(f"the discovery document names another issuer: {document.get('issuer')}")
    return document


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


class _Callback(http.server.BaseHTTPRequestHandler):
    """Answers one GET /callback and hands its query to the waiting login."""

    result: dict[str, str] | None = None
    arrived = threading.Event()

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != "/callback":
            self.send_error(404)
            return
        type(self).result = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)
        type(self).arrived.set()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


def login(
    issuer: str, client_id: str, scope: str, *, browser: bool, timeout: float
) -> dict[str, Any]:
    """The sign-in: returns the token response (with ``obtained_at``)."""
    metadata = discover(issuer)

    class handler(_Callback):  # this one sign-in's state (a class per login)
        result: dict[str, str] | None = None
        arrived = threading.Event()

    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    redirect_uri = f"http://127.0.0.1:{server.server_address[1]}/callback"
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(24)
    url = (
        metadata["authorization_endpoint"]
        + "?"
        + urlencode(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "scope": scope,
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        print(f"Open this address to sign in:\n{url}", flush=True)
        if browser:
            webbrowser.open(url)
        if not handler.arrived.wait(timeout):
            raise CliError(f"no answer from the browser within {timeout:.0f} s")
    finally:
        server.shutdown()
        server.server_close()
    result = handler.result or {}
    if result.get("state") != state:
        raise CliError("the answer's state does not match: not the sign-in this tool started")
    if "iss" in result and result["iss"] != metadata["issuer"]:
        raise CliError("the answer comes from another issuer")
    if "error" in result:
        raise CliError(f"sign-in failed: {result['error']} {result.get('error_description', '')}")
    response = httpx.post(
        metadata["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": result.get("code", ""),
            "redirect_uri": redirect_uri,
            "client_id": client_id,
            "code_verifier": verifier,
        },
        timeout=10,
    )
    if response.status_code != 200:
        raise CliError(f"the token endpoint refused the code: {response.text}")
    tokens: dict[str, Any] = response.json()
    tokens["obtained_at"] = int(time.time())
    return tokens


def save(path: Path, tokens: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the user's only
    with os.fdopen(fd, "w") as f:
        json.dump(tokens, f)


def load(path: Path) -> dict[str, Any]:
    try:
        value: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise CliError("not signed in: run `login` first") from None
    return value


def fresh_access_token(issuer: str, client_id: str, path: Path) -> str:
    """The saved access token, refreshed first when it has (nearly) expired."""
    tokens = load(path)
    expires_at = tokens.get("obtained_at", 0) + tokens.get("expires_in", 0)
    if time.time() < expires_at - 30:
        return str(tokens["access_token"])
    if "refresh_token" not in tokens:
        raise CliError("the session expired: run `login` again")
    metadata = discover(issuer)
    response = httpx.post(
        metadata["token_endpoint"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": client_id,
        },
        timeout=10,
    )
    if response.status_code != 200:
        raise CliError("the session ended: run `login` again")
    tokens = {**response.json(), "obtained_at": int(time.time())}
    save(path, tokens)
    return str(tokens["access_token"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Sign in to oneauth from the command line.")
    parser.add_argument(
        "--issuer",
        default=os.environ.get("OIDC_ISSUER"),
        help="the app's issuer (default: $OIDC_ISSUER)",
    )
    parser.add_argument(
        "--client-id",
        default=os.environ.get("OIDC_CLIENT_ID"),
        help="the public client's id (default: $OIDC_CLIENT_ID)",
    )
    parser.add_argument("--token-file", type=Path, default=DEFAULT_TOKEN_FILE)
    cmds = parser.add_subparsers(dest="command", required=True)
    p = cmds.add_parser("login", help="sign in in the browser")
    p.add_argument("--scope", default=DEFAULT_SCOPE)
    p.add_argument("--no-browser", action="store_true", help="only print the address")
    p.add_argument("--timeout", type=float, default=300.0)
    cmds.add_parser("whoami", help="who is signed in (UserInfo)")
    p = cmds.add_parser("call", help="GET a URL with the access token")
    p.add_argument("url")
    args = parser.parse_args(argv)
    if not args.issuer or not args.client_id:
        parser.error("--issuer and --client-id (or OIDC_ISSUER and OIDC_CLIENT_ID) are needed")
    issuer = args.issuer.rstrip("/")
    try:
        if args.command == "login":
            tokens = login(
                issuer,
                args.client_id,
                args.scope,
                browser=not args.no_browser,
                timeout=args.timeout,
            )
            save(args.token_file, tokens)
            print(f"signed in (scope: {tokens.get('scope', '')})")
            return 0
        token = fresh_access_token(issuer, args.client_id, args.token_file)
        url = discover(issuer)["userinfo_endpoint"] if args.command == "whoami" else args.url
        response = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        print(response.text)
        return 0 if response.is_success else 1
    except (CliError, httpx.HTTPError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
