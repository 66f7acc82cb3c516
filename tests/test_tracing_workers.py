"""Tracing under ``oneauth serve --workers 2`` into a real OTLP/HTTP receiver (issue 11).

``test_tracing.py`` checks the spans in one process with an in-memory exporter.
Here the real thing: two uvicorn worker processes, each with its own OTLP/HTTP
exporter (``ONEAUTH_OTLP_ENDPOINT``), post protobuf ``ExportTraceServiceRequest``
bodies to a small HTTP server in this test, which decodes them with
``opentelemetry-proto``. Spans must come from both workers, be named by the
route template, and have asyncpg query spans as children of the request span.

The packages are in the ``test`` extra (``make install``, CI): imported plainly,
so a missing one fails here instead of skipping the test.
"""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from oneauth.apps.models import AppRecord
from oneauth.localpg import free_port, scratch_dir
from oneauth.settings import Settings
from test_metrics import _serve_env

ROUTE = "/apps/{app_id}/v1/app"


@dataclass(frozen=True)
class Received:
    pid: int
    service: str
    name: str
    kind: int
    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes
    attributes: dict[str, str | int | bool]


def _value(value: AnyValue) -> str | int | bool:
    kind = value.WhichOneof("value")
    found = getattr(value, kind) if kind else ""
    return found if isinstance(found, str | int | bool) else str(found)


class Collector:
    """An OTLP/HTTP traces receiver on loopback: ``POST /v1/traces``, protobuf."""

    def __init__(self) -> None:
        self.spans: list[Received] = []
        self.posts = 0
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                ok = self.path == "/v1/traces" and self.headers.get_content_type() == (
                    "application/x-protobuf"
                )
                if ok:
                    collector.receive(body)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if ok else 404)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"

    def receive(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        found = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(
                        Received(
                            pid=int(resource.get("process.pid", 0)),
                            service=str(resource.get("service.name", "")),
                            name=span.name,
                            kind=span.kind,
                            trace_id=span.trace_id,
                            span_id=span.span_id,
                            parent_span_id=span.parent_span_id,
                            attributes={a.key: _value(a.value) for a in span.attributes},
                        )
                    )
        with self.lock:
            self.posts += 1
            self.spans.extend(found)

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.spans)

    def request_spans(self) -> dict[int, list[Received]]:
        """Server spans of the traced route, by worker pid."""
        by_pid: dict[int, list[Received]] = {}
        for span in self.snapshot():
            if span.kind == Span.SPAN_KIND_SERVER and span.name == f"GET {ROUTE}":
                by_pid.setdefault(span.pid, []).append(span)
        return by_pid


@pytest.fixture
def collector() -> Iterator[Collector]:
    found = Collector()
    found.thread.start()
    try:
        yield found
    finally:
        found.server.shutdown()
        found.server.server_close()


def _children_of(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (uvicorn's workers), from /proc."""
    children = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # "pid (comm) state ppid ...": comm may hold spaces, so split after ")".
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                children.add(int(entry.name))
    return children


def test_two_workers_export_request_and_query_spans(
    settings: Settings, provision: Callable[..., AppRecord], collector: Collector
) -> None:
    app = provision()
    work = scratch_dir("oneauth-tracing-test-")
    metrics_dir = work / "metrics"
    metrics_dir.mkdir()
    port = free_port()
    env = {
        **{k: v for k, v in _serve_env(settings, port, metrics_dir).items() if "OTEL_" not in k},
        "ONEAUTH_OTLP_ENDPOINT": collector.url,
        # Export within a fraction of a second instead of the SDK's 5 s batches.
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "oneauth.cli.main", "serve", "--workers", "2"],
        env=env,
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/apps/{app.app_id}/v1/app"
    try:
        deadline = time.monotonic() + 60
        ready = 0
        while time.monotonic() < deadline and server.poll() is None and ready < 5:
            try:
                ok = httpx.get(f"{base}/healthz", timeout=2).status_code == 200
                ready = ready + 1 if ok else 0
            except httpx.HTTPError:
                ready = 0
            time.sleep(0.2)
        if ready < 5:
            server.kill()
            _, err = server.communicate(timeout=10)
            pytest.fail(f"the server never answered; exit {server.returncode}:\n{err[-3000:]}")
        # Concurrent fresh connections until both workers' spans arrived (bounded).
        sent = 0
        with ThreadPoolExecutor(max_workers=8) as pool:
            deadline = time.monotonic() + 60
            while len(collector.request_spans()) < 2 and time.monotonic() < deadline:
                if sent < 480:
                    codes = list(
                        pool.map(lambda _: httpx.get(url, timeout=5).status_code, [0] * 24)
                    )
                    assert codes == [200] * 24
                    sent += 24
                time.sleep(0.3)
        by_pid = collector.request_spans()
        assert len(by_pid) >= 2, (sent, collector.posts, {s.name for s in collector.snapshot()})
        # From uvicorn's worker processes, not the supervisor (which serves nothing).
        workers = _children_of(server.pid)
        assert set(by_pid) <= workers, (set(by_pid), workers)
        spans = collector.snapshot()
        assert {s.service for s in spans} == {"oneauth"}
        for pid, requests in by_pid.items():
            for request in requests:
                assert request.attributes["http.route"] == ROUTE
                # Neither the app id nor the client's address is in the request span
                # (127.0.0.1 is also the server's own, in http.host: that one stays).
                assert app.app_id not in repr(request.attributes)
                peer = {"net.peer.ip", "net.peer.port", "client.address", "http.client_ip"}
                assert not peer & request.attributes.keys(), request.attributes
            # The request's queries are its descendants: asyncpg spans of its trace.
            # (The ASGI middleware's own span sits between; any depth counts.)
            traces = {r.trace_id for r in requests}
            queries = [
                s
                for s in spans
                if s.pid == pid
                and s.attributes.get("db.system") == "postgresql"
                and s.trace_id in traces
            ]
            assert queries, f"worker {pid}: no asyncpg span in its request traces"
            ids = {s.span_id: s for s in spans if s.trace_id in traces}
            for query in queries:
                parent, hops = ids.get(query.parent_span_id), 0
                while parent is not None and parent.kind != Span.SPAN_KIND_SERVER and hops < 10:
                    parent, hops = ids.get(parent.parent_span_id), hops + 1
                assert parent is not None, f"worker {pid}: a query span outside its request"
                assert parent.name == f"GET {ROUTE}"
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
