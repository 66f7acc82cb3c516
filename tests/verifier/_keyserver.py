"""A real discovery + JWKS server for the verifier tests.

A tiny Starlette app served by uvicorn on 127.0.0.1 with an ephemeral port,
in a background thread. Tests publish key sets per app, rotate them, count
requests, make the server fail or slow down, or stop it outright.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def _close(body: Any, status_code: int = 200) -> Response:
    # A second request on a kept-alive connection to this in-process server
    # stalls ~40 ms (a delayed-ACK interaction); closing keeps tests fast.
    return JSONResponse(body, status_code=status_code, headers={"Connection": "close"})


@dataclass
class _App:
    jwks: dict[str, Any]
    discovery_issuer: str | None = None  # None: the real issuer
    status: int = 200  # anything else: every response for this app fails with it
    delay: float = 0.0  # seconds each response is held back


class KeyServer:
    def __init__(self) -> None:
        self._apps: dict[str, _App] = {}
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str]] = Counter()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        app = Starlette(
            routes=[
                Route("/apps/{app_id}/.well-known/openid-configuration", self._discovery),
                Route("/apps/{app_id}/jwks", self._jwks),
            ]
        )
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            loop="asyncio",
            http="h11",
            ws="none",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> KeyServer:
        self._thread.start()
        deadline = time.monotonic() + 5
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("key server did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._sock.close()

    # -- configuration -----------------------------------------------------

    def issuer(self, app_id: str) -> str:
        return f"{self.base_url}/apps/{app_id}"

    def jwks_uri(self, app_id: str) -> str:
        return f"{self.issuer(app_id)}/jwks"

    def publish(self, app_id: str, jwks: dict[str, Any]) -> None:
        with self._lock:
            app = self._apps.get(app_id)
            if app is None:
                self._apps[app_id] = _App(jwks)
            else:
                app.jwks = jwks

    def configure(
        self,
        app_id: str,
        *,
        discovery_issuer: str | None = None,
        status: int | None = None,
        delay: float | None = None,
    ) -> None:
        with self._lock:
            app = self._apps[app_id]
            if discovery_issuer is not None:
                app.discovery_issuer = discovery_issuer
            if status is not None:
                app.status = status
            if delay is not None:
                app.delay = delay

    def count(self, app_id: str, kind: str = "jwks") -> int:
        return self.requests[(app_id, kind)]

    # -- handlers ----------------------------------------------------------

    async def _respond(self, request: Request, kind: str) -> tuple[_App | None, Response | None]:
        app_id = request.path_params["app_id"]
        with self._lock:
            self.requests[(app_id, kind)] += 1
            app = self._apps.get(app_id)
        if app is None:
            return None, _close({"error": "no such app"}, status_code=404)
        if app.delay:
            await asyncio.sleep(app.delay)
        if app.status != 200:
            return None, _close({"error": "down"}, status_code=app.status)
        return app, None

    async def _discovery(self, request: Request) -> Response:
        app, failed = await self._respond(request, "discovery")
        if failed is not None or app is None:
            return failed or Response(status_code=500)
        app_id = request.path_params["app_id"]
        return _close(
            {
                "issuer": app.discovery_issuer or self.issuer(app_id),
                "jwks_uri": self.jwks_uri(app_id),
                "id_token_signing_alg_values_supported": ["ES256", "EdDSA", "RS256"],
            }
        )

    async def _jwks(self, request: Request) -> Response:
        app, failed = await self._respond(request, "jwks")
        if failed is not None or app is None:
            return failed or Response(status_code=500)
        return _close(app.jwks)


class FakeClock:
    """A settable clock shared by minters and verifiers in cache tests."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
