"""app_id rules and the one mapping from app_id to schema and role names.

Security requirement B3: the mapping app_id -> schema/role is validated and
injective and lives here only. Nothing else in the code base builds a schema or
role name.

D2: schemas live in one database, but roles are cluster-wide, so an app's role
carries its installation's role namespace (``oneauth.installation``): two
installations on one cluster can both provision ``shop``. The namespace is
letters and digits only and the app part never holds two underscores in a row,
so ``oneauth_<namespace>__<app>`` is injective, and never equals a legacy name
(``oneauth_app_<app>``, namespace ``''``, apps provisioned before namespaces),
which has no ``__`` at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Lowercase ASCII letter first, then letters, digits and single hyphens, no
# trailing hyphen; 3..40 characters. Underscores are not allowed, which is what
# makes "replace - with _" injective.
_APP_ID = re.compile(r"[a-z](?:[a-z0-9]|-(?=[a-z0-9])){2,39}", re.ASCII)

# A namespace: a lowercase letter, then 2-11 letters or digits. At 12 characters
# and a 40-character app_id the role name has 62 bytes (Postgres' limit is 63).
_NAMESPACE = re.compile(r"[a-z][a-z0-9]{2,11}", re.ASCII)

SCHEMA_PREFIX = "app_"
ROLE_PREFIX = "oneauth_app_"  # legacy roles: namespace ''
NAMESPACED_ROLE_PREFIX = "oneauth_"
NAMESPACE_SEPARATOR = "__"
CONTROL_SCHEMA = "oneauth"

# The control plane is an app of its own (``oneauth platform init``) served at
# ``/platform``, not ``/apps/platform``. These ids are never provisioned as
# ordinary apps, and the ``/apps/{app_id}`` gate answers 404 for them, so no
# customer app can take the control plane's name or pose as its console (B3).
PLATFORM_APP_ID = "platform"
RESERVED_APP_IDS = frozenset({PLATFORM_APP_ID, "console", "admin"})


class InvalidAppId(ValueError):
    """The app_id breaks the naming rules; the message says which."""


@dataclass(frozen=True, slots=True)
class AppNames:
    app_id: str
    schema: str
    role: str


def validate_app_id(app_id: object) -> str:
    """Return app_id unchanged if it follows the rules, else raise InvalidAppId."""
    if not isinstance(app_id, str):
        raise InvalidAppId("app_id must be a string")
    if not 3 <= len(app_id) <= 40:
        raise InvalidAppId("app_id must be 3 to 40 characters long")
    if _APP_ID.fullmatch(app_id) is None:
        raise InvalidAppId(
            "app_id must start with a lowercase letter and contain only lowercase "
            "letters a-z, digits and single hyphens (not at the end)"
        )
    return app_id


def validate_new_app_id(app_id: object) -> str:
    """``validate_app_id`` for an app about to be provisioned: reserved ids are refused."""
    validate_app_id(app_id)
    assert isinstance(app_id, str)
    if app_id in RESERVED_APP_IDS:
        raise InvalidAppId(
            f"app_id {app_id!r} is reserved for oneauth's control plane "
            f"(reserved: {', '.join(sorted(RESERVED_APP_IDS))})"
        )
    return app_id


def is_reserved_app_id(app_id: object) -> bool:
    return app_id in RESERVED_APP_IDS


def is_valid_app_id(app_id: object) -> bool:
    try:
        validate_app_id(app_id)
    except InvalidAppId:
        return False
    return True


class InvalidNamespace(ValueError):
    """The role namespace breaks the naming rules."""


def validate_namespace(namespace: object) -> str:
    """Return the namespace unchanged if valid ('' is the legacy, empty namespace)."""
    if namespace == "":
        return ""
    if not isinstance(namespace, str) or _NAMESPACE.fullmatch(namespace) is None:
        raise InvalidNamespace(
            "role namespace must be 3 to 12 characters: a lowercase letter, then "
            "lowercase letters a-z and digits"
        )
    return namespace


def names_for(app_id: str, namespace: str = "") -> AppNames:
    """The schema and role of an app. The only place these names are built."""
    validate_app_id(app_id)
    validate_namespace(namespace)
    suffix = app_id.replace("-", "_")
    if namespace:
        role = NAMESPACED_ROLE_PREFIX + namespace + NAMESPACE_SEPARATOR + suffix
    else:
        role = ROLE_PREFIX + suffix
    return AppNames(app_id=app_id, schema=SCHEMA_PREFIX + suffix, role=role)


def quote_ident(name: str) -> str:
    """Quote a validated identifier for SQL text (names_for output only has [a-z0-9_])."""
    if re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name, re.ASCII) is None:
        raise ValueError(f"refusing to quote unexpected identifier {name!r}")
    return '"' + name + '"'
