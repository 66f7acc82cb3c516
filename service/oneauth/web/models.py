"""Query and form models of the hosted pages (issues 11 and 12).

Decoded with :func:`oneauth.http.contract.lenient`: a page answers a value its
model refuses as it answers any bad value of that parameter (an expired form,
an invalid link, the form again with a message), so every member is optional.
The lengths are the ones the pages cut or refused at by hand before.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from oneauth.api.models import Code, Email, Password
from oneauth.identity.one_time import MAX_SECRET_INPUT
from oneauth.oauth.models import LogoutQuery

# The sealed authorization request (oneauth.oauth.authorize.AuthorizationRequest.unseal
# reads at most this much) and the CSRF token (oneauth.web.csrf).
Sealed = Annotated[str, msgspec.Meta(max_length=16_384, pattern=r"^[A-Za-z0-9_.-]*$")]
# In a URL (a GET's query): what fits in one request head (uvicorn's h11 takes 16 KiB).
SealedInUrl = Annotated[str, msgspec.Meta(max_length=8192, pattern=r"^[A-Za-z0-9_.-]*$")]
Csrf = Annotated[str, msgspec.Meta(max_length=512, pattern=r"^[\x21-\x7e]*$")]  # ASCII
# A link's token as it may appear in a URL: what the link pages show a button for.
LinkToken = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{20,128}$")]
PostedToken = Annotated[str, msgspec.Meta(max_length=200)]


class FlowQuery(msgspec.Struct, kw_only=True):
    """GET of a page that continues a sealed authorization request."""

    flow: SealedInUrl | None = None


class LinkQuery(msgspec.Struct, kw_only=True):
    """GET of the page a mailed link lands on: shows a button, burns nothing."""

    token: LinkToken | None = None


class CsrfForm(msgspec.Struct, kw_only=True):
    """Every hosted form carries its CSRF token (``oneauth.web.csrf.FIELD``)."""

    csrf: Csrf | None = None


class FlowForm(CsrfForm, kw_only=True):
    """A hosted form that continues a sealed authorization request."""

    flow: Sealed | None = None


class ConsentForm(FlowForm, kw_only=True):
    """POST /consent: allow, or anything else (deny)."""

    decision: Annotated[str, msgspec.Meta(max_length=16, examples=["allow", "deny"])] | None = None


class OrgPickForm(FlowForm, kw_only=True):
    """POST /oauth/authorize/organization (issue 13): the org the user picked, one of
    theirs (checked again, with the request it continues)."""

    organization_id: (
        Annotated[str, msgspec.Meta(max_length=80, examples=["org_3kTMd9XbQ2pLwZ7rVn4sYe"])] | None
    ) = None


class RecoverForm(FlowForm, kw_only=True):
    """POST /recover: the address to send a reset link and code to."""

    email: Email | None = None


class ResetForm(FlowForm, kw_only=True):
    """POST /reset: a new password with the link's token, or with the mailed code."""

    # Empty counts as absent (the code form); longer than any of ours: a bad link.
    token: Annotated[str, msgspec.Meta(max_length=MAX_SECRET_INPUT)] | None = None
    code: Code | None = None
    new_password: Password | None = None


class LinkForm(CsrfForm, kw_only=True):
    """POST /verify and /email/confirm: the link's token, from the button's form."""

    token: PostedToken | None = None


class LogoutForm(LogoutQuery, kw_only=True):
    """POST /oauth/logout: a relying party's logout request (the query's members as a
    form), or our confirmation page's answer (``flow``, ``csrf``, ``decision``)."""

    csrf: Csrf | None = None
    flow: Sealed | None = None
    decision: Annotated[str, msgspec.Meta(max_length=16, examples=["logout", "stay"])] | None = None


class RegisterForm(FlowForm, kw_only=True):
    """POST /register (issue 12): a new account, then the authorization request goes on."""

    email: Annotated[str, msgspec.Meta(max_length=320)] | None = None
    password: Annotated[str, msgspec.Meta(max_length=1024)] | None = None


class AccountForm(CsrfForm, kw_only=True):
    """POST /account/...: every change on the account page carries the CSRF token."""

    name: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    # Activating an authenticator app (POST /account/totp/confirm).
    factor_id: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    code: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    # Linking another upstream provider (POST /account/identities/link, issue 14).
    provider_id: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class InvitationForm(CsrfForm, kw_only=True):
    """POST /invitations/accept (issue 13): the invitation link's token, from the button."""

    token: LinkToken | None = None


# -- federation (issue 14) ---------------------------------------------------------


class FederationStartQuery(FlowQuery, kw_only=True):
    """GET /federation/{provider_id}/start: from the hosted login page (``flow``, the
    sealed authorization request), or a first-party app's ``redirect_uri`` (one of
    the app's ``link_urls``; the one-time code is appended to it)."""

    redirect_uri: Annotated[str, msgspec.Meta(max_length=2048)] | None = None


class FederationCallbackQuery(msgspec.Struct, kw_only=True):
    """GET /federation/{provider_id}/callback: the upstream's authorization response
    (RFC 6749 section 4.1.2 and 4.1.2.1, RFC 9207 ``iss``)."""

    code: Annotated[str, msgspec.Meta(max_length=2048)] | None = None
    state: Annotated[str, msgspec.Meta(max_length=512)] | None = None
    iss: Annotated[str, msgspec.Meta(max_length=2048)] | None = None
    error: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    error_description: Annotated[str, msgspec.Meta(max_length=2048)] | None = None
    error_uri: Annotated[str, msgspec.Meta(max_length=2048)] | None = None
    session_state: Annotated[str, msgspec.Meta(max_length=512)] | None = None


class FederationCallbackForm(FederationCallbackQuery, kw_only=True):
    """POST /federation/{provider_id}/callback: the same authorization response as a
    form (``response_mode=form_post``, Apple), plus Apple's ``user`` (a JSON object
    with the name on the first sign-in only: display only, its email never used) and
    ``reposted`` (set by our own re-post page: a second POST without the binding
    cookie is refused instead of re-posted again)."""

    user: Annotated[str, msgspec.Meta(max_length=2048)] | None = None
    reposted: Annotated[str, msgspec.Meta(max_length=1, examples=["1"])] | None = None


class FederationLinkForm(CsrfForm, kw_only=True):
    """POST /federation/link: prove the existing account and confirm the link, or
    decline it. ``proof``: ``password`` (its email address and password) or, where
    the app signs in by mailed codes, ``email_code`` (``decision=send_code`` mails
    a code to the account's address; ``code`` and the page's ``code_flow`` prove it)."""

    flow_token: PostedToken | None = None
    email: Annotated[str, msgspec.Meta(max_length=320)] | None = None
    password: Annotated[str, msgspec.Meta(max_length=1024)] | None = None
    proof: (
        Annotated[str, msgspec.Meta(max_length=16, examples=["password", "email_code"])] | None
    ) = None
    code: Annotated[str, msgspec.Meta(max_length=MAX_SECRET_INPUT)] | None = None
    code_flow: PostedToken | None = None
    # The passkey element's post (/assets/passkeys.js): toJSON() of the assertion.
    assertion: Annotated[str, msgspec.Meta(max_length=16_384)] | None = None
    decision: (
        Annotated[str, msgspec.Meta(max_length=16, examples=["link", "cancel", "send_code"])] | None
    ) = None
