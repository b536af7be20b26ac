"""The ``http-request`` node's SSRF guard, on httpx's transport.

A connection resolves its host once, checks every address, and connects to the checked address (the
literal, so nothing resolves the name a second time): DNS rebinding has no second answer to slip a
loopback address into. The check sits in the transport's network backend, so every connection a client
opens (each redirect hop included) goes through it; TLS (SNI, certificate name) and the Host header still
use the URL's hostname, because httpcore takes those from the request, not from the address.

An address that embeds an IPv4 address (IPv4-mapped, IPv4-compatible, IPv4-translated, NAT64, 6to4,
Teredo) is judged as the embedded address: that is where the packets end up. Cloud metadata addresses
are refused whatever the allow-list says.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, ...
        "169.254.170.2",  # AWS ECS task credentials
        "100.100.100.200",  # Alibaba Cloud
        "fd00:ec2::254",  # AWS IMDS over IPv6
    )
)
# Refused by name before any lookup, so a resolver that answers something else for them changes nothing.
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata"})

# ipaddress has properties for the mapped, 6to4 and Teredo forms; these prefixes it has none for.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765 IPv4-translated
_COMPATIBLE = ipaddress.ip_network("::/96")  # RFC 4291 IPv4-compatible (deprecated)


class AddressRefused(Exception):
    """The host or one of its addresses may not be reached."""

    error_type = "SECURITY_ERROR"


class ResolutionFailed(Exception):
    error_type = "DNS_ERROR"


def embedded_ipv4(address: IPAddress) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 address carries, with the name of the form, or None."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return "IPv4-mapped", address.ipv4_mapped
    if address.sixtofour is not None:
        return "6to4", address.sixtofour
    if address.teredo is not None:
        return "Teredo", address.teredo[1]
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _NAT64:
        return "NAT64", low32
    if address in _TRANSLATED:
        return "IPv4-translated", low32
    # :: and ::1 are the unspecified and loopback addresses themselves, not embeddings.
    if address in _COMPATIBLE and int(address) > 1:
        return "IPv4-compatible", low32
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses ``http-request`` may connect to (from ``Limits``)."""

    allow_private: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_limits(cls, allow_private: bool, allowed_networks: Iterable[str]) -> AddressPolicy:
        return cls(allow_private, tuple(ipaddress.ip_network(n, strict=False) for n in allowed_networks))

    def _allowed(self, *addresses: IPAddress) -> bool:
        return self.allow_private or any(a in n for a in addresses for n in self.allowed_networks)

    def check_address(self, host: str, address: IPAddress) -> None:
        """Raise AddressRefused, naming the address and the rule, unless ``address`` may be reached."""
        embedded = embedded_ipv4(address)
        effective = embedded[1] if embedded else address
        shown = f"{address} (the {embedded[0]} form of {embedded[1]})" if embedded else str(address)
        subject = f"the URL's host is {{}} {shown}" if _is_literal(host) else f"{host} resolves to {{}} {shown}"
        if address in METADATA_ADDRESSES or effective in METADATA_ADDRESSES:
            raise AddressRefused(
                subject.format("the cloud metadata address") + "; requests to cloud metadata endpoints are not "
                "allowed, whatever NODEDROP_HTTP_ALLOWED_NETWORKS says"
            )
        if address.is_unspecified or effective.is_unspecified:
            # Connecting to 0.0.0.0 or :: reaches this machine.
            raise AddressRefused(subject.format("the unspecified address") + "; requests to it are not allowed")
        if not effective.is_global and not self._allowed(address, effective):
            raise AddressRefused(
                subject.format("the non-public address") + "; requests to loopback, private and link-local "
                "networks are not allowed (NODEDROP_HTTP_ALLOWED_NETWORKS lists those that are)"
            )

    def check_host(self, host: str, port: int) -> list[str]:
        """Resolve ``host`` once and check every address; the addresses to connect to, in order."""
        if host.lower().rstrip(".") in METADATA_HOSTS:
            raise AddressRefused(
                f"{host} is a cloud metadata endpoint; requests to cloud metadata endpoints are not allowed, "
                "whatever NODEDROP_HTTP_ALLOWED_NETWORKS says"
            )
        targets = resolve(host, port)
        if not targets:
            raise ResolutionFailed(f"cannot resolve host {host!r}: no addresses")
        for target in targets:
            # A scope id (fe80::1%eth0) is part of the sockaddr, not of the address.
            self.check_address(host, ipaddress.ip_address(target.split("%")[0]))
        return targets


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, as sockaddr host strings (the one DNS seam of this module)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise ResolutionFailed(f"cannot resolve host {host!r}: {exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's sync backend, connecting only to addresses the policy checked."""

    def __init__(self, policy: AddressPolicy, backend: httpcore.NetworkBackend | None = None) -> None:
        self.policy = policy
        self._backend = backend or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        error: httpcore.ConnectError | None = None
        for target in self.policy.check_host(host, port):
            try:
                return self._backend.connect_tcp(target, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        assert error is not None
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise AddressRefused("Unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport with every connection checked and pinned by ``policy``. No proxies."""

    def __init__(self, policy: AddressPolicy, *, verify: Any = True) -> None:
        ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)
        super().__init__(verify=ssl_context, trust_env=False)
        # HTTPTransport takes no network backend, its connection pool does: the pool is replaced by one
        # with the guarded backend (and the same TLS context, so certificates are checked as before).
        self._pool = httpcore.ConnectionPool(ssl_context=ssl_context, network_backend=GuardedBackend(policy))
