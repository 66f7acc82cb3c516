"""The JSON Schemas in schemas/ describe what the API really sends and accepts.

They are generated from the models (``make schemas``); the first test keeps the
committed files equal to what the models produce."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from referencing import Registry, Resource

from apiclient import PASSWORD, confidential_client, default_client_id, signup
from oneauth.apps.models import AppRecord
from oneauth.http.jsonschemas import render, schemas
from oneauth.settings import Settings

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


def _registry() -> Registry[Any]:
    resources = []
    for path in sorted(SCHEMAS.glob("*.json")):
        doc = json.loads(path.read_text())
        resources.append((doc["$id"], Resource.from_contents(doc)))
    return Registry().with_resources(resources)


REGISTRY = _registry()


def check(name: str, instance: Any) -> None:
    schema = REGISTRY[f"urn:oneauth:schema:{name}"].contents
    validator = jsonschema.Draft202012Validator(
        schema, registry=REGISTRY, format_checker=jsonschema.FormatChecker()
    )
    validator.validate(instance)


def test_committed_schemas_are_the_generated_ones() -> None:
    generated = schemas()
    committed = {path.stem for path in SCHEMAS.glob("*.json")}
    assert committed == set(generated), "run make schemas"
    for stem, doc in generated.items():
        assert (SCHEMAS / f"{stem}.json").read_text() == render(doc), f"{stem}: run make schemas"


def test_every_schema_is_valid_and_named_after_its_file() -> None:
    for path in SCHEMAS.glob("*.json"):
        doc = json.loads(path.read_text())
        jsonschema.Draft202012Validator.check_schema(doc)
        assert doc["$id"] == f"urn:oneauth:schema:{path.stem}"


async def test_payloads_match_their_schemas(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
) -> None:
    app = provision()
    base = f"/apps/{app.app_id}"
    credentials = {"email": "schema@example.com", "password": PASSWORD}
    check("credentials", credentials)
    tokens = await signup(client, app.app_id, credentials["email"])
    check("token_response", tokens)
    assert tokens["flow_token"], "signup answers a flow token: token_response declares it"
    check("user", tokens["user"])
    check("app_info", (await client.get(f"{base}/v1/app")).json())
    auth = {"authorization": f"Bearer {tokens['access_token']}"}
    check("me", (await client.get(f"{base}/v1/me", headers=auth)).json())
    cid = await default_client_id(client, app.app_id)
    refreshed = await client.post(
        f"{base}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": cid,
        },
    )
    check("token_response", refreshed.json())
    check(
        "oauth_error",
        (
            await client.post(
                f"{base}/oauth/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": "ort_" + "x" * 43,  # unknown
                    "client_id": cid,
                },
            )
        ).json(),
    )
    svc_id, secret = confidential_client(settings, app)
    for token in (refreshed.json()["access_token"], "garbage"):
        check(
            "introspection",
            (
                await client.post(
                    f"{base}/oauth/introspect", data={"token": token}, auth=(svc_id, secret)
                )
            ).json(),
        )
    change = {"current_password": PASSWORD, "new_password": "entirely new words 12"}
    check("password_change", change)
    for response in (
        await client.post(f"{base}/v1/login", json={"email": "x@example.com", "password": "nope"}),
        await client.get("/apps/no-such-app/v1/app"),
        await client.post(f"{base}/v1/signup", json={"email": "bad", "password": PASSWORD}),
    ):
        check("problem", response.json())


def test_schemas_reject_what_the_api_rejects() -> None:
    with pytest.raises(jsonschema.ValidationError):
        check("credentials", {"email": "a@example.com"})
    with pytest.raises(jsonschema.ValidationError):
        check("introspection", {"active": False, "sub": "leaked"})
