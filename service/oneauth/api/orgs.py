"""Organizations of the signed-in user (issue 13): views parse, call one service, serialize.

    GET    /v1/orgs                              my orgs, each with my org roles
    POST   /v1/orgs                              create one (policy org_self_service)
    GET    /v1/orgs/offers                       orgs my verified email's domain may join
    POST   /v1/orgs/{org_id}/join                join an offered org
    GET    /v1/orgs/{org_id}                     one of my orgs (org:read)
    GET    /v1/orgs/{org_id}/members             members, cursor pages (org:read)
    PATCH  /v1/orgs/{org_id}/members/{user_id}   replace org roles (org:members:write)
    DELETE /v1/orgs/{org_id}/members/{user_id}   remove (org:members:write); leave: own id
    POST   /v1/orgs/{org_id}/invitations         invite by email (org:invitations:write)
    GET    /v1/orgs/{org_id}/invitations         open invitations (org:invitations:write)
    DELETE /v1/orgs/{org_id}/invitations/{id}    revoke (org:invitations:write)
    POST   /v1/invitations/accept                accept with the mailed token

The user's own first-party access token (:func:`authenticate_bearer`). What a member
may do is decided by org PERMISSIONS (``org:members:write`` ...), never by a role
name (:func:`oneauth.orgs.service.require`), so an app may rebuild its org roles.
An org the caller is not a member of is 404 ``org_not_found``, whether it exists,
belongs to another app or never did (B1): nothing here tells a stranger that an
org exists. A member cannot hand out more than they hold (:mod:`oneauth.flows.organizations`).
"""

from __future__ import annotations

import base64
import binascii
import uuid

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from oneauth.api.models import (
    InvitationAccept,
    InvitationCreate,
    MemberRolesUpdate,
    MembersQuery,
    MyOrg,
    MyOrgs,
    OrgBranding,
    OrgCreate,
    OrgInvitation,
    OrgInvitations,
    OrgMember,
    OrgMembers,
    OrgOffer,
    OrgOffers,
)
from oneauth.errors import InvitationNotFound, MemberNotFound, ValidationFailed
from oneauth.flows import organizations as calls
from oneauth.http.contract import Operation, convert, json_body, json_response, operation
from oneauth.http.gate import current_app
from oneauth.orgs import service as orgs
from oneauth.orgs.invitations import Invitation
from oneauth.services import Services

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
INPUT_ERRORS = (413, 415, 422, 429)
READ_ERRORS = (401, 403, 404)


# -- serializing ----------------------------------------------------------------


def _branding(org: orgs.Org) -> OrgBranding:
    b = org.branding
    return OrgBranding(
        display_name=b.get("display_name"),
        logo_url=b.get("logo_url"),
        primary_color=b.get("primary_color"),
    )


def my_org(org: orgs.Org, membership: orgs.Membership) -> MyOrg:
    return MyOrg(
        id=org.id,
        slug=org.slug,
        name=org.name,
        status=org.status,  # type: ignore[arg-type]
        mfa_required=org.mfa_required,
        join_policy=org.join_policy,  # type: ignore[arg-type]
        branding=_branding(org),
        created_at=org.created_at.isoformat(),
        roles=list(membership.roles),
        permissions=sorted(membership.permissions),
    )


def _member(m: orgs.Member | orgs.Membership, email: str | None = None) -> OrgMember:
    return OrgMember(
        user_id=str(m.user_id),
        email=email if email is not None else getattr(m, "email", ""),
        roles=list(m.roles),
        joined_via=m.joined_via,  # type: ignore[arg-type]
        joined_at=m.joined_at.isoformat(),
    )


def _invitation(i: Invitation) -> OrgInvitation:
    return OrgInvitation(
        id=str(i.id),
        org_id=i.org_id,
        email=i.email,
        roles=list(i.roles),
        invited_by=i.invited_by,
        created_at=i.created_at.isoformat(),
        expires_at=i.expires_at.isoformat(),
    )


# -- parsing ----------------------------------------------------------------------


def _user_id(request: Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params["user_id"])
    except ValueError:
        raise MemberNotFound(extra={"field": "user_id"}) from None


def _invitation_id(request: Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params["invitation_id"])
    except ValueError:
        raise InvitationNotFound(extra={"field": "invitation_id"}) from None


