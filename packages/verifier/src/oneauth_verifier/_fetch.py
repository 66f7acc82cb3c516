"""Fetching an issuer's JWKS, via OpenID Connect discovery unless told the URI.

Sync and async flavours share every rule; only the I/O differs. Without a
caller-provided client a short-lived one is used per fetch: fetches happen
every few minutes, and a private client has no event loop or lifetime to
get wrong.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from typing import Any

import httpx

from .errors import DiscoveryError, JWKSUnavailable

__all__ = ["JWKSFetcher"]

# Discovery documents and key sets are small; a cap keeps a misbehaving or
# hijacked endpoint from making every resource server buffer gigabytes.
MAX_DOCUMENT_BYTES = 512 * 1024
_HEADERS = {"Accept": "application/json"}
_SSL_CONTEXT: ssl.SSLContext | None = None


def _check_status(url: str, status: int) -> None:
    # Redirects are not followed (httpx default): the issuer serves these
    # documents itself, and a redirect elsewhere is not to be trusted blindly.
    if status != 200:
        raise JWKSUnavailable(f"GET {url} returned HTTP {status}")


def _parse_body(url: str, body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        raise JWKSUnavailable(f"GET {url} returned invalid JSON") from None
    if not isinstance(doc, dict):
        raise JWKSUnavailable(f"GET {url} did not return a JSON object")
    return doc


def _too_large(url: str) -> JWKSUnavailable:
    return JWKSUnavailable(f"GET {url} returned more than {MAX_DOCUMENT_BYTES} bytes")


class JWKSFetcher:
    """Resolves ``jwks_uri`` (once) and downloads the key set document."""

    def __init__(
        self,
        issuer: str,
        jwks_uri: str | None,
        *,
        timeout: float,
        client: httpx.Client | None,
        async_client: httpx.AsyncClient | None,
    ) -> None:
        self._issuer = issuer
        self._jwks_uri = jwks_uri
        self._timeout = timeout
        self._client = client
        self._async_client = async_client

    @property
    def discovery_url(self) -> str:
        # OIDC Discovery §4: issuer (without trailing slash) + well-known path.
        return self._issuer.rstrip("/") + "/.well-known/openid-configuration"

    def fetch(self) -> Mapping[str, Any]:
        """Return the JWKS document; raise ``JWKSUnavailable`` on any failure."""
        if self._client is not None:
            return self._fetch_with(self._client)
        with httpx.Client(timeout=self._timeout, verify=self._ssl_context()) as client:
            return self._fetch_with(client)

    async def afetch(self) -> Mapping[str, Any]:
        """Async :meth:`fetch`."""
        if self._async_client is not None:
            return await self._afetch_with(self._async_client)
        async with httpx.AsyncClient(timeout=self._timeout, verify=self._ssl_context()) as client:
            return await self._afetch_with(client)

    @staticmethod
    def _ssl_context() -> ssl.SSLContext:
        # Building a context (loading the CA bundle) costs ~20 ms, more than
        # the fetch itself; all per-fetch clients share one. SSLContext is
        # safe to share, and a rare duplicate build under a race is harmless.
        global _SSL_CONTEXT
        if _SSL_CONTEXT is None:
            _SSL_CONTEXT = httpx.create_ssl_context()
        return _SSL_CONTEXT

    def _fetch_with(self, client: httpx.Client) -> Mapping[str, Any]:
        if self._jwks_uri is None:
            self._jwks_uri = self._jwks_uri_from(self._get(client, self.discovery_url))
        return self._get(client, self._jwks_uri)

    async def _afetch_with(self, client: httpx.AsyncClient) -> Mapping[str, Any]:
        if self._jwks_uri is None:
            self._jwks_uri = self._jwks_uri_from(await self._aget(client, self.discovery_url))
        return await self._aget(client, self._jwks_uri)

    def _jwks_uri_from(self, doc: Mapping[str, Any]) -> str:
        # OIDC Discovery §4.3: the issuer in the document MUST be identical to
        # the one used to build its URL; anything else is a misrouted or
        # impersonating endpoint, so its keys must not be trusted.
        if doc.get("issuer") != self._issuer:
            raise DiscoveryError("discovery document issuer does not match the configured issuer")
        uri = doc.get("jwks_uri")
        if not isinstance(uri, str) or not uri.startswith(("https://", "http://")):
            raise DiscoveryError("discovery document has no usable jwks_uri")
        return uri

    def _get(self, client: httpx.Client, url: str) -> dict[str, Any]:
        try:
            with client.stream("GET", url, headers=_HEADERS, timeout=self._timeout) as resp:
                _check_status(url, resp.status_code)
                body = bytearray()
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise _too_large(url)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise JWKSUnavailable(f"GET {url} failed: {type(exc).__name__}") from None
        return _parse_body(url, bytes(body))

    async def _aget(self, client: httpx.AsyncClient, url: str) -> dict[str, Any]:
        try:
            async with client.stream("GET", url, headers=_HEADERS, timeout=self._timeout) as resp:
                _check_status(url, resp.status_code)
                body = bytearray()
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise _too_large(url)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise JWKSUnavailable(f"GET {url} failed: {type(exc).__name__}") from None
        return _parse_body(url, bytes(body))
