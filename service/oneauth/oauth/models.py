"""Form and response models of the OAuth endpoints (RFC 6749, 7009, 7662).

The forms carry only limits here: a value missing or empty keeps the answer the
endpoint gave before the contract (``invalid_request``, ``invalid_grant``, ...),
so their fields are optional and may be empty; lengths bound what reaches the
grant handlers and Postgres. Client authentication (``client_id``,
``client_secret``, ``client_assertion``) is read by ``oneauth.oauth.clientauth``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import msgspec

from oneauth.tokens.jose import MAX_LENGTH as MAX_JWT

UNSET = msgspec.UNSET
Unset = msgspec.UnsetType

Token = Annotated[str, msgspec.Meta(max_length=MAX_JWT)]  # a JWT or an opaque token
Short = Annotated[str, msgspec.Meta(max_length=2048)]
OrgRef = Annotated[str, msgspec.Meta(max_length=100, examples=["org_3hX9kQ2mV7pL1sR8"])]


class ClientAuth(msgspec.Struct, kw_only=True):
    """RFC 6749 section 2.3.1 (client_secret_post), RFC 7523 (private_key_jwt); or
    HTTP Basic in the Authorization header instead."""

    client_id: Short | None = None
    client_secret: Short | None = None
    client_assertion_type: Short | None = None
    client_assertion: Token | None = None


class TokenForm(ClientAuth, kw_only=True):
    """POST /oauth/token: the parameters of every grant (RFC 6749 sections 4.1.3,
    4.4.2, 6; RFC 7636 section 4.5)."""

    grant_type: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=200,
                examples=["authorization_code", "refresh_token", "client_credentials"],
            ),
        ]
        | None
    ) = None
    code: Token | None = None
    redirect_uri: Short | None = None
    code_verifier: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    refresh_token: Token | None = None
    scope: Short | None = None
    # refresh_token grant (issue 13): the organization the new tokens are for,
    # by id or by slug (not both); another org the user belongs to switches the
    # refresh family to it without a new sign-in.
    organization_id: OrgRef | None = None
    organization: OrgRef | None = None


class TokenForm7009(ClientAuth, kw_only=True):
    """POST /oauth/revoke (RFC 7009 section 2.1) and /oauth/introspect (RFC 7662
    section 2.1)."""

    token: Token | None = None
    token_type_hint: Short | None = None


class Introspection(msgspec.Struct, forbid_unknown_fields=True):
    """RFC 7662 section 2.2; ``active: false`` alone for a token that is not."""

    # Merged into the generated schema (oneauth.http.openapi): nothing leaks beside false.
    json_schema_extra: ClassVar[dict[str, Any]] = {
        "if": {"properties": {"active": {"const": False}}},
        "then": {"maxProperties": 1},
    }
    active: bool
    token_type: Literal["Bearer", "refresh_token"] | Unset = UNSET
    scope: str | Unset = UNSET
    client_id: str | Unset = UNSET
    sub: str | Unset = UNSET
    exp: int | Unset = UNSET
    iat: int | Unset = UNSET
    iss: str | Unset = UNSET
    aud: str | list[str] | Unset = UNSET
    app_id: str | Unset = UNSET
    sid: str | Unset = UNSET
    # The access token's own claims (RFC 9068), told to the resource server as they are.
    jti: str | Unset = UNSET
    auth_time: int | Unset = UNSET
    amr: list[str] | Unset = UNSET
    acr: str | Unset = UNSET
    roles: list[str] | Unset = UNSET
    permissions: list[str] | Unset = UNSET
    org_id: str | Unset = UNSET
    org_slug: str | Unset = UNSET
    org_roles: list[str] | Unset = UNSET
    org_permissions: list[str] | Unset = UNSET
    email_verified: bool | Unset = UNSET
    grant: str | Unset = UNSET


class UserInfo(msgspec.Struct, forbid_unknown_fields=True):
    """OpenID Connect Core section 5.3.2: ``sub``, then the claims the scopes release."""

    sub: Annotated[str, msgspec.Meta(extra_json_schema={"format": "uuid"})]
    email: str | Unset = UNSET
    email_verified: bool | Unset = UNSET
    updated_at: int | Unset = UNSET


class BearerForm(msgspec.Struct, kw_only=True):
    """POST /oauth/userinfo without an Authorization header: the access token in the
    form body (RFC 6750 section 2.2)."""

    access_token: Token | None = None


ChallengeError = Literal["invalid_request", "invalid_token", "insufficient_scope"]


class BearerChallenge(msgspec.Struct, forbid_unknown_fields=True):
    """RFC 6750 section 3 (with WWW-Authenticate): empty when no token was sent."""

    error: ChallengeError | Unset = UNSET
    error_description: str | Unset = UNSET


class ProviderMetadata(msgspec.Struct, forbid_unknown_fields=True):
    """OpenID Connect Discovery 1.0 section 3, RFC 8414 section 2: every member the
    document sends (``oneauth.oauth.discovery`` builds it from this model)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    response_types_supported: list[str]
    subject_types_supported: list[str]
    id_token_signing_alg_values_supported: list[str]
    userinfo_endpoint: str | Unset = UNSET
    revocation_endpoint: str | Unset = UNSET
    introspection_endpoint: str | Unset = UNSET
    end_session_endpoint: str | Unset = UNSET
    response_modes_supported: list[str] | Unset = UNSET
    grant_types_supported: list[str] | Unset = UNSET
    token_endpoint_auth_methods_supported: list[str] | Unset = UNSET
    revocation_endpoint_auth_methods_supported: list[str] | Unset = UNSET
    introspection_endpoint_auth_methods_supported: list[str] | Unset = UNSET
    token_endpoint_auth_signing_alg_values_supported: list[str] | Unset = UNSET
    code_challenge_methods_supported: list[str] | Unset = UNSET
    scopes_supported: list[str] | Unset = UNSET
    claims_supported: list[str] | Unset = UNSET
    acr_values_supported: list[str] | Unset = UNSET
    prompt_values_supported: list[str] | Unset = UNSET
    authorization_response_iss_parameter_supported: bool | Unset = UNSET
    request_parameter_supported: bool | Unset = UNSET
    request_uri_parameter_supported: bool | Unset = UNSET


