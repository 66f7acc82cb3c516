"""WebAuthn ceremonies with real crypto (a software authenticator, real P-256 keys
and CBOR): options, attestation and assertion checks, RP settings. No database."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from webauthn import verify_authentication_response
from webauthn.helpers.exceptions import InvalidAuthenticationResponse

from oneauth.apps.models import AppRecord
from oneauth.apps.policy import PolicyError, parse
from oneauth.errors import ValidationFailed
from oneauth.identity.webauthn import Credential
from oneauth.settings import Settings
from oneauth.strategies import webauthn as ceremony
from softauthn import SoftAuthenticator, b64u, unb64u

ORIGIN = "http://localhost:8000"


@pytest.fixture
def make_app() -> Any:
    def make(settings: dict[str, Any] | None = None, name: str = "Shop") -> AppRecord:
        return AppRecord(
            app_id="shop",
            display_name=name,
            status="active",
            schema_version=0,
            created_at=datetime.now(UTC),
            settings=settings or {},
        )

    return make


def test_names_and_rp_of_the_default_relying_party(make_app: Any) -> None:
    app = make_app()
    rp = ceremony.relying_party(Settings(env="test", public_url=ORIGIN), app)
    assert rp.rp_id == "localhost"
    assert rp.origins == (ORIGIN,)
    assert rp.hosted
    handle = secrets.token_bytes(32)
    options = ceremony.creation_options(
        rp,
        handle=handle,
        email="ada@example.com",
        existing=[],
        challenge=b"c" * 32,
        user_verification="preferred",
    )
    assert options["rp"] == {"id": "localhost", "name": app.display_name}
    assert unb64u(options["user"]["id"]) == handle
    assert app.display_name in options["user"]["name"]
    assert app.display_name in options["user"]["displayName"]
    assert options["attestation"] == "none"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"


def test_default_port_left_out_of_the_origin() -> None:
    assert ceremony.issuer_origin(
        Settings(env="test", public_url="https://id.example.com:443")
    ) == ("https://id.example.com")


def test_registration_and_assertion_verify_with_real_keys(make_app: Any) -> None:
    app = make_app()
    rp = ceremony.relying_party(Settings(env="test", public_url=ORIGIN), app)
    authenticator = SoftAuthenticator(user_verifying=True)
    challenge = secrets.token_bytes(32)
    options = ceremony.creation_options(
        rp,
        handle=secrets.token_bytes(32),
        email="ada@example.com",
        existing=[],
        challenge=challenge,
        user_verification="required",
    )
    parsed, carried = ceremony.parse_registration(authenticator.create(options, ORIGIN))
    assert carried == challenge
    new = ceremony.verify_registration(rp, parsed, carried, user_verification="required")
    assert new.credential_id == authenticator.passkeys[0].credential_id
    assert new.user_verified
    assert not new.backup_eligible
    assert new.transports == ["hybrid", "internal"]

    credential = _stored(new)
    request = ceremony.request_options(
        rp, allow=[credential], challenge=b"x" * 32, user_verification="required"
    )
    assert request["allowCredentials"][0]["id"] == b64u(new.credential_id)
    found = ceremony.parse_assertion(authenticator.get(request, ORIGIN))
    assert found is not None
    assertion, assertion_challenge = found
    verified = verify_authentication_response(
        credential=assertion,
        expected_challenge=assertion_challenge,
        expected_rp_id=rp.rp_id,
        expected_origin=list(rp.origins),
        credential_public_key=credential.public_key,
        credential_current_sign_count=0,
        require_user_verification=True,
    )
    assert verified.new_sign_count == 1
    assert ceremony.amr_of(credential, user_verified=verified.user_verified) == ["hwk", "user"]


def test_synced_passkey_is_swk() -> None:
    authenticator = SoftAuthenticator(synced=True, user_verifying=False)
    rp = ceremony.RelyingParty("localhost", "Shop", (ORIGIN,), hosted=True)
    options = ceremony.creation_options(
        rp,
        handle=secrets.token_bytes(32),
        email="a@example.com",
        existing=[],
        challenge=b"c" * 32,
        user_verification="preferred",
    )
    parsed, challenge = ceremony.parse_registration(authenticator.create(options, ORIGIN))
    new = ceremony.verify_registration(rp, parsed, challenge, user_verification="preferred")
    assert new.backup_eligible
    assert new.backup_state
    assert new.sign_count == 0
    assert ceremony.amr_of(_stored(new), user_verified=False) == ["swk"]


def test_registration_refused_for_another_origin_or_without_required_uv() -> None:
    rp = ceremony.RelyingParty("localhost", "Shop", (ORIGIN,), hosted=True)
    options = ceremony.creation_options(
        rp,
        handle=secrets.token_bytes(32),
        email="a@example.com",
        existing=[],
        challenge=b"c" * 32,
        user_verification="required",
    )
    elsewhere = SoftAuthenticator().create(options, "http://localhost:9999")
    parsed, challenge = ceremony.parse_registration(elsewhere)
    with pytest.raises(ValidationFailed, match="origin"):
        ceremony.verify_registration(rp, parsed, challenge, user_verification="required")
    no_uv = SoftAuthenticator(user_verifying=False).create(options, ORIGIN)
    parsed, challenge = ceremony.parse_registration(no_uv)
    with pytest.raises(ValidationFailed, match="verify the user"):
        ceremony.verify_registration(rp, parsed, challenge, user_verification="required")


def test_assertion_for_another_rp_id_fails_the_signature_check() -> None:
    rp = ceremony.RelyingParty("localhost", "Shop", (ORIGIN,), hosted=True)
    authenticator = SoftAuthenticator()
    options = ceremony.creation_options(
        rp,
        handle=secrets.token_bytes(32),
        email="a@example.com",
        existing=[],
        challenge=b"c" * 32,
        user_verification="preferred",
    )
    parsed, challenge = ceremony.parse_registration(authenticator.create(options, ORIGIN))
    credential = _stored(
        ceremony.verify_registration(rp, parsed, challenge, user_verification="preferred")
    )
    forged = authenticator.assert_with(
        authenticator.passkeys[0], b64u(b"y" * 32), ORIGIN, rp_id="evil.example"
    )
    found = ceremony.parse_assertion(forged)
    assert found is not None
    with pytest.raises(InvalidAuthenticationResponse, match="RP ID"):
        verify_authentication_response(
            credential=found[0],
            expected_challenge=found[1],
            expected_rp_id=rp.rp_id,
            expected_origin=list(rp.origins),
            credential_public_key=credential.public_key,
            credential_current_sign_count=0,
        )


@pytest.mark.parametrize(
    "junk",
    [None, "x", 3, {}, {"id": "a", "rawId": "a", "response": {}}, {"id": "!", "rawId": "!!!"}],
)
def test_malformed_assertions_are_none_not_exceptions(junk: Any) -> None:
    assert ceremony.parse_assertion(junk) is None


def test_malformed_registration_is_a_422() -> None:
    with pytest.raises(ValidationFailed):
        ceremony.parse_registration({"id": "abc", "rawId": "abc", "response": {"x": 1}})


# -- the RP settings (W2) ------------------------------------------------------


def test_rp_id_must_be_a_registrable_suffix_of_the_app_origin() -> None:
    policy = parse(
        {"webauthn_origin": "https://login.shop.example.com", "webauthn_rp_id": "shop.example.com"}
    )
    assert policy.webauthn_rp_id == "shop.example.com"
    assert policy.webauthn_origin == "https://login.shop.example.com"
    for bad, message in [
        ({"webauthn_rp_id": "shop.example.com"}, "needs webauthn_origin"),
        (
            {"webauthn_origin": "https://shop.example.com", "webauthn_rp_id": "other.example.com"},
            "registrable suffix",
        ),
        (
            {"webauthn_origin": "https://shop.example.com", "webauthn_rp_id": "hop.example.com"},
            "registrable suffix",
        ),
        ({"webauthn_origin": "https://shop.example.com", "webauthn_rp_id": "com"}, "top-level"),
        ({"webauthn_origin": "https://10.0.0.1"}, "domain name"),
        ({"webauthn_origin": "http://shop.example.com"}, "https"),
        ({"webauthn_origin": "https://shop.example.com/login"}, "no path"),
        ({"webauthn_user_verification": "discouraged"}, "preferred or required"),
    ]:
        with pytest.raises(PolicyError, match=message):
            parse(bad)


def test_app_with_its_own_host_gets_its_rp_id_and_origin(make_app: Any) -> None:
    settings = Settings(env="test", public_url="https://id.example.com")
    own = make_app({"webauthn_origin": "https://shop.example.com", "webauthn_rp_id": "example.com"})
    rp = ceremony.relying_party(settings, own)
    assert rp.rp_id == "example.com"
    # The issuer's host is under example.com too: the hosted pages may run it.
    assert rp.origins == ("https://shop.example.com", "https://id.example.com")
    assert rp.hosted
    apart = make_app({"webauthn_origin": "https://shop.example.net"})
    rp = ceremony.relying_party(settings, apart)
    assert rp.rp_id == "shop.example.net"
    assert rp.origins == ("https://shop.example.net",)
    assert not rp.hosted


def _stored(new: ceremony.NewCredential) -> Credential:
    return Credential(
        factor_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        name="k",
        credential_id=new.credential_id,
        public_key=new.public_key,
        sign_count=new.sign_count,
        transports=tuple(new.transports),
        backup_eligible=new.backup_eligible,
        backup_state=new.backup_state,
        aaguid=new.aaguid,
        user_verified=new.user_verified,
        created_at=datetime.now(UTC),
        last_used_at=None,
    )
