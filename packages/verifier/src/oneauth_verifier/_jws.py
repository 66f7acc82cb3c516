"""Compact JWS parsing and JOSE header policy (RFC 7515, RFC 8725, RFC 9068 §4).

The parser handles untrusted input before any signature has been checked,
so it only decides whether the token is worth verifying and with which key;
the claims are decoded only once the signature holds. Validated headers are
cached by their encoded form: a resource server sees the same few headers
(one per signing key) over and over, so the header's JSON parse and policy
checks run once per key rather than once per request.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .errors import InvalidHeader, MalformedToken, TokenTooLarge

__all__ = ["Header", "JWSParser", "b64url_decode", "decode_claims"]

# RFC 9068 §4: typ must be "at+jwt" or "application/at+jwt"; media types
# compare case-insensitively (RFC 7515 §4.1.9). This is what stops an ID token
# (typ "JWT") from being replayed as an access token.
_ACCEPTED_TYP = frozenset({"at+jwt", "application/at+jwt"})

# Parameters that would let the token choose its own key (jku, jwk, x5u, x5c:
# RFC 8725 §3.10) or demand processing we do not implement (crit: RFC 7515
# §4.1.11; b64: RFC 7797; zip/enc only make sense for JWE). Rejected outright
# instead of ignored, so a misbehaving issuer is noticed.
_FORBIDDEN = frozenset({"jku", "jwk", "x5u", "x5c", "crit", "b64", "zip", "enc"})

_MAX_KID = 256
_HEADER_CACHE_SIZE = 128
_TO_STD = bytes.maketrans(b"-_", b"+/")
# Indexed by len(segment) % 4. A remainder of 1 is never valid; strict
# base64 decoding rejects it however it is padded.
_PAD = (b"", b"===", b"==", b"=")

# For a segment of length 4n+2 (resp. 4n+3) the last character carries 4
# (resp. 2) unused bits that must be zero (RFC 4648 §3.5). Without this, one
# signature has several spellings, making token strings malleable.
_CANONICAL_LAST = (None, None, frozenset(b"AQgw"), frozenset(b"AEIMQUYcgkosw048"))


@dataclass(frozen=True, slots=True)
class Header:
    """The header fields that matter once the policy checks have passed."""

    alg: str
    kid: str


def b64url_decode(segment: bytes) -> bytes:
    """Strict base64url without padding (RFC 7515 §2); raises ``MalformedToken``.

    The caller guarantees ASCII without ``+``, ``/`` and ``=``;
    ``strict_mode`` rejects every other non-alphabet byte.
    """
    try:
        return binascii.a2b_base64(
            segment.translate(_TO_STD) + _PAD[len(segment) & 3], strict_mode=True
        )
    except binascii.Error:
        raise MalformedToken("invalid base64url segment") from None


def _reject_constant(name: str) -> Any:
    raise ValueError("non-finite number")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # RFC 7515 §4: header parameter names MUST be unique; a parser that keeps
    # the first while another keeps the last is a classic confusion vector.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate member")
    return obj


_HEADER_DECODER = json.JSONDecoder(
    object_pairs_hook=_no_duplicates, parse_constant=_reject_constant
)
# Claims may repeat a name: RFC 7519 §4 allows keeping the last, which is
# what a dict does. NaN/Infinity are not JSON and would defeat the exp check.
_CLAIMS_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_raw_decode = _CLAIMS_DECODER.raw_decode


# A JOSE header is a flat object (the parameters we accept are strings); the
# stdlib parser recurses per level, so a header of 5,000 "[" would otherwise
# raise RecursionError, which is no ValueError, out of verify().
_MAX_HEADER_DEPTH = 4


def _too_deep(value: Any, limit: int) -> bool:
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth >= limit:
                return True
            items = node.values() if isinstance(node, dict) else node
            stack.extend((item, depth + 1) for item in items)
    return False


def decode_claims(segment: str) -> dict[str, Any]:
    """Decode the payload segment into a JSON object (RFC 7519 §7.2 steps 9-10).

    Call only after the signature has been verified.
    """
    raw = segment.encode("ascii")
    try:
        # b64url_decode inlined: this runs on every request.
        text = binascii.a2b_base64(
            raw.translate(_TO_STD) + _PAD[len(raw) & 3], strict_mode=True
        ).decode("utf-8")
    except binascii.Error:
        raise MalformedToken("invalid base64url segment") from None
    except UnicodeDecodeError:
        raise MalformedToken("claims are not UTF-8") from None
    # raw_decode skips decode()'s two whitespace regex passes. Whatever it
    # does not accept in full (surrounding whitespace, junk) takes the exact
    # path, which accepts precisely the valid JSON texts.
    # RecursionError: only a signer can nest the payload, but a verifier says
    # "malformed" rather than raise something its callers do not expect.
    try:
        claims, end = _raw_decode(text)
    except (ValueError, RecursionError):
        end = -1
    if end != len(text):
        try:
            claims = _CLAIMS_DECODER.decode(text)
        except (ValueError, RecursionError):
            raise MalformedToken("claims are not valid JSON") from None
    if type(claims) is not dict:
        raise MalformedToken("claims are not a JSON object")
    return claims


class JWSParser:
    """Splits a compact JWS and applies the header policy of one verifier."""

    __slots__ = ("_algorithms", "_cache", "_max_bytes")

    def __init__(self, algorithms: Iterable[str], max_bytes: int) -> None:
        self._algorithms = frozenset(algorithms)
        self._max_bytes = max_bytes
        self._cache: dict[str, Header] = {}

    def parse(self, token: str) -> tuple[Header, bytes, str, bytes]:
        """Return ``(header, signing_input, payload_segment, signature)``.

        Check order follows RFC 8725 §3.1/§3.11 and RFC 9068 §4: size cap,
        compact form, then alg, kid, typ and forbidden parameters.
        """
        if not isinstance(token, str):
            raise MalformedToken("token must be a string")
        # Bound all later work (base64, JSON, hashing) by a cheap length check.
        if len(token) > self._max_bytes:
            raise TokenTooLarge("token exceeds the size limit")
        header_seg, _, rest = token.partition(".")
        payload_seg, dot, sig_seg = rest.partition(".")
        if not dot or "." in sig_seg:
            if token.count(".") == 4:
                raise MalformedToken("encrypted tokens (JWE) are not accepted")
            raise MalformedToken("token is not a compact JWS")
        # Base64url only (RFC 7515 §2): no padding, no standard alphabet.
        # Other stray characters are caught by the strict decoder.
        if not token.isascii() or "+" in token or "/" in token or "=" in token:
            raise MalformedToken("token is not base64url")
        header = self._cache.get(header_seg)
        if header is None:
            header = self._check_header(header_seg)
            if len(self._cache) >= _HEADER_CACHE_SIZE:
                # Distinct headers mean distinct keys; overflow means junk
                # traffic, and dropping everything is a fine response to that.
                self._cache.clear()
            self._cache[header_seg] = header
        if not payload_seg or not sig_seg:
            raise MalformedToken("empty payload or signature")
        raw_sig = sig_seg.encode("ascii")
        canonical = _CANONICAL_LAST[len(raw_sig) & 3]
        if canonical is not None and raw_sig[-1] not in canonical:
            raise MalformedToken("non-canonical signature encoding")
        signing_input = token[: len(header_seg) + 1 + len(payload_seg)].encode("ascii")
        try:
            # b64url_decode inlined: this runs on every request.
            signature = binascii.a2b_base64(
                raw_sig.translate(_TO_STD) + _PAD[len(raw_sig) & 3], strict_mode=True
            )
        except binascii.Error:
            raise MalformedToken("invalid base64url segment") from None
        return header, signing_input, payload_seg, signature

    def _check_header(self, segment: str) -> Header:
        try:
            obj = _HEADER_DECODER.decode(b64url_decode(segment.encode("ascii")).decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise MalformedToken("header is not valid JSON") from None
        if not isinstance(obj, dict):
            raise MalformedToken("header is not a JSON object")
        if _too_deep(obj, _MAX_HEADER_DEPTH):
            raise MalformedToken("header is nested too deep")
        alg = obj.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise InvalidHeader("alg not allowed", check="alg")
        kid = obj.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > _MAX_KID:
            raise InvalidHeader("kid missing or invalid", check="kid")
        typ = obj.get("typ")
        if not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYP:
            raise InvalidHeader("typ is not at+jwt", check="typ")
        if not _FORBIDDEN.isdisjoint(obj):
            raise InvalidHeader("forbidden header parameter", check="header")
        return Header(alg=alg, kid=kid)