class Jwk(msgspec.Struct, forbid_unknown_fields=True):
    """A public key (RFC 7517 section 4; RFC 7518 section 6 for the EC and RSA
    members, RFC 8037 for OKP). Only public members exist here: the key store
    converts each published key through this model, so a private member (``d``,
    ``p``, ...) refuses the key set instead of reaching the document."""

    kty: Literal["EC", "RSA", "OKP"]
    kid: str
    use: Literal["sig"] | Unset = UNSET
    alg: str | Unset = UNSET
    crv: str | Unset = UNSET
    x: str | Unset = UNSET
    y: str | Unset = UNSET
    n: str | Unset = UNSET
    e: str | Unset = UNSET


class JwkSet(msgspec.Struct, forbid_unknown_fields=True):
    """RFC 7517 section 5: the app's next, active and retired public keys."""

    keys: list[Jwk]


class AuthorizeQuery(msgspec.Struct, kw_only=True):
    """GET (query) or POST (form) /oauth/authorize: RFC 6749 section 4.1.1, OpenID
    Connect Core section 3.1.2.1, RFC 7636 section 4.3. Decoded leniently
    (``oneauth.http.contract.lenient``) and checked by ``oneauth.oauth.authorize``,
    which decides between an error page (an unusable client or redirect URI) and an
    error redirect; ``state`` is bounded at ``authorize.MAX_STATE``. ``organization_id``
    (issue 13) asks for tokens of one organization. The last five are named only to
    be refused (OIDC Core 6, RFC 7636 section 4.5)."""

    response_type: Short | None = None
    client_id: Short | None = None
    redirect_uri: Short | None = None
    scope: Short | None = None
    state: Short | None = None
    nonce: Short | None = None
    code_challenge: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    code_challenge_method: Annotated[str, msgspec.Meta(max_length=16)] | None = None
    prompt: Short | None = None
    max_age: Annotated[str, msgspec.Meta(max_length=20)] | None = None
    login_hint: Short | None = None
    acr_values: Short | None = None
    # Issue 13: the organization the tokens are for (an ``org_...`` id of this app).
    organization_id: (
        Annotated[str, msgspec.Meta(max_length=80, examples=["org_3kTMd9XbQ2pLwZ7rVn4sYe"])] | None
    ) = None
    # Issue 14: straight to this upstream identity provider of the app (its id,
    # ``idp_...``); an unknown or disabled one shows the login page instead.
    idp_hint: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    response_mode: Short | None = None
    request: Token | None = None
    request_uri: Short | None = None
    registration: Short | None = None
    code_verifier: Short | None = None


class LogoutQuery(msgspec.Struct, kw_only=True):
    """OpenID Connect RP-Initiated Logout 1.0 section 2."""

    id_token_hint: Token | None = None
    client_id: Short | None = None
    post_logout_redirect_uri: Short | None = None
    state: Short | None = None
