"""An app's roles, permissions and organizations in its admin API (issue 15).

    GET|POST          /roles                          admin:roles:read | write
    GET|PATCH|DELETE  /roles/{name}
    GET|POST          /permissions
    DELETE            /permissions/{name}
    POST|DELETE       /users/{user_id}/roles/{name}    grant, revoke an app role
    GET|POST          /orgs                           admin:orgs:read | write
    GET|PATCH|DELETE  /orgs/{org_id}                  (id or slug)
    POST              /orgs/{org_id}/suspend|resume   suspended: no new org-scoped token
    GET|POST          /orgs/{org_id}/members
    DELETE            /orgs/{org_id}/members/{user_id}
    GET|POST          /orgs/{org_id}/invitations      the link is mailed, never answered
    DELETE            /orgs/{org_id}/invitations/{invitation_id}

Views parse, call the services the CLI and ``/v1`` call (:mod:`oneauth.orgs`), and
serialize. The services audit the change with the acting client or operator (the
domain event: ``role.create``, ``org.suspend``...); the view adds the admin row
(``admin.role.create``...) with :func:`oneauth.admin.guard.audit`. Everything is in
the app's own schema: another app's org id, role or user is 404 here (B1).
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from oneauth.admin import guard
from oneauth.admin.app_api._rest import NO_STORE, PREFIX, actor_of
from oneauth.admin.guard import AdminCaller, admin_operation
from oneauth.admin.models_rest import (
    UNSET,
    AdminInvitation,
    AdminInvitationCreate,
    AdminInvitations,
    AdminMember,
    AdminMemberAdd,
    AdminMembers,
    AdminOrg,
    AdminOrgCreate,
    AdminOrgDeleted,
    AdminOrgs,
    AdminOrgUpdate,
    AdminPermission,
    AdminPermissions,
    AdminRole,
    AdminRoles,
    ListQuery,
    PermissionCreate,
    RoleCreate,
    RoleUpdate,
    UserRoles,
)
from oneauth.admin.pagination import decode_cursor, encode_cursor, next_cursor, query
from oneauth.errors import InvitationNotFound, RoleNotFound
from oneauth.http.contract import Operation, json_body, json_response
from oneauth.orgs import invitations, roles
from oneauth.orgs import service as orgs
from oneauth.orgs.users import resolve
from oneauth.services import Services

INPUT = (413, 415, 422)


# -- serializing ---------------------------------------------------------------------


def _role(r: roles.Role) -> AdminRole:
    return AdminRole(
        id=str(r.id),
        name=r.name,
        description=r.description,
        permissions=r.permissions,
        created_at=r.created_at.isoformat(),
    )


def _org(o: orgs.Org) -> AdminOrg:
    return AdminOrg(
        id=o.id,
        slug=o.slug,
        name=o.name,
        status=o.status,  # type: ignore[arg-type]
        mfa_required=o.mfa_required,
        join_policy=o.join_policy,  # type: ignore[arg-type]
        default_role=o.default_role,
        branding={k: str(v) for k, v in o.branding.items()},
        created_at=o.created_at.isoformat(),
        updated_at=o.updated_at.isoformat(),
    )


def _member(m: orgs.Member | orgs.Membership, email: str) -> AdminMember:
    return AdminMember(
        user_id=str(m.user_id),
        email=email,
        roles=list(m.roles),
        joined_via=m.joined_via,
        joined_at=m.joined_at.isoformat(),
    )


def _invitation(i: invitations.Invitation) -> AdminInvitation:
    return AdminInvitation(
        id=str(i.id),
        org_id=i.org_id,
        email=i.email,
        roles=list(i.roles),
        invited_by=i.invited_by,
        state=i.state,
        created_at=i.created_at.isoformat(),
        expires_at=i.expires_at.isoformat(),
    )


def _page_after(q: ListQuery, key: str) -> str | None:
    after = decode_cursor(q.cursor, {key: str})
    return None if after is None else str(after[key])


def _cursor(items: list[Any], limit: int, key: str) -> str | None:
    return next_cursor([{key: getattr(i, key)} for i in items], limit, key)


async def _audit(
    conn: asyncpg.Connection,
    caller: AdminCaller,
    event: str,
    target_type: str,
    target_id: str,
    **details: Any,
) -> None:
    await guard.audit(
        conn, caller, event, target_type=target_type, target_id=target_id, details=details
    )


# -- roles and permissions -----------------------------------------------------------


@admin_operation(
    Operation(
        "List the app's roles with their permissions (keyset pages by name)",
        query=ListQuery,
        responses={200: AdminRoles},
        errors=(422,),
    ),
    scope="admin:roles:read",
)
async def list_roles(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    q = query(request, ListQuery)
    found = await roles.list_roles(conn, after=_page_after(q, "name"), limit=q.limit + 1)
    return json_response(
        AdminRoles(
            items=[_role(r) for r in found[: q.limit]], next_cursor=_cursor(found, q.limit, "name")
        ),
        headers=NO_STORE,
    )


@admin_operation(
    Operation(
        "Create a role with its permissions (missing permissions are created)",
        body=RoleCreate,
        responses={201: AdminRole},
        errors=(409, *INPUT),
        idempotent=True,
    ),
    scope="admin:roles:write",
)
async def create_role(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    data = await json_body(request, RoleCreate)
    made = await roles.create_role(
        conn,
        data.name,
        permissions=data.permissions,
        description=data.description,
        actor=actor_of(caller),
        meta=caller.meta,
    )
    await _audit(conn, caller, "admin.role.create", "role", made.name)
    return json_response(_role(made), 201, headers=NO_STORE)


async def _require_role(conn: asyncpg.Connection, name: str) -> roles.Role:
    found = await roles.get_role(conn, name) if len(name) <= 64 else None
    if found is None:
        raise RoleNotFound(f"the app has no role {name!r}", extra={"field": "name"})
    return found


@admin_operation(
    Operation("One role with its permissions", responses={200: AdminRole}, errors=(404,)),
    scope="admin:roles:read",
)
async def show_role(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    found = await _require_role(conn, request.path_params["name"])
    return json_response(_role(found), headers=NO_STORE)


@admin_operation(
    Operation(
        "Change a role's description or replace its permissions",
        body=RoleUpdate,
        responses={200: AdminRole},
        errors=(404, *INPUT),
    ),
    scope="admin:roles:write",
)
async def update_role(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    data = await json_body(request, RoleUpdate)
    await _require_role(conn, request.path_params["name"])
    changed = await roles.update_role(
        conn,
        request.path_params["name"],
        description=data.description,
        permissions=data.permissions,
        actor=actor_of(caller),
        meta=caller.meta,
    )
    await _audit(conn, caller, "admin.role.update", "role", changed.name)
    return json_response(_role(changed), headers=NO_STORE)


@admin_operation(
    Operation("Delete a role; its users lose it", responses={204: None}, errors=(404,)),
    scope="admin:roles:write",
)
async def delete_role(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    found = await _require_role(conn, request.path_params["name"])
    await roles.delete_role(conn, found.name, actor=actor_of(caller), meta=caller.meta)
    await _audit(conn, caller, "admin.role.delete", "role", found.name)
    return Response(status_code=204, headers=NO_STORE)


def _permission(p: roles.Permission) -> AdminPermission:
    return AdminPermission(
        name=p.name, description=p.description, created_at=p.created_at.isoformat()
    )


@admin_operation(
    Operation(
        "List the app's permissions (keyset pages by name)",
        query=ListQuery,
        responses={200: AdminPermissions},
        errors=(422,),
    ),
    scope="admin:roles:read",
)
async def list_permissions(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    q = query(request, ListQuery)
    found = await roles.list_permissions(conn, after=_page_after(q, "name"), limit=q.limit + 1)
    return json_response(
        AdminPermissions(
            items=[_permission(p) for p in found[: q.limit]],
            next_cursor=_cursor(found, q.limit, "name"),
        ),
        headers=NO_STORE,
    )


@admin_operation(
    Operation(
        "Add a permission to the app's vocabulary",
        body=PermissionCreate,
        responses={201: AdminPermission},
        errors=(409, *INPUT),
        idempotent=True,
    ),
    scope="admin:roles:write",
)
async def create_permission(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    data = await json_body(request, PermissionCreate)
    made = await roles.create_permission(
        conn, data.name, description=data.description, actor=actor_of(caller), meta=caller.meta
    )
    await _audit(conn, caller, "admin.permission.create", "permission", made.name)
    return json_response(_permission(made), 201, headers=NO_STORE)


@admin_operation(
    Operation(
        "Remove a permission; the roles holding it lose it (org:* permissions stay)",
        responses={204: None},
        errors=(404, 409, 422),
    ),
    scope="admin:roles:write",
)
async def delete_permission(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    name = request.path_params["name"]
    await roles.delete_permission(conn, name, actor=actor_of(caller), meta=caller.meta)
    await _audit(conn, caller, "admin.permission.delete", "permission", name)
    return Response(status_code=204, headers=NO_STORE)


async def _user_role(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection, add: bool
) -> Response:
    user = await resolve(conn, request.path_params["user_id"])
    name = (await _require_role(conn, request.path_params["name"])).name
    change = roles.grant if add else roles.revoke
    changed = await change(conn, user.id, name, actor=actor_of(caller), meta=caller.meta)
    if changed:
        await _audit(
            conn,
            caller,
            "admin.role.grant" if add else "admin.role.revoke",
            "user",
            user.sub,
            role=name,
        )
    body = UserRoles(
        user_id=user.sub, role=name, changed=changed, roles=await roles.roles_of(conn, user.id)
    )
    return json_response(body, headers=NO_STORE)


@admin_operation(
    Operation(
        "Give a user an app role (no change if they hold it)",
        responses={200: UserRoles},
        errors=(404, 422),
    ),
    scope="admin:roles:write",
)
async def grant_role(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    return await _user_role(request, caller, conn, add=True)


@admin_operation(
    Operation(
        "Take an app role from a user (tokens issued before keep it until they expire)",
        responses={200: UserRoles},
        errors=(404, 422),
    ),
    scope="admin:roles:write",
)
async def revoke_role(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    return await _user_role(request, caller, conn, add=False)


# -- organizations -------------------------------------------------------------------


@admin_operation(
    Operation(
        "List the app's organizations (keyset pages by slug)",
        query=ListQuery,
        responses={200: AdminOrgs},
        errors=(422,),
    ),
    scope="admin:orgs:read",
)
async def list_orgs(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    q = query(request, ListQuery)
    found, more = await orgs.list_all(conn, cursor=_page_after(q, "slug"), limit=q.limit)
    cursor = None if more is None else encode_cursor({"slug": more})
    return json_response(
        AdminOrgs(items=[_org(o) for o in found], next_cursor=cursor), headers=NO_STORE
    )


@admin_operation(
    Operation(
        "Create an organization (slug derived from the name when not given);"
        " admin_user_id joins it as admin",
        body=AdminOrgCreate,
        responses={201: AdminOrg},
        errors=(404, 409, *INPUT),
        idempotent=True,
    ),
    scope="admin:orgs:write",
)
async def create_org(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    data = await json_body(request, AdminOrgCreate)
    made = await orgs.create(
        conn,
        name=data.name,
        slug=data.slug,
        creator=data.admin_user_id,
        actor=actor_of(caller),
        meta=caller.meta,
    )
    await _audit(conn, caller, "admin.org.create", "organization", made.id, slug=made.slug)
    return json_response(_org(made), 201, headers=NO_STORE)


@admin_operation(
    Operation("One organization (by id or slug)", responses={200: AdminOrg}, errors=(404,)),
    scope="admin:orgs:read",
)
async def show_org(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    found = await orgs.require_org(conn, request.path_params["org_id"])
    return json_response(_org(found), headers=NO_STORE)


@admin_operation(
    Operation(
        "Change an organization's name, slug, MFA requirement, join policy, default role"
        " or branding",
        body=AdminOrgUpdate,
        responses={200: AdminOrg},
        errors=(404, 409, *INPUT),
    ),
    scope="admin:orgs:write",
)
async def update_org(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    data = await json_body(request, AdminOrgUpdate)
    changes: dict[str, Any] = {
        "name": data.name,
        "slug": data.slug,
        "mfa_required": data.mfa_required,
        "join_policy": data.join_policy,
        "branding": data.branding,
    }
    if data.default_role is not UNSET:  # null clears it; left out leaves it
        changes["default_role"] = data.default_role
    changed = await orgs.update(
        conn, request.path_params["org_id"], actor=actor_of(caller), meta=caller.meta, **changes
    )
    await _audit(conn, caller, "admin.org.update", "organization", changed.id)
    return json_response(_org(changed), headers=NO_STORE)


@admin_operation(
    Operation(
        "Delete an organization with its members, roles, invitations, domains and org"
        " clients; its org-scoped sessions end",
        responses={200: AdminOrgDeleted},
        errors=(404,),
    ),
    scope="admin:orgs:write",
)
async def delete_org(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    found = await orgs.require_org(conn, request.path_params["org_id"])
    ended = await orgs.delete(conn, found.id, actor=actor_of(caller), meta=caller.meta)
    await _audit(conn, caller, "admin.org.delete", "organization", found.id, sessions_ended=ended)
    return json_response(
        AdminOrgDeleted(id=found.id, deleted=True, sessions_ended=ended), headers=NO_STORE
    )


async def _set_status(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection, suspend: bool
) -> Response:
    change = orgs.suspend if suspend else orgs.resume
    org = await change(
        conn, request.path_params["org_id"], actor=actor_of(caller), meta=caller.meta
    )
    await _audit(
        conn, caller, "admin.org.suspend" if suspend else "admin.org.resume", "organization", org.id
    )
    return json_response(_org(org), headers=NO_STORE)


@admin_operation(
    Operation(
        "Suspend an organization: no new org-scoped token (sign-in, refresh,"
        " client_credentials) until it is resumed",
        responses={200: AdminOrg},
        errors=(404,),
    ),
    scope="admin:orgs:write",
)
async def suspend_org(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    return await _set_status(request, caller, conn, suspend=True)


@admin_operation(
    Operation("Resume a suspended organization", responses={200: AdminOrg}, errors=(404,)),
    scope="admin:orgs:write",
)
async def resume_org(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    return await _set_status(request, caller, conn, suspend=False)


@admin_operation(
    Operation(
        "An organization's members with their org roles (keyset pages by address)",
        query=ListQuery,
        responses={200: AdminMembers},
        errors=(404, 422),
    ),
    scope="admin:orgs:read",
)
async def list_members(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    q = query(request, ListQuery)
    page, more = await orgs.members(
        conn, request.path_params["org_id"], cursor=_page_after(q, "email"), limit=q.limit
    )
    return json_response(
        AdminMembers(
            items=[_member(m, m.email) for m in page],
            next_cursor=None if more is None else encode_cursor({"email": more}),
        ),
        headers=NO_STORE,
    )


@admin_operation(
    Operation(
        "Add a user to an organization with org roles (default: the org's default role)",
        body=AdminMemberAdd,
        responses={201: AdminMember},
        errors=(404, 409, *INPUT),
        idempotent=True,
    ),
    scope="admin:orgs:write",
)
async def add_member(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    data = await json_body(request, AdminMemberAdd)
    user = await resolve(conn, data.user_id)
    made = await orgs.add_member(
        conn,
        request.path_params["org_id"],
        user.id,
        roles=data.roles,
        via="api",
        actor=actor_of(caller),
        meta=caller.meta,
    )
    await _audit(
        conn,
        caller,
        "admin.org.member_add",
        "organization",
        made.org_id,
        user_id=user.sub,
        roles=made.roles,
    )
    return json_response(_member(made, user.email), 201, headers=NO_STORE)


@admin_operation(
    Operation(
        "Remove a member; their sessions scoped to the organization end",
        responses={204: None},
        errors=(404,),
    ),
    scope="admin:orgs:write",
)
async def remove_member(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    org = await orgs.require_org(conn, request.path_params["org_id"])
    user = await resolve(conn, request.path_params["user_id"])
    ended = await orgs.remove_member(
        conn, org.id, user.id, actor=actor_of(caller), meta=caller.meta
    )
    await _audit(
        conn,
        caller,
        "admin.org.member_remove",
        "organization",
        org.id,
        user_id=user.sub,
        sessions_ended=ended,
    )
    return Response(status_code=204, headers=NO_STORE)


@admin_operation(
    Operation(
        "An organization's open invitations (the token is only in the mail)",
        query=ListQuery,
        responses={200: AdminInvitations},
        errors=(404, 422),
    ),
    scope="admin:orgs:read",
)
async def list_invitations(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    q = query(request, ListQuery)
    after = decode_cursor(q.cursor, {"id": str})
    found = await invitations.list_open(conn, request.path_params["org_id"])
    # Open invitations are few per org (one per address): a keyset over the
    # service's order (newest first), in memory.
    if after is not None:
        ids = [str(i.id) for i in found]
        found = found[ids.index(after["id"]) + 1 :] if after["id"] in ids else []
    page = found[: q.limit]
    more = encode_cursor({"id": str(page[-1].id)}) if len(found) > q.limit else None
    return json_response(
        AdminInvitations(items=[_invitation(i) for i in page], next_cursor=more), headers=NO_STORE
    )


@admin_operation(
    Operation(
        "Invite an address with org roles: a single-use link is mailed (never answered)",
        body=AdminInvitationCreate,
        responses={201: AdminInvitation},
        errors=(403, 404, 409, *INPUT),
        idempotent=True,
    ),
    scope="admin:orgs:write",
)
async def invite(request: Request, caller: AdminCaller, conn: asyncpg.Connection) -> Response:
    data = await json_body(request, AdminInvitationCreate)
    services = Services.of(request)
    sender = invitations.OutboxSender(services.settings, caller.app, services.box)
    made, _token = await invitations.invite(
        sender,
        conn,
        request.path_params["org_id"],
        data.email,
        roles=data.roles,
        invited_by=actor_of(caller),
        ttl=data.ttl_days * 86400,
        meta=caller.meta,
    )
    await _audit(
        conn, caller, "admin.org.invite", "organization", made.org_id, invitation_id=str(made.id)
    )
    return json_response(_invitation(made), 201, headers=NO_STORE)


@admin_operation(
    Operation(
        "Revoke an open invitation: its link stops working", responses={204: None}, errors=(404,)
    ),
    scope="admin:orgs:write",
)
async def revoke_invitation(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    try:
        key = uuid.UUID(request.path_params["invitation_id"])
    except ValueError:
        raise InvitationNotFound(extra={"field": "invitation_id"}) from None
    done = await invitations.revoke(
        conn, request.path_params["org_id"], key, actor=actor_of(caller), meta=caller.meta
    )
    await _audit(
        conn,
        caller,
        "admin.org.invitation_revoke",
        "organization",
        done.org_id,
        invitation_id=str(key),
    )
    return Response(status_code=204, headers=NO_STORE)


def routes() -> list[BaseRoute]:
    p = PREFIX
    return [
        Route(f"{p}/roles", list_roles, methods=["GET"]),
        Route(f"{p}/roles", create_role, methods=["POST"]),
        Route(f"{p}/roles/{{name}}", show_role, methods=["GET"]),
        Route(f"{p}/roles/{{name}}", update_role, methods=["PATCH"]),
        Route(f"{p}/roles/{{name}}", delete_role, methods=["DELETE"]),
        Route(f"{p}/permissions", list_permissions, methods=["GET"]),
        Route(f"{p}/permissions", create_permission, methods=["POST"]),
        Route(f"{p}/permissions/{{name}}", delete_permission, methods=["DELETE"]),
        Route(f"{p}/users/{{user_id}}/roles/{{name}}", grant_role, methods=["POST"]),
        Route(f"{p}/users/{{user_id}}/roles/{{name}}", revoke_role, methods=["DELETE"]),
        Route(f"{p}/orgs", list_orgs, methods=["GET"]),
        Route(f"{p}/orgs", create_org, methods=["POST"]),
        Route(f"{p}/orgs/{{org_id}}", show_org, methods=["GET"]),
        Route(f"{p}/orgs/{{org_id}}", update_org, methods=["PATCH"]),
        Route(f"{p}/orgs/{{org_id}}", delete_org, methods=["DELETE"]),
        Route(f"{p}/orgs/{{org_id}}/suspend", suspend_org, methods=["POST"]),
        Route(f"{p}/orgs/{{org_id}}/resume", resume_org, methods=["POST"]),
        Route(f"{p}/orgs/{{org_id}}/members", list_members, methods=["GET"]),
        Route(f"{p}/orgs/{{org_id}}/members", add_member, methods=["POST"]),
        Route(f"{p}/orgs/{{org_id}}/members/{{user_id}}", remove_member, methods=["DELETE"]),
        Route(f"{p}/orgs/{{org_id}}/invitations", list_invitations, methods=["GET"]),
        Route(f"{p}/orgs/{{org_id}}/invitations", invite, methods=["POST"]),
        Route(
            f"{p}/orgs/{{org_id}}/invitations/{{invitation_id}}",
            revoke_invitation,
            methods=["DELETE"],
        ),
    ]
