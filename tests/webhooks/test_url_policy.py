"""W-H3: where webhooks may go (SSRF). Unit tests of the URL check and resolution."""

from __future__ import annotations

import pytest

from oneauth.settings import Settings
from oneauth.webhooks import urls

PRODUCTION = Settings(env="production")
TEST = Settings(env="test")


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",  # plain http
        "http://127.0.0.1:8080/hook",  # loopback over http: dev/test only
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://api.localhost/hook",
        "https://[::1]/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://172.16.5.4/hook",
        "https://169.254.169.254/latest/meta-data",  # the cloud metadata service
        "https://100.64.0.1/hook",  # CGNAT
        "https://0.0.0.0/hook",
        "https://[::ffff:127.0.0.1]/hook",  # IPv4-mapped loopback
        "https://[fd00::1]/hook",  # unique local
        "https://[fe80::1]/hook",  # link-local
        "https://224.0.0.1/hook",  # multicast
        "https://user:pw@example.com/hook",  # credentials
        "https://example.com/hook#frag",
        "ftp://example.com/hook",
        "https:///nohost",
        "https://exa mple.com/",
        "https://metadata.internal/",
    ],
)
def test_production_refuses(url: str) -> None:
    with pytest.raises(urls.UrlRefused):
        urls.check_url(PRODUCTION, url)


def test_production_accepts_public_https() -> None:
    urls.check_url(PRODUCTION, "https://hooks.example.com/oneauth?x=1")
    urls.check_url(PRODUCTION, "https://93.184.215.14:8443/hook")


def test_test_env_allows_loopback_http_only() -> None:
    urls.check_url(TEST, "http://127.0.0.1:9000/hook")
    urls.check_url(TEST, "http://localhost:9000/hook")
    urls.check_url(TEST, "http://[::1]:9000/hook")
    with pytest.raises(urls.UrlRefused, match="https"):
        urls.check_url(TEST, "http://example.com/hook")
    with pytest.raises(urls.UrlRefused, match="https"):
        urls.check_url(TEST, "http://10.0.0.1/hook")


async def test_production_checks_what_the_name_resolves_to() -> None:
    # "localhost" resolves to loopback: refused after resolution too (a public-looking
    # name pointing at a private address is the same case, DNS rebinding included:
    # the worker connects to the address it checked).
    with pytest.raises(urls.UrlRefused):
        await urls.resolve(PRODUCTION, "https://localhost/hook")
    target = await urls.resolve(TEST, "http://localhost:9000/a/b?c=d")
    assert target.connect_url in ("http://127.0.0.1:9000/a/b?c=d", "http://[::1]:9000/a/b?c=d")
    assert target.host_header == "localhost:9000"
    assert target.server_name == "localhost"


def test_is_public() -> None:
    import ipaddress

    assert urls.is_public(ipaddress.ip_address("93.184.215.14"))
    assert urls.is_public(ipaddress.ip_address("2606:2800:21f:cb07:6820:80da:af6b:8b2c"))
    for private in ("127.0.0.1", "10.0.0.1", "::1", "::ffff:10.0.0.1", "2002:7f00:1::1"):
        assert not urls.is_public(ipaddress.ip_address(private))


def test_the_readme_verification_example_accepts_our_signatures() -> None:
    """README "Webhooks": the receiver's example verifies what the worker signs."""
    import re
    import time
    from pathlib import Path

    from oneauth.webhooks import signing

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("\n### Webhooks\n", 1)[1].split("\n### ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    scope: dict[str, object] = {}
    exec(code, scope)  # noqa: S102 - our own README's example
    verify = scope["verify"]
    assert callable(verify)
    secret = signing.new_secret()
    body = b'{"id":"evt_x","type":"user.created"}'
    headers = signing.headers(secret, "evt_x", body)
    assert verify(secret, headers, body)
    assert not verify(secret, headers, body + b"x")
    assert not verify(signing.new_secret(), headers, body)
    old = signing.headers(secret, "evt_x", body, timestamp=int(time.time()) - 3600)
    assert not verify(secret, old, body)
