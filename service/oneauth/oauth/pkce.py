"""Proof Key for Code Exchange, S256 only (RFC 7636, https://www.rfc-editor.org/rfc/rfc7636).

Every client, public or confidential, must send a challenge (RFC 9700 section
2.1.1, O2). ``plain`` is refused: it protects nothing once the authorization
request leaks, which is the attack PKCE exists for.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

METHOD = "S256"

# Section 4.2: BASE64URL(SHA256(verifier)) is always 43 characters.
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
# Section 4.1: code-verifier = 43*128unreserved, unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")


def valid_challenge(challenge: str) -> bool:
    return _CHALLENGE.fullmatch(challenge) is not None


def s256(verifier: str) -> str:
    """Section 4.2: ``code_challenge = BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))``."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verify(verifier: str | None, challenge: str) -> bool:
    """Section 4.6: the server recomputes the challenge from the verifier and compares."""
    if verifier is None or _VERIFIER.fullmatch(verifier) is None:
        return False
    return hmac.compare_digest(s256(verifier), challenge)
