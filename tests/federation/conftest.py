"""Real upstream identity providers for the federation tests (issue 14), on loopback.

How each starts (all on 127.0.0.1, ephemeral ports):

- ``upstream_op`` (session): panva's oidc-provider 9 from npm, NOT written by us.
  ``npm ci`` of oneauth/testing/oidc-provider/package-lock.json (oneauth.testing.node)
  into ``~/.cache/oneauth/federation-rig/<hash>`` once per lock file, then ``node op.mjs``;
  waits for its discovery document. Clients register themselves (dynamic registration).
  Skipped only when node/npm are absent (CI installs them: .ci/run). See rig/node_op.py.
- ``upstream_op_conform`` (session): the same with oidc-provider's default
  ``conformIdTokenClaims``: email etc. only in userinfo, not in the ID token.
- ``github`` (session): the GitHub-style OAuth 2.0 stand-in (rig/github.py) under
  uvicorn in a thread: github.com is unreachable from the test machines.
- ``live_service`` (session) + ``oneauth_upstream`` (per test): our own service under
  uvicorn, app U provisioned on it as the upstream OP (rig/oneauth_app.py).
- ``faulty_op`` (per test): the configurable misbehaving OP (rig/faults.py);
  ``hang_server`` / ``trickle_server`` (per test): TCP that never answers;
  ``closed_port()`` for an upstream that is down.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from starlette.applications import Starlette

from federation.rig.faults import FaultyOP, HangServer
from federation.rig.github import GitHubStandIn
from federation.rig.node_op import RigUnavailable, UpstreamOP
from federation.rig.oneauth_app import OneauthUpstream
from oidc._support import LiveServer
from oneauth.apps.models import AppRecord
from oneauth.asgi import create_app
from oneauth.settings import Settings
from oneauth.testing.node import node_tools
from rigcheck import unavailable


def _node_op(conform: bool) -> Iterator[UpstreamOP]:
    try:
        node_tools()
    except RigUnavailable as exc:
        # node/npm absent: a skip on a developer's machine, a failure on CI (rigcheck).
        unavailable(str(exc))
    op = UpstreamOP(conform_id_token_claims=conform).start()
    try:
        yield op
    finally:
        op.stop()


@pytest.fixture(scope="session")
def upstream_op() -> Iterator[UpstreamOP]:
    """oidc-provider with dynamic registration; ID tokens carry email/name claims."""
    yield from _node_op(conform=False)


@pytest.fixture(scope="session")
def upstream_op_conform() -> Iterator[UpstreamOP]:
    """oidc-provider whose ID tokens carry no email/name: those come from userinfo."""
    yield from _node_op(conform=True)


@pytest.fixture(scope="session")
def github() -> Iterator[GitHubStandIn]:
    """The GitHub-style OAuth 2.0 stand-in on http://127.0.0.1:<port>."""
    state = GitHubStandIn()
    server = LiveServer(state.asgi).start()
    try:
        yield state
    finally:
        server.stop()


@pytest.fixture(scope="session")
def live_service(settings: Settings) -> Iterator[LiveServer]:
    """The real service under uvicorn on 127.0.0.1:<port>, its public URL that address."""

    def make(base_url: str) -> Starlette:
        return create_app(replace(settings, public_url=base_url), configure_logging=False)

    server = LiveServer(make).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def oneauth_upstream(
    live_service: LiveServer, settings: Settings, provision: Callable[..., AppRecord]
) -> Iterator[OneauthUpstream]:
    """A fresh app U on the live service, to be the upstream OP of another app."""
    upstream = OneauthUpstream(live_service.base_url, settings, provision(name="Upstream U"))
    try:
        yield upstream
    finally:
        upstream.close()


@pytest.fixture
def faulty_op() -> Iterator[FaultyOP]:
    """A fresh misbehaving-on-demand OP (its issuer a new port: no cache sees it twice)."""
    state = FaultyOP()
    server = LiveServer(state.asgi).start()
    try:
        yield state
    finally:
        server.stop()


@pytest.fixture
def hang_server() -> Iterator[HangServer]:
    """Accepts TCP and never answers."""
    server = HangServer("silent").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def trickle_server() -> Iterator[HangServer]:
    """Answers one byte every half second, forever."""
    server = HangServer("trickle").start()
    try:
        yield server
    finally:
        server.stop()
