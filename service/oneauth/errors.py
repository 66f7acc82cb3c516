"""One error format for the whole API: RFC 9457 problem details.

Every error carries a stable snake_case ``code``; clients branch on the code,
never on the human text. OAuth endpoints answer in RFC 6749 section 5.2 format
instead (see ``oneauth.oauth.errors``).
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_CONTENT_TYPE = "application/problem+json"


class ApiError(Exception):
    """Base class: subclasses set ``code``, ``status`` and ``title``."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extra = extra or {}

    def to_problem(self, request_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"urn:oneauth:error:{self.code}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        }
        if request_id:
            body["request_id"] = request_id
        body.update(self.extra)
        return body


class BadRequest(ApiError):
    code, status, title = "bad_request", 400, "Bad request"


class InvalidJson(ApiError):
    code, status, title = "invalid_json", 400, "Request body is not valid JSON"


class ValidationFailed(ApiError):
    code, status, title = "validation_failed", 422, "Request failed validation"


class Unauthorized(ApiError):
    code, status, title = "unauthorized", 401, "Authentication required"


class InvalidCredentials(ApiError):
    code, status, title = "invalid_credentials", 401, "Invalid email or password"


class InvalidToken(ApiError):
    code, status, title = "invalid_token", 401, "The access token is invalid"


class Forbidden(ApiError):
    code, status, title = "forbidden", 403, "Forbidden"


class WrongClient(ApiError):
    # A first-party route (/v1/...) and a token of a third-party client: the
    # app's own API is not part of what a user grants other clients (item 4).
    code, status, title = "wrong_client", 403, "This token's client may not use this endpoint"


class InsufficientScope(ApiError):
    code, status, title = "insufficient_scope", 403, "The access token lacks a needed scope"


class NotFound(ApiError):
    code, status, title = "not_found", 404, "Not found"


class OrgUnavailable(ApiError):
    # A token for an organization (issue 13) that is unknown in this app,
    # suspended, or that the user is not a member of: one answer for all three,
    # so nobody learns from it that another app's or a foreign org exists.
    code, status, title = (
        "org_unavailable",
        403,
        "The organization is unknown, suspended, or you are not a member",
    )


class AppNotFound(ApiError):
    # Unknown, suspended and deleted apps look the same from outside: fail closed.
    code, status, title = "app_not_found", 404, "No such app"


class AppUnavailable(ApiError):
    # The app's schema is behind this release (its migration failed or has not
    # run): it fails closed alone while every other app keeps serving.
    code, status, title = "app_unavailable", 503, "App temporarily unavailable"


class MethodNotAllowed(ApiError):
    code, status, title = "method_not_allowed", 405, "Method not allowed"


class Conflict(ApiError):
    code, status, title = "conflict", 409, "Conflict"


class OrgNotFound(NotFound):
    # Unknown org, another app's org, and an org the caller is not a member of
    # look the same (B1): the answer never says that the org exists.
    code, status, title = "org_not_found", 404, "No such organization"


class OrgPermissionRequired(Forbidden):
    # Checked against a permission name (org:members:write ...), never a role name.
    code, status, title = (
        "org_permission_required",
        403,
        "Your organization roles do not allow this",
    )


class OrgSuspended(Forbidden):
    code, status, title = "org_suspended", 403, "This organization is suspended"


class OrgSlugTaken(Conflict):
    code, status, title = "org_slug_taken", 409, "Another organization of this app has this slug"


class RoleNotFound(NotFound):
    code, status, title = "role_not_found", 404, "No such role"


class RoleExists(Conflict):
    code, status, title = "role_exists", 409, "A role with this name exists"


class UserNotFound(NotFound):
    # Operator and org-admin surfaces only; sign-in and sign-up never say this (P4).
    code, status, title = "user_not_found", 404, "No such user"


class MemberNotFound(NotFound):
    code, status, title = "member_not_found", 404, "Not a member of this organization"


class AlreadyMember(Conflict):
    code, status, title = "already_member", 409, "Already a member of this organization"


class LastOrgManager(Conflict):
    # A member may not remove or demote the last member who can manage members:
    # the org would be left to the operator alone.
    code, status, title = (
        "last_org_manager",
        409,
        "This is the last member who can manage members; give the permission to another first",
    )


class InvitationNotFound(NotFound):
    code, status, title = "invitation_not_found", 404, "No such open invitation"


class InvitationInvalid(BadRequest):
    # One answer for unknown, used, expired, revoked and other apps' invitations.
    code, status, title = (
        "invitation_invalid",
        400,
        "This invitation is invalid, was used, revoked or has expired",
    )


class InvitationEmailMismatch(Forbidden):
    code, status, title = (
        "invitation_email_mismatch",
        403,
        "This invitation is for another email address; sign in with that one",
    )


class DomainNotFound(NotFound):
    code, status, title = "domain_not_found", 404, "This organization has no such domain"


class DomainTaken(Conflict):
    # A verified domain belongs to one organization of the app at most.
    code, status, title = "domain_taken", 409, "Another organization has verified this domain"


class PermissionNotFound(NotFound):
    code, status, title = "permission_not_found", 404, "No such permission"


class PermissionExists(Conflict):
    code, status, title = "permission_exists", 409, "A permission with this name exists"


class ClientNotFound(NotFound):
    # The admin API (issue 15): another app's client id is unknown here too (B1).
    code, status, title = "client_not_found", 404, "No such client"


class ProviderNotFound(NotFound):
    code, status, title = "provider_not_found", 404, "No such identity provider"


class KeyRotationRefused(Conflict):
    # A normal rotation would promote a next key that may not be in every cached JWKS yet.
    code, status, title = "key_rotation_refused", 409, "The key rotation was refused"


class PayloadTooLarge(ApiError):
    code, status, title = "payload_too_large", 413, "Request body too large"


class UnsupportedMediaType(ApiError):
    code, status, title = "unsupported_media_type", 415, "Unsupported media type"


class WeakPasswordError(ApiError):
    code, status, title = "weak_password", 422, "Password does not meet the policy"


class TooManyRequests(ApiError):
    code, status, title = "too_many_requests", 429, "Too many requests"


class ServiceUnavailable(ApiError):
    code, status, title = "service_unavailable", 503, "Service temporarily unavailable"


class EmailTaken(ApiError):
    # Only when the app lets signup log in at once (require_verified_email=false);
    # otherwise signup answers the same for new and existing addresses.
    code, status, title = "email_taken", 409, "This email cannot be used to sign up"


class SignupDisabled(ApiError):
    # The app's policy self_signup is false (invitation-only). Says nothing about
    # any account: every address gets it, before the address is even parsed.
    code, status, title = "signup_disabled", 403, "This app does not offer sign-up"


class EmailNotVerified(ApiError):
    code, status, title = "email_not_verified", 403, "Verify your email address first"


class InvalidLinkOrCode(ApiError):
    # One answer for unknown, expired, used, locked and other apps' links and
    # codes (P5, B1): the caller learns nothing about which it was.
    code, status, title = "invalid_link_or_code", 400, "The link or code is invalid or has expired"


class FeatureDisabled(ApiError):
    code, status, title = "feature_disabled", 403, "This feature is not enabled for this app"


class FlowExpired(ApiError):
    # One answer for unknown, expired, completed and other callers' (or other
    # apps') flow tokens: the caller learns nothing about which it was.
    code, status, title = "flow_expired", 400, "This sign-in has expired; start again"


class MfaRequired(ApiError):
    # The first factor was right; a second one is needed. ``extra`` carries the
    # ``flow_token`` to continue with and the ``factors`` the user can use.
    code, status, title = "mfa_required", 403, "A second factor is required"


class MfaEnrollmentRequired(ApiError):
    # The app requires a second factor and the user has none: the ``flow_token``
    # authorizes only the enrolment calls, then the flow completes.
    code, status, title = "mfa_enrollment_required", 403, "Set up a second factor to continue"


class InsufficientUserAuthentication(ApiError):
    # RFC 9470: the sign-in behind the token is too old or used too few factors
    # for this call; sign in again (with the second factor) and retry.
    code, status, title = (
        "insufficient_user_authentication",
        403,
        "A more recent or stronger sign-in is required",
    )


class InvalidCode(ApiError):
    # A second-factor code (TOTP or recovery): one answer for wrong, reused and
    # expired codes.
    code, status, title = "invalid_code", 400, "The code is not right, was already used, or expired"


class UnknownProvider(ApiError):
    # A provider id this app does not have (or has disabled): the same answer
    # for both, and a provider id of app A names nothing at app B.
    code, status, title = "unknown_provider", 404, "No such sign-in provider"


class UpstreamUnavailable(ApiError):
    # The app's upstream identity provider did not answer in time (or answered
    # nonsense); nothing was started or created. Try again later.
    code, status, title = "upstream_unavailable", 503, "The sign-in provider is not answering"
