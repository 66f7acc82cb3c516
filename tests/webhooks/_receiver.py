"""A real webhook receiver for the tests: Starlette under uvicorn on 127.0.0.1.

It runs in its own thread and event loop (a receiver that hangs does not hang
the test), checks every request's Standard Webhooks signature with the
endpoint's secret (``expect``), and records what came in.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from oneauth.webhooks import signing


@dataclass
class Received:
    name: str
    headers: dict[str, str]
    body: bytes
    valid: bool
    at: float


@dataclass
class _Hook:
    secret: str = ""
    status: int = 200
    delay: float = 0.0


@dataclass
class Receiver:
    hooks: dict[str, _Hook] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        app = Starlette(routes=[Route("/hook/{name}", self._hook, methods=["POST"])])
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", loop="asyncio",
            http="h11", ws="none",
        )  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/hook/{name}"

    def configure(self, name: str, *, status: int = 200, delay: float = 0.0) -> str:
        with self._lock:
            hook = self.hooks.setdefault(name, _Hook())
            hook.status, hook.delay = status, delay
        return self.url(name)

    def expect(self, name: str, secret: str) -> None:
        with self._lock:
            self.hooks.setdefault(name, _Hook()).secret = secret

    def of(self, name: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.name == name]

    async def wait_for(self, name: str, count: int, within: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + within
        for _ in range(int(within / 0.02) + 1):
            if len(self.of(name)) >= count or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        return self.of(name)

    async def _hook(self, request: Request) -> Response:
        name = request.path_params["name"]
        body = await request.body()
        with self._lock:
            hook = self.hooks.setdefault(name, _Hook())
            headers = {k.lower(): v for k, v in request.headers.items()}
            valid = bool(hook.secret) and signing.verify(hook.secret, headers, body)
            self.received.append(Received(name, headers, body, valid, time.monotonic()))
            status, delay = hook.status, hook.delay
        if delay:
            await asyncio.sleep(delay)
        if not valid:
            status = 400
        return Response(status_code=status, headers={"Connection": "close"})

    def start(self) -> Receiver:
        self._thread.start()
        deadline = time.monotonic() + 5
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("receiver did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._server.force_exit = True
        self._thread.join(timeout=5)
        self._sock.close()
