"""Which URLs a webhook may be sent to (SECURITY.md W-H3: no SSRF).

An endpoint URL is chosen by an app's administrator, and the worker sends from
inside the service's network, so a URL must not let an admin reach what only
the service can: the metadata service, the database, loopback admin ports.

* HTTPS only. Plain http is allowed in env development/test for loopback
  receivers only (http://127.0.0.1, http://localhost, http://[::1]).
* Outside development/test, every address the host name resolves to must be a
  public unicast address (no private, loopback, link-local, CGNAT, multicast,
  reserved, or IPv4-mapped forms of those), and the worker connects to the
  very address it checked (the request goes to that IP, with the host name
  as Host header and TLS server name), so a DNS answer that changes between
  the check and the connection (rebinding) cannot redirect it.
* No credentials in the URL, no fragments. Redirects are never followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit, urlunsplit

from oneauth.settings import Settings

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_URL_LENGTH = 2000

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UrlRefused(ValueError):
    """This URL may not receive webhooks (the message says why, never an address list)."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where one request goes: the URL to connect to (host = checked IP) and the
    name to present (Host header, TLS SNI and certificate check)."""

    connect_url: str
    host_header: str
    server_name: str


def relaxed(settings: Settings) -> bool:
    return settings.env in ("development", "test")


def is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return is_public(mapped)
        if address.teredo is not None:
            return False
    return address.is_global and not address.is_multicast and not address.is_reserved


def check_url(settings: Settings, url: str) -> SplitResult:
    """Syntax and policy, without DNS: used when an endpoint is created or updated."""
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused("the URL is too long")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UrlRefused("not a valid URL") from None
    host = (parts.hostname or "").lower()
    if not host or parts.scheme not in ("https", "http"):
        raise UrlRefused("the URL must be https://host/...")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("the URL must not carry credentials")
    if parts.fragment or "#" in url:
        raise UrlRefused("the URL must not have a fragment")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise UrlRefused("not a valid URL")
    if parts.scheme == "http" and not (relaxed(settings) and host in LOOPBACK_HOSTS):
        raise UrlRefused("the URL must use https (http only to 127.0.0.1 in development/test)")
    if port == 0:
        raise UrlRefused("not a valid port")
    if not relaxed(settings):
        if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
            raise UrlRefused("the URL must name a public host")
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None and not is_public(literal):
            raise UrlRefused("the URL must name a public address")
    return parts


async def resolve(settings: Settings, url: str) -> Target:
    """Check the URL, resolve its host and check every address; the one to connect to."""
    parts = check_url(settings, url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise LookupError("the host name does not resolve") from None
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses:
        raise LookupError("the host name does not resolve")
    if not relaxed(settings) and not all(is_public(a) for a in addresses):
        # All, not any: a name with one private answer is refused outright.
        raise UrlRefused("the host resolves to a non-public address")
    chosen = addresses[0]
    literal = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    connect = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = parts.netloc.rsplit("@", 1)[-1]
    return Target(connect, host_header, host)
