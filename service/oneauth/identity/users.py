"""Users of one app: the repository (SQL) and email normalization (B5).

Every function takes a connection already inside the app's context (router).
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import idna

# Deliberately permissive (RFC 5321 allows far more than any regex should
# judge); deliverability is what email verification proves.
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s.]{2,}")
_ASCII_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")

# Controls (Cc), format characters (Cf: soft hyphen, zero-width space and
# joiners, word joiner, BOM, bidi embeddings, overrides and isolates), lone
# surrogates, private use, unassigned, and every separator: invisible or
# ambiguous in an address, so two spellings would look like one mailbox.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})
# Default_Ignorable_Code_Point characters outside Cf (Unicode PropList): the
# combining grapheme joiner, Hangul fillers, Khmer inherent vowels, Mongolian
# variation selectors, variation selectors.
_IGNORABLE = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u3164\uffa0"
    + "".join(map(chr, range(0xFE00, 0xFE10)))
    + "".join(map(chr, range(0xE0100, 0xE01F0)))
)
# Address-list and display-name syntax (RFC 5322 section 3.4): "a@x.com,b@y.com",
# "a@x.com;b@y.com", '"a@x" <b@y>', comments, quoted local parts and literals.
_LIST_SYNTAX = frozenset(',;<>"()[]\\:')


class InvalidEmail(ValueError):
    pass


def _refuse_hidden(text: str) -> None:
    for ch in text:
        if ch in _LIST_SYNTAX:
            raise InvalidEmail("give one email address, without a name, list or quotes")
        if unicodedata.category(ch) in _HIDDEN_CATEGORIES or ch in _IGNORABLE:
            raise InvalidEmail("the address contains a space, an invisible or a control character")


def _fold_domain(domain: str) -> str:
    """One spelling per domain: lower case, IDNs as U-labels (``xn--tda.example``
    and ``ü.example`` are one domain) by UTS-46 and IDNA 2008 (RFC 5891)."""
    lowered = domain.lower()
    if lowered.isascii() and "xn--" not in lowered:
        if all(_ASCII_LABEL.fullmatch(label) for label in lowered.split(".")):
            return lowered
        raise InvalidEmail("not a valid email address")
    try:
        return idna.decode(idna.encode(unicodedata.normalize("NFC", domain), uts46=True))
    except idna.IDNAError:  # a UnicodeError
        raise InvalidEmail("not a valid email address") from None


def normalize_email(email: str) -> str:
    """The per-app identity key (B5): one key per mailbox, and no lookalikes.

    Refused: invisible, control and separator characters anywhere (before and
    after NFKC, which turns fullwidth forms into ``@`` or ``,``), lists and
    display names, more than one ``@``. The local part is NFKC and lower-cased:
    ``Ada@`` and ``ada@`` are one account, as with nearly every mail provider
    (RFC 5321 lets the receiving host decide; one account per spelling would
    let a lookalike sign up). The domain is folded by :func:`_fold_domain`.
    """
    if not isinstance(email, str):
        raise InvalidEmail("email must be a string")
    text = email.strip()
    _refuse_hidden(text)
    text = unicodedata.normalize("NFKC", text)
    _refuse_hidden(text)
    local, at, domain = text.rpartition("@")
    if not at or not local or "@" in local:
        raise InvalidEmail("not a valid email address")
    normalized = f"{local.lower()}@{_fold_domain(domain)}"
    if len(normalized) > 254 or _EMAIL.fullmatch(normalized) is None:
        raise InvalidEmail("not a valid email address")
    return normalized


def stored_email_key(email: str) -> str:
    """The key of an address already stored: ``normalize_email``, never raising.

    A row written under older rules (before invisible characters were refused)
    still gets a stable key for throttles and mail, instead of failing its flow.
    """
    try:
        return normalize_email(email)
    except InvalidEmail:
        return email.strip().lower()


@dataclass(frozen=True, slots=True)
class User:
    id: uuid.UUID
    email: str
    email_verified: bool
    password_hash: str | None
    status: str
    created_at: datetime
    updated_at: datetime
    password_changed_at: datetime | None

    @property
    def sub(self) -> str:
        return str(self.id)

    def public(self) -> dict[str, object]:
        return {
            "id": self.sub,
            "email": self.email,
            "email_verified": self.email_verified,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


COLUMNS = (
    "id, email, email_verified, password_hash, status, created_at, updated_at, password_changed_at"
)


def _user(row: asyncpg.Record | None) -> User | None:
    return None if row is None else User(*row.values())


async def by_email(conn: asyncpg.Connection, email_normalized: str) -> User | None:
    return _user(
        await conn.fetchrow(
            f"SELECT {COLUMNS} FROM users WHERE email_normalized = $1", email_normalized
        )
    )


async def by_id(conn: asyncpg.Connection, user_id: uuid.UUID | str) -> User | None:
    try:
        key = user_id if isinstance(user_id, uuid.UUID) else uuid.UUID(user_id)
    except ValueError:
        return None
    return _user(await conn.fetchrow(f"SELECT {COLUMNS} FROM users WHERE id = $1", key))


async def create(
    conn: asyncpg.Connection, *, email: str, email_normalized: str, password_hash: str
) -> User | None:
    """Insert a user; None if the normalized email is taken in this app."""
    return _user(
        await conn.fetchrow(
            "INSERT INTO users (email, email_normalized, password_hash, password_changed_at)"
            " VALUES ($1, $2, $3, now()) ON CONFLICT (email_normalized) DO NOTHING"
            f" RETURNING {COLUMNS}",
            email.strip(),
            email_normalized,
            password_hash,
        )
    )


async def set_password(
    conn: asyncpg.Connection, user_id: uuid.UUID, password_hash: str, *, changed: bool = True
) -> None:
    """Store a new hash; ``changed=False`` for a rehash of the same password."""
    if changed:
        await conn.execute(
            "UPDATE users SET password_hash = $2, password_changed_at = now(), updated_at = now()"
            " WHERE id = $1",
            user_id,
            password_hash,
        )
    else:
        await conn.execute(
            "UPDATE users SET password_hash = $2 WHERE id = $1", user_id, password_hash
        )


async def password_still(
    conn: asyncpg.Connection, user_id: uuid.UUID, password_hash: str | None
) -> bool:
    """The user still has this password hash; locks the row for the transaction,
    so a concurrent first proof (P7) or reset waits, or this sees its result."""
    current = await conn.fetchrow(
        "SELECT password_hash FROM users WHERE id = $1 FOR NO KEY UPDATE", user_id
    )
    return (
        current is not None
        and password_hash is not None
        and current["password_hash"] == password_hash
    )


async def still_then_touch(
    conn: asyncpg.Connection, user_id: uuid.UUID, password_hash: str | None
) -> bool:
    """``password_still`` and ``touch_login`` in one statement, for a sign-in that
    goes on when the hash is unchanged: the UPDATE locks the row as the read did
    (a concurrent first proof or reset waits, or this sees its result) and stamps
    it only then; the stamp commits or rolls back with the sign-in."""
    if password_hash is None:
        return False
    stamped = await conn.fetchval(
        "UPDATE users SET last_login_at = now() WHERE id = $1 AND password_hash = $2"
        " RETURNING true",
        user_id,
        password_hash,
    )
    return stamped is True


async def touch_login(conn: asyncpg.Connection, user_id: uuid.UUID) -> None:
    await conn.execute("UPDATE users SET last_login_at = now() WHERE id = $1", user_id)
