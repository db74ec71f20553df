"""Server-side request forgery checks for webhook URLs, at registration and again at send.

A URL is refused unless every address its host resolves to is a public unicast address. The
sender connects to one of the addresses checked here (pinned), never resolving the name again,
so a DNS answer that changes between check and connect (rebinding) cannot reach inside.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from contracts.errors import DomainError, ErrorCode

URL_CHARS_MAX = 2048
RESOLVE_TIMEOUT_S = 5.0
ADDRESSES_MAX = 16

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance metadata services, refused by name of their class whatever else they are.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(text)
    for text in (
        "169.254.169.254",
        "169.254.170.2",
        "100.100.100.200",
        "192.0.0.192",
        "fd00:ec2::254",
    )
)
# Carrier-grade NAT space: not `is_private` in Python's table, but never a partner's public host.
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")


class WebhookUrlInvalid(DomainError):
    """Not a usable URL: its scheme, shape or length."""

    code = ErrorCode.WEBHOOK_URL_INVALID


class WebhookUrlRefused(DomainError):
    """The URL's host is, or resolves to, an address webhooks may not reach."""

    code = ErrorCode.WEBHOOK_URL_REFUSED

    def __init__(self, message: str, *, address_class: str) -> None:
        super().__init__(message)
        self.address_class = address_class

    def details(self) -> dict[str, str]:
        return {"address_class": self.address_class}


@dataclass(frozen=True)
class Target:
    """A checked URL and the addresses its host resolved to, all of them allowed."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[IpAddress, ...]


def address_class(address: IpAddress, *, allow_loopback: bool) -> str | None:
    """The class an address is refused for, or None when webhooks may reach it."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address_class(address.ipv4_mapped, allow_loopback=allow_loopback)
    if address in METADATA_ADDRESSES:
        return "metadata"
    if address.is_loopback:
        # Only 127.0.0.1 itself, and only in the demo and the tests.
        allowed = allow_loopback and address == ipaddress.IPv4Address("127.0.0.1")
        return None if allowed else "loopback"
    if address.is_unspecified:
        return "unspecified"
    if address.is_link_local:
        return "link_local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address.is_reserved:
        return "reserved"  # 240.0.0.0/4, which Python's table also counts as private
    if address.is_private or address in SHARED_ADDRESS_SPACE:
        return "private"
    if address.is_reserved or not address.is_global:
        return "reserved"
    return None


def parse(url: str, *, require_https: bool) -> SplitResult:
    """The URL's parts; WebhookUrlInvalid when it is not an absolute http(s) URL we accept."""
    if len(url) > URL_CHARS_MAX or any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url):
        raise WebhookUrlInvalid(f"a webhook URL is at most {URL_CHARS_MAX} printable characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookUrlInvalid(f"not a URL: {exc}") from None
    allowed_schemes = ("https",) if require_https else ("https", "http")
    if parts.scheme not in allowed_schemes:
        raise WebhookUrlInvalid(f"a webhook URL must use {' or '.join(allowed_schemes)}")
    if not parts.hostname:
        raise WebhookUrlInvalid("a webhook URL needs a host")
    if parts.username is not None or parts.password is not None:
        raise WebhookUrlInvalid("a webhook URL may not carry credentials")
    if parts.fragment:
        raise WebhookUrlInvalid("a webhook URL may not have a fragment")
    assert port is None or 0 <= port <= 65_535, port
    return parts


async def check(url: str, *, allow_loopback: bool, require_https: bool) -> Target:
    """Parse, resolve and check `url`; raise WebhookUrlInvalid or WebhookUrlRefused."""
    parts = parse(url, require_https=require_https)
    host = parts.hostname
    assert host is not None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = await _resolve(host, port)
    for address in addresses:
        refused = address_class(address, allow_loopback=allow_loopback)
        if refused is not None:
            raise WebhookUrlRefused(
                f"webhook URLs may not reach {refused} addresses ({address})",
                address_class=refused,
            )
    return Target(url=url, scheme=parts.scheme, host=host, port=port, addresses=addresses)


async def _resolve(host: str, port: int) -> tuple[IpAddress, ...]:
    try:
        return (ipaddress.ip_address(host),)
    except ValueError:
        pass  # a name, not a literal address
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (TimeoutError, OSError) as exc:
        raise WebhookUrlInvalid(f"the host {host!r} does not resolve: {exc}") from None
    found: list[IpAddress] = []
    for info in infos[:ADDRESSES_MAX]:
        address = ipaddress.ip_address(info[4][0])
        if address not in found:
            found.append(address)
    if not found:
        raise WebhookUrlInvalid(f"the host {host!r} has no address")
    return tuple(found)
