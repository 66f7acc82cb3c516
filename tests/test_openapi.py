"""``/openapi.json`` lists every route of the real app, with its models and errors (issue 11)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import schemathesis

from oneauth.apps.models import AppRecord
from oneauth.asgi import create_app
from oneauth.http.contract import declared
from oneauth.http.openapi import document, walk
from oneauth.settings import Settings
from test_fuzz_routes import ENDPOINTS

APP = create_app(Settings(env="test"), configure_logging=False)
DOC = document(APP.routes)


def test_every_route_and_method_is_in_the_document() -> None:
    # The fuzz walker is independent of the generator's: both must see the same routes.
    walked = {(e.method.lower(), e.path) for e in ENDPOINTS if e.method != "HEAD"}
    documented = {(m, p) for p, ops in DOC["paths"].items() for m in ops}
    assert walked, "the walker found no routes"
    assert walked == documented


def test_path_parameters_are_declared() -> None:
    for path, ops in DOC["paths"].items():
        for op in ops.values():
            names = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert names == set(path.replace("}", "{").split("{")[1::2]), path


def test_every_route_is_declared() -> None:
    for method, path, route in walk(APP.routes):
        assert declared(route.endpoint) is not None, f"{method} {path} has no declaration"
        assert "x-oneauth-declared" not in DOC["paths"][path][method.lower()]


def test_the_v1_api_is_declared_with_models_and_errors() -> None:
    login = DOC["paths"]["/apps/{app_id}/v1/login"]["post"]
    body = login["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/Credentials"}
    credentials = DOC["components"]["schemas"]["Credentials"]
    assert credentials["properties"]["email"]["maxLength"] == 320
    assert set(credentials["required"]) == {"email", "password"}
    problem = login["responses"]["422"]["content"]["application/problem+json"]["schema"]
    assert problem == {"$ref": "#/components/schemas/Problem"}
    assert "TokenSet" in login["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    authorize = DOC["paths"]["/apps/{app_id}/oauth/authorize"]["get"]
    assert "code_challenge" in {p["name"] for p in authorize["parameters"] if p["in"] == "query"}
    token_errors = DOC["paths"]["/apps/{app_id}/oauth/token"]["post"]["responses"]
    assert token_errors["400"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/OAuthErrorBody"
    )


def test_the_document_is_openapi_31_with_valid_schemas() -> None:
    assert DOC["openapi"].startswith("3.1.")
    # schemathesis checks the document against the OpenAPI meta-schema.
    schemathesis.openapi.from_dict(DOC).validate()
    assert DOC["jsonSchemaDialect"] == "https://json-schema.org/draft/2020-12/schema"
    for schema in DOC["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    refs = _refs(DOC["paths"])
    assert refs <= {f"#/components/schemas/{n}" for n in DOC["components"]["schemas"]}


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


async def test_served_document_is_the_generated_one(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert set(response.json()["paths"]) == set(DOC["paths"])


@pytest.mark.parametrize(
    ("body", "field", "detail"),
    [
        ({"password": "x"}, "email", "email is required and must be a non-empty string"),
        (
            {"email": 5, "password": "x"},
            "email",
            "email is required and must be a non-empty string",
        ),
        ({"email": "a" * 321, "password": "x"}, "email", "email is longer than 320 characters"),
        ({"email": "a@example.com", "password": ""}, "password", None),
    ],
)
async def test_model_errors_keep_the_validation_problem(
    client: httpx.AsyncClient,
    provision: Any,
    body: dict[str, Any],
    field: str,
    detail: str | None,
) -> None:
    app: AppRecord = provision()
    response = await client.post(f"/apps/{app.app_id}/v1/login", json=body)
    assert response.status_code == 422
    problem = response.json()
    assert (problem["code"], problem["field"]) == ("validation_failed", field)
    if detail is not None:
        assert problem["detail"] == detail


async def test_an_enum_error_names_the_choices(client: httpx.AsyncClient, provision: Any) -> None:
    app: AppRecord = provision()
    response = await client.post(
        f"/apps/{app.app_id}/v1/passwordless/start",
        json={"email": "a@example.com", "method": "sms"},
    )
    assert response.status_code == 422
    assert response.json()["detail"] == "method must be link or code"


def _readme_routes() -> set[tuple[str, str]]:
    """(method, path) of every row of the README's HTTP API table."""
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = text.split("\n## HTTP API\n", 1)[1].split("\n## ", 1)[0]
    found = set()
    for methods, path in re.findall(r"^\| `([A-Z|\\]+) (/[^` ]*)` \|", section, re.MULTILINE):
        for method in methods.replace("\\", "").split("|"):
            found.add((method.lower(), path.replace("{app}", "{app_id}")))
    return found


def test_the_readme_table_lists_the_documented_routes() -> None:
    documented = {(m, p) for p, ops in DOC["paths"].items() for m in ops}
    listed = _readme_routes()
    assert listed, "the README's API table was not found"
    assert listed - documented == set(), "README rows for routes the app does not have"
    assert documented - listed == set(), "routes missing from the README's API table"


def test_every_operation_is_in_a_section_and_the_admin_one_is_reserved() -> None:
    """Sections (tags) for the public, first-party and admin APIs; the admin API
    (issue 15) has its tag and its security scheme before its first route."""
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from oneauth.http.contract import Operation, operation

    sections = {tag["name"] for tag in DOC["tags"]}
    for path, ops in DOC["paths"].items():
        for method, op in ops.items():
            assert op.get("tags"), f"{method} {path} is in no section"
            assert set(op["tags"]) <= sections, (path, op["tags"])
    assert "admin" in sections
    assert DOC["components"]["securitySchemes"]["adminToken"]["scheme"] == "bearer"

    @operation(Operation("An admin route", responses={204: None}, admin=True, tags=("admin",)))
    async def admin_view(request: Request) -> Response:
        return Response(status_code=204)

    doc = document([Route("/admin/v1/apps", admin_view, methods=["GET"])])
    op = doc["paths"]["/admin/v1/apps"]["get"]
    assert op["security"] == [{"adminToken": []}]
    assert op["tags"] == ["admin"]
