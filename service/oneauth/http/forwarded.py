"""The client's address behind trusted proxies (X-Forwarded-For, RFC 7239 Forwarded).

Headers are believed only when the TCP peer is one of ``ONEAUTH_TRUSTED_PROXIES``.
The client is then the right-most hop that is not a trusted proxy: every hop to
its right was added by a proxy we trust, everything to its left may be made up
by the client. When every hop is trusted the left-most one is taken. A header
that does not parse, or two headers that name different clients, are ignored
(the peer is the client): a made-up header can then only put its sender in the
proxy's throttle bucket, never in another client's.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_HEADER = 8192
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
# RFC 7239 section 4: forwarded-pair = token "=" value; value = token / quoted-string
_PAIR = re.compile(rf'\s*({_TOKEN})=({_TOKEN}|"(?:[^"\\]|\\.)*")\s*')
_UNESCAPE = re.compile(r"\\(.)")


class Malformed(ValueError):
    pass


def networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


def client_address(
    peer: str | None,
    headers: Iterable[tuple[bytes, bytes]],
    trusted: Sequence[IPNetwork],
) -> str | None:
    """The address to treat as the client's (the peer unless a trusted proxy says more)."""
    if not trusted or peer is None:
        return peer
    peer_ip = _parse_ip(peer)
    if peer_ip is None or not _is_trusted(peer_ip, trusted):
        return peer
    xff: list[str] = []
    fwd: list[str] = []
    for name, value in headers:
        if name == b"x-forwarded-for":
            xff.append(value.decode("latin-1"))
        elif name == b"forwarded":
            fwd.append(value.decode("latin-1"))
    try:
        chosen = set()
        if xff:
            chosen.add(_pick(_xff_hops(",".join(xff)), trusted))
        if fwd:
            hops = _forwarded_hops(",".join(fwd))
            if hops:
                chosen.add(_pick(hops, trusted))
    except Malformed:
        return peer
    if len(chosen) != 1:  # no header, or two that disagree: neither is believed
        return peer
    return str(chosen.pop())


def _pick(hops: Sequence[IPAddress], trusted: Sequence[IPNetwork]) -> IPAddress:
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop
    return hops[0]


def _is_trusted(ip: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(ip.version == net.version and ip in net for net in trusted)


def _parse_ip(text: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
    return ip


def _node(text: str) -> IPAddress:
    """One hop: ``1.2.3.4``, ``1.2.3.4:80``, ``2001:db8::1``, ``[2001:db8::1]:80``."""
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not (rest[0] == ":" and rest[1:].isdigit())):
            raise Malformed(text)
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
        if not port.isdigit():
            raise Malformed(text)
    else:
        host = text
    ip = _parse_ip(host)
    if ip is None:  # also "unknown" and obfuscated identifiers (RFC 7239 section 6)
        raise Malformed(text)
    return ip


def _xff_hops(value: str) -> list[IPAddress]:
    if len(value) > MAX_HEADER:
        raise Malformed("too long")
    return [_node(part) for part in value.split(",")]


def _forwarded_hops(value: str) -> list[IPAddress]:
    """The ``for=`` nodes of every element, left to right; [] if no element has one."""
    if len(value) > MAX_HEADER:
        raise Malformed("too long")
    elements: list[dict[str, str]] = [{}]
    pos = 0
    while True:
        match = _PAIR.match(value, pos)
        if match is None:
            raise Malformed(value)
        key, raw = match.group(1).lower(), match.group(2)
        if raw.startswith('"'):
            raw = _UNESCAPE.sub(r"\1", raw[1:-1])
        if key in elements[-1]:
            raise Malformed(value)  # a parameter twice in one element
        elements[-1][key] = raw
        pos = match.end()
        if pos == len(value):
            break
        if value[pos] == ",":
            elements.append({})
        elif value[pos] != ";":
            raise Malformed(value)
        pos += 1
    with_for = [e["for"] for e in elements if "for" in e]
    if not with_for:
        return []  # e.g. only proto=https: says nothing about clients
    if len(with_for) != len(elements):
        raise Malformed(value)  # a hop that does not say who it forwarded for
    return [_node(v) for v in with_for]