def encode_cursor(value: str | None) -> str | None:
    """The service's cursor (the last row's sort key) made opaque for clients."""
    if value is None:
        return None
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_cursor(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValidationFailed(
            "cursor is not one this API gave", extra={"field": "cursor"}
        ) from None


def _members_query(request: Request) -> MembersQuery:
    data: dict[str, object] = dict(request.query_params)
    limit = data.get("limit")
    if isinstance(limit, str) and limit.isdigit() and len(limit) <= 6:
        data["limit"] = int(limit)  # a query carries text; the model wants the number
    return convert(data, MembersQuery)


# -- views ------------------------------------------------------------------------


@operation(
    Operation(
        "The organizations the signed-in user belongs to, with their org roles",
        responses={200: MyOrgs},
        errors=(401, 403),
        bearer=True,
        tags=("orgs",),
    )
)
async def list_mine(request: Request) -> Response:
    app, services = current_app(request), Services.of(request)
    found = await calls.my_orgs(services, app, request)
    return json_response(MyOrgs(items=[my_org(o, m) for o, m in found]), headers=NO_STORE)


@operation(
    Operation(
        "Create an organization; the caller becomes its admin (app setting org_self_service)",
        body=OrgCreate,
        responses={201: MyOrg},
        errors=(401, 403, 409, *INPUT_ERRORS),
        bearer=True,
        tags=("orgs",),
    )
)
async def create(request: Request) -> Response:
    app, services = current_app(request), Services.of(request)
    data = await json_body(request, OrgCreate)
    org, membership = await calls.create_org(services, app, request, data.name, data.slug)
    return json_response(my_org(org, membership), 201, headers=NO_STORE)


@operation(
    Operation(
        "One of the caller's organizations, with the caller's org roles (org:read)",
        responses={200: MyOrg},
        errors=READ_ERRORS,
        bearer=True,
        tags=("orgs",),
    )
)
async def show(request: Request) -> Response:
    app, services = current_app(request), Services.of(request)
    org, membership = await calls.member_of(
        services, app, request, request.path_params["org_id"], "org:read"
    )
    return json_response(my_org(org, membership), headers=NO_STORE)


@operation(
    Operation(
        "The organization's members, a page at a time (org:read)",
        query=MembersQuery,
        responses={200: OrgMembers},
        errors=(*READ_ERRORS, 422),
        bearer=True,
        tags=("orgs",),
    )
)
async def list_members(request: Request) -> Response:
    app, services = current_app(request), Services.of(request)
    query = _members_query(request)
    page, next_cursor = await calls.members(
        services,
        app,
        request,
        request.path_params["org_id"],
        cursor=decode_cursor(query.cursor),
        limit=query.limit,
    )
    return json_response(
        OrgMembers(items=[_member(m) for m in page], next_cursor=encode_cursor(next_cursor)),
        headers=NO_STORE,
    )


@operation(
    Operation(
        "Replace a member's org roles (org:members:write; only roles within the caller's own)",
        body=MemberRolesUpdate,
        responses={200: OrgMember},
        errors=(*READ_ERRORS, 409, *INPUT_ERRORS),
        bearer=True,
        tags=("orgs",),
    )
)
async def update_member(request: Request) -> Response:
    app, services = current_app(request), Services.of(request)
    data = await json_body(request, MemberRolesUpdate)
    membership, email = await calls.set_roles(
        services, app, request, request.path_params["org_id"], _user_id(request), data.roles
    )
    return json_response(_member(membership, email), headers=NO_STORE)


@operation(
    Operation(
        "Remove a member (org:members:write), or leave the organization (your own user id)",
        responses={204: None},
        errors=(*READ_ERRORS, 409),
        bearer=True,
        tags=("orgs",),
    )
)
async def remove_member(request: Request) -> Response:
    app, services = current_app(request), Services.of(request)
    await calls.remove(services, app, request, request.path_params["org_id"], _user_id(request))
    return Response(status_code=204, headers=NO_STORE)


@operation(
    Operation(
        "Invite an email address (org:invitations:write): a single-use link, mailed, 7 days",
        body=InvitationCreate,
        responses={201: OrgInvitation},
        errors=(*READ_ERRORS, *INPUT_ERRORS),
        bearer=True,
        tags=("orgs",),
    )
)
async def invite(request: Request) -> Response:
    app, services = current_app(request), Services.of(request)
    data = await json_body(request, InvitationCreate)
    made = await calls.invite(
        services, app, request, request.path_params["org_id"], data.email, data.roles
    )
    return json_response(_invitation(made), 201, headers=NO_STORE)


@operation(
    Operation(
        "The organization's open invitations (org:invitations:write)",
        responses={200: OrgInvitations},
        errors=READ_ERRORS,
        bearer=True,
        tags=("orgs",),
    )
)
async def list_invitations(request: Request) -> Response:
    app, services = current_app(request), Services.of(request)
    found = await calls.open_invitations(services, app, request, request.path_params["org_id"])
    return json_response(OrgInvitations(items=[_invitation(i) for i in found]), headers=NO_STORE)


@operation(
    Operation(
        "Revoke an open invitation (org:invitations:write)",
        responses={204: None},
        errors=READ_ERRORS,
        bearer=True,
        tags=("orgs",),
    )
)
async def revoke_invitation(request: Request) -> Response:
    app, services = current_app(request), Services.of(request)
    await calls.revoke_invitation(
        services, app, request, request.path_params["org_id"], _invitation_id(request)
    )
    return Response(status_code=204, headers=NO_STORE)


@operation(
    Operation(
        "Accept an invitation with the mailed token (the invited address, verified)",
        body=InvitationAccept,
        responses={200: MyOrg},
        errors=(400, 401, 403, *INPUT_ERRORS),
        bearer=True,
        tags=("orgs",),
    )
)
async def accept_invitation(request: Request) -> Response:
    app, services = current_app(request), Services.of(request)
    data = await json_body(request, InvitationAccept)
    org, membership = await calls.accept(services, app, request, data.token)
    return json_response(my_org(org, membership), headers=NO_STORE)


@operation(
    Operation(
        "Organizations the caller may join: a verified domain of theirs is the caller's"
        " verified email's, and their join policy is 'offer'",
        responses={200: OrgOffers},
        errors=(401, 403),
        bearer=True,
        tags=("orgs",),
    )
)
async def offers(request: Request) -> Response:
    app, services = current_app(request), Services.of(request)
    found = await calls.offers(services, app, request)
    return json_response(
        OrgOffers(
            items=[
                OrgOffer(id=o.id, slug=o.slug, name=o.name, branding=_branding(o)) for o in found
            ]
        ),
        headers=NO_STORE,
    )


@operation(
    Operation(
        "Join an organization offered to the caller (see GET /v1/orgs/offers)",
        responses={200: MyOrg},
        errors=READ_ERRORS,
        bearer=True,
        tags=("orgs",),
    )
)
async def join(request: Request) -> Response:
    app, services = current_app(request), Services.of(request)
    org, membership = await calls.join_offered(
        services, app, request, request.path_params["org_id"]
    )
    return json_response(my_org(org, membership), headers=NO_STORE)


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/orgs", list_mine, methods=["GET"]),
        Route("/v1/orgs", create, methods=["POST"]),
        # Before /v1/orgs/{org_id}: "offers" is no org id ("org_..."), but routes match in order.
        Route("/v1/orgs/offers", offers, methods=["GET"]),
        Route("/v1/orgs/{org_id}", show, methods=["GET"]),
        Route("/v1/orgs/{org_id}/join", join, methods=["POST"]),
        Route("/v1/orgs/{org_id}/members", list_members, methods=["GET"]),
        Route("/v1/orgs/{org_id}/members/{user_id}", update_member, methods=["PATCH"]),
        Route("/v1/orgs/{org_id}/members/{user_id}", remove_member, methods=["DELETE"]),
        Route("/v1/orgs/{org_id}/invitations", invite, methods=["POST"]),
        Route("/v1/orgs/{org_id}/invitations", list_invitations, methods=["GET"]),
        Route(
            "/v1/orgs/{org_id}/invitations/{invitation_id}", revoke_invitation, methods=["DELETE"]
        ),
        Route("/v1/invitations/accept", accept_invitation, methods=["POST"]),
    ]
