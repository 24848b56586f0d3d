"""Where HTTP tasks may connect: a guard against server-side request forgery.

A flow's HTTP task runs on a worker, inside the cluster's network. Left alone, a flow (or a
redirect chosen by a remote server) could read the cloud provider's metadata service and the
credentials it hands out. So, by default, HTTP tasks refuse to connect to:

* link-local addresses: ``169.254.0.0/16`` and ``fe80::/10`` (AWS, GCP and Azure metadata live
  at ``169.254.169.254``);
* other well-known metadata endpoints: ``fd00:ec2::254`` (AWS IPv6), ``100.100.100.200``
  (Alibaba Cloud), ``192.0.0.192`` (Oracle Cloud), and the host names
  ``metadata.google.internal`` and ``metadata.goog``;
* any network listed in ``KRAY_HTTP_DENY`` (comma-separated CIDRs, e.g. ``10.0.0.0/8``).

The check runs on the addresses a host name resolves to, at the moment of connecting, and the
connection goes to the very address that was checked, so DNS rebinding cannot slip past it.
Every redirect opens its connection through the same check. Loopback and private networks stay
allowed unless listed in ``KRAY_HTTP_DENY``.

``KRAY_HTTP_ALLOW_LINK_LOCAL=1`` in the worker's environment lifts the built-in rules (the
``KRAY_HTTP_DENY`` networks still apply): for clusters that really serve something on a
link-local address.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx

from kray.errors import TaskError

ALLOW_ENV = "KRAY_HTTP_ALLOW_LINK_LOCAL"
DENY_ENV = "KRAY_HTTP_DENY"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LINK_LOCAL: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
)
METADATA_ADDRESSES: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("fd00:ec2::254/128"),
    ipaddress.ip_network("100.100.100.200/32"),
    ipaddress.ip_network("192.0.0.192/32"),
)
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog"})


class BlockedAddress(TaskError):
    """The request would reach an address that the HTTP guard refuses."""


@dataclass(frozen=True)
class AddressPolicy:
    """Which hosts and addresses HTTP tasks may connect to."""

    builtin: bool = True  # refuse link-local and metadata addresses
    deny: tuple[IPNetwork, ...] = field(default_factory=tuple)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> AddressPolicy:
        env = os.environ if environ is None else environ
        allow = env.get(ALLOW_ENV, "").strip().lower() in ("1", "true", "yes")
        deny: list[IPNetwork] = []
        for part in env.get(DENY_ENV, "").split(","):
            if part.strip():
                try:
                    deny.append(ipaddress.ip_network(part.strip(), strict=False))
                except ValueError:
                    raise TaskError(f"{DENY_ENV}: '{part.strip()}' is not a network "
                                    "(e.g. 10.0.0.0/8)") from None
        return cls(builtin=not allow, deny=tuple(deny))

    def check_host(self, host: str) -> None:
        """Refuse a host name before it is resolved (the metadata names)."""
        name = host.strip("[]").rstrip(".").lower()
        if self.builtin and name in METADATA_HOSTS:
            raise BlockedAddress(f"refused to connect to '{host}': a cloud metadata "
                                 f"endpoint (set {ALLOW_ENV}=1 on the workers to allow it)")

    def check_address(self, host: str, address: str) -> None:
        """Refuse ``address`` (one that ``host`` resolved to) when a rule matches it."""
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        for one in candidates:
            if self.builtin and any(one in net for net in LINK_LOCAL):
                raise BlockedAddress(
                    f"refused to connect to '{host}' ({address}): link-local addresses are "
                    f"not allowed, they serve cloud metadata (set {ALLOW_ENV}=1 on the "
                    "workers to allow them)")
            if self.builtin and any(one in net for net in METADATA_ADDRESSES):
                raise BlockedAddress(f"refused to connect to '{host}' ({address}): a cloud "
                                     f"metadata address (set {ALLOW_ENV}=1 on the workers "
                                     "to allow it)")
            for net in self.deny:
                if one.version == net.version and one in net:
                    raise BlockedAddress(f"refused to connect to '{host}' ({address}): "
                                         f"{net} is listed in {DENY_ENV}")


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order, without duplicates."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpcore.ConnectError(f"cannot resolve '{host}': {exc.strerror}") from exc
    out: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in out:
            out.append(address)
    return out


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, resolving names itself and checking each address before
    connecting to exactly that address (TLS still verifies the original host name)."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        self.policy.check_host(host)
        addresses = resolve(host, port)
        for address in addresses:  # every address is checked before any is tried
            self.policy.check_address(host, address)
        error: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout=timeout,
                                           local_address=local_address,
                                           socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None  # getaddrinfo never returns an empty list
        raise error


_ssl_contexts: dict[bool, ssl.SSLContext] = {}
_ssl_lock = threading.Lock()


def ssl_context(verify: bool = True) -> ssl.SSLContext:
    """httpx's SSL context, built once per process (building one reads the CA bundle)."""
    with _ssl_lock:
        if verify not in _ssl_contexts:
            _ssl_contexts[verify] = httpx.create_ssl_context(verify=verify)
        return _ssl_contexts[verify]


class GuardedTransport(httpx.HTTPTransport):
    """An httpx transport whose every connection goes through ``GuardedBackend``.

    httpx takes no network backend, so this transport builds its own httpcore connection pool
    (``handle_request`` and ``close`` only use ``_pool``). Being a custom transport also keeps
    the client from picking proxies out of the environment: a proxy would connect on the
    task's behalf, where the guard cannot see.
    """

    def __init__(self, policy: AddressPolicy, *, verify: bool = True) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context(verify), max_connections=10, keepalive_expiry=5.0,
            network_backend=GuardedBackend(policy))
