"""schemathesis over the whole ``/openapi.json`` against a live server (issue 11).

A real uvicorn on loopback, on the test Postgres, serves the document; every
operation in it gets generated requests (``{app_id}`` pinned to an app provisioned
for this run, so the routes behind the app gate are reached; bearer routes get a
live user's token) and two checks: no
5xx, and every response whose status the document describes matches its schema.

Bounded and deterministic: ``SCHEMATHESIS_EXAMPLES`` examples per operation
(default 20; about 15 s for the whole document on 2 cores), ``derandomize=True``,
no example database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from starlette.applications import Starlette

from apiclient import PASSWORD
from oidc._support import LiveServer
from oneauth.apps.models import AppRecord
from oneauth.asgi import create_app
from oneauth.http.openapi import document
from oneauth.settings import Settings

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "20"))
OPERATIONS = sorted(
    (path, method)
    for path, ops in document(create_app(Settings(env="test"), configure_logging=False).routes)[
        "paths"
    ].items()
    for method in ops
)


@pytest.fixture(scope="module")
def live(settings: Settings, provision: Callable[..., AppRecord]) -> Iterator[tuple[Any, str]]:
    app = provision()

    def make(base_url: str) -> Starlette:
        port = int(base_url.rsplit(":", 1)[1])
        live = replace(settings, public_url=base_url, port=port)
        return create_app(live, configure_logging=False)

    server = LiveServer(make).start()
    try:
        served = httpx.get(f"{server.base_url}/openapi.json", timeout=10).json()
        schema = schemathesis.openapi.from_dict(served)
        yield (schema, server.base_url), app.app_id
    finally:
        server.stop()


def _user_token(base_url: str, app_id: str) -> str:
    email = f"st-{uuid.uuid4().hex[:12]}@example.com"
    response = httpx.post(
        f"{base_url}/apps/{app_id}/v1/signup",
        json={"email": email, "password": PASSWORD},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["access_token"]
    return token


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_operation_conforms(live: tuple[Any, str], path: str, method: str) -> None:
    (schema, base_url), app_id = live
    operation = schema[path][method.upper()]
    pinned = {"app_id": app_id} if "{app_id}" in path else None
    # Valid requests reach the views; invalid ones (negative mode) their error answers.
    strategy = operation.as_strategy(path_parameters=pinned) | operation.as_strategy(
        GenerationMode.NEGATIVE, path_parameters=pinned
    )
    # A bearer route gets a live user's token of the app (its own user: a logout or
    # password change here ends only that session), so generated input reaches the view.
    bearer = operation.definition.raw.get("security")
    headers = {"authorization": f"Bearer {_user_token(base_url, app_id)}"} if bearer else None

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def check(case: Any) -> None:
        response = case.call(base_url=base_url, headers=headers, timeout=30, allow_redirects=False)
        case.validate_response(
            response, headers=headers, checks=[not_a_server_error, response_schema_conformance]
        )

    check()
