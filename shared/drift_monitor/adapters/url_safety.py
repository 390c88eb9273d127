"""Outbound URL safety (SSRF): which alert destinations the monitor may ever connect to.

A model's ``alert_webhook`` is chosen by whoever can change its configuration, and the detection
function runs inside a VPC next to Cloud SQL, Memorystore and the metadata server. So a webhook
URL is checked twice:

* when it is configured (:func:`validate_webhook_url`): scheme, no userinfo, a host, and no
  host name that names the metadata server;
* when a request is about to be sent (:func:`resolve_target`): the host is resolved and *every*
  address it resolves to must be public. The connection is then made to the checked address
  (:class:`ResolvedTarget.ip`), never to the name again, so a DNS answer that changes between
  the check and the connect (DNS rebinding) cannot redirect the request.

Loopback addresses and plain ``http`` to a loopback host are allowed only outside production
(``DRIFT_MONITOR_ENV=local|test``), so tests and the embedded demo can use a local receiver.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

from drift_monitor.domain.errors import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Host names that reach the GCE/GKE metadata server without any DNS lookup of ours.
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "metadata.goog"})
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)

_BLOCKED_NETWORKS: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.ip_network(net), why)
    for net, why in (
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared address space"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.168.0.0/16", "private"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("fc00::/7", "private"),
        ("fe80::/10", "link-local"),
        ("ff00::/8", "multicast"),
    )
)

Resolver = Callable[..., Sequence[tuple[Any, ...]]]


class UnsafeURLError(ValidationError):
    """The URL may not be used as an alert destination (a configuration mistake, not transient)."""

    def __init__(self, message: str, field: str = "alert_webhook") -> None:
        super().__init__(field, message, 422)


@dataclass(frozen=True)
class UrlPolicy:
    """Which destinations are acceptable.

    Parameters
    ----------
    allow_loopback
        Accept ``127.0.0.0/8`` and ``::1`` (and ``http`` to them). True only in local and test
        mode; production refuses loopback like any other internal address.
    """

    allow_loopback: bool = False

    @classmethod
    def for_environment(cls, environment: str) -> UrlPolicy:
        """The policy for ``Settings.environment`` (``production`` is strict)."""
        return cls(allow_loopback=environment != "production")


@dataclass(frozen=True)
class ResolvedTarget:
    """A checked destination: connect to ``ip``, send ``Host: host`` and verify TLS for ``host``."""

    scheme: str
    host: str
    port: int
    path: str
    ip: str

    @property
    def endpoint(self) -> str:
        """``scheme://host:port``: the key circuit breakers are kept under (no path, no query)."""
        return f"{self.scheme}://{self.host}:{self.port}"


def _split(url: object, field: str) -> SplitResult:
    if not isinstance(url, str) or not url.strip():
        raise UnsafeURLError("must be a non-empty URL string", field)
    if len(url) > 2048:
        raise UnsafeURLError("must be at most 2048 characters", field)
    if any(c in url for c in "\r\n\t ") or any(ord(c) < 32 for c in url):
        raise UnsafeURLError("must not contain whitespace or control characters", field)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise UnsafeURLError(f"is not a valid URL ({exc})", field) from exc
    return parts


def _literal_ip(host: str) -> IPAddress | None:
    """The address a literal host names, including every numeric form ``inet_aton`` accepts.

    Resolvers and HTTP clients pass ``0x7f000001``, ``2130706433``, ``127.1``,
    ``017700000001`` or ``0`` to ``inet_aton``, which reads them as IPv4 addresses; so do we.
    """
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return _inet_aton(host)


def _inet_aton_part(text: str) -> int | None:
    if text[:2].lower() == "0x":
        digits, base, allowed = text[2:], 16, "0123456789abcdefABCDEF"
    elif len(text) > 1 and text.startswith("0"):
        digits, base, allowed = text[1:], 8, "01234567"
    else:
        digits, base, allowed = text, 10, "0123456789"
    if not digits or any(c not in allowed for c in digits):
        return None
    return int(digits, base)


def _inet_aton(host: str) -> ipaddress.IPv4Address | None:
    """``a``, ``a.b``, ``a.b.c`` or ``a.b.c.d`` in decimal, octal or hex; else None (a name)."""
    pieces = host.split(".")
    if not 1 <= len(pieces) <= 4 or not all(pieces):
        return None
    numbers = [_inet_aton_part(piece) for piece in pieces]
    if any(n is None for n in numbers):
        return None
    values = [n for n in numbers if n is not None]
    *leading, last = values
    if any(n > 255 for n in leading) or last >= 256 ** (5 - len(values)):
        return None
    address = 0
    for n in leading:
        address = address << 8 | n
    return ipaddress.IPv4Address(address << 8 * (5 - len(values)) | last)


def _names_local_host(host: str) -> bool:
    """``localhost``, ``*.localhost`` and single-label names (resolved by search domains)."""
    return host == "localhost" or host.endswith(".localhost") or "." not in host


def _is_loopback(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def check_address(ip: IPAddress, policy: UrlPolicy, field: str = "alert_webhook") -> None:
    """Raise :class:`UnsafeURLError` unless ``ip`` is a public unicast address.

    IPv4-mapped and NAT64-style IPv6 forms are unwrapped first, so ``::ffff:169.254.169.254``
    is refused like ``169.254.169.254``.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            check_address(ip.ipv4_mapped, policy, field)
            return
        if ip in ipaddress.ip_network("64:ff9b::/96"):
            check_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), policy, field)
            return
    if ip in METADATA_ADDRESSES:
        raise UnsafeURLError(f"resolves to the cloud metadata address {ip}", field)
    if ip.is_loopback:
        if policy.allow_loopback:
            return
        raise UnsafeURLError(f"resolves to the loopback address {ip}, refused in production", field)
    for network, why in _BLOCKED_NETWORKS:
        if ip.version == network.version and ip in network:
            raise UnsafeURLError(f"resolves to the {why} address {ip}", field)
    # Anything else that is not globally routable (documentation ranges, benchmarking, ...).
    if not ip.is_global or ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        raise UnsafeURLError(f"resolves to the non-public address {ip}", field)


def validate_webhook_url(url: object, policy: UrlPolicy, field: str = "alert_webhook") -> str:
    """Check a destination URL without any network access; return it unchanged.

    Rules: ``https`` (``http`` only for a loopback host when ``policy.allow_loopback``), a host,
    no ``user:password@``, no fragment, no metadata host name, and a literal IP address must
    pass :func:`check_address`. Host names are checked again, after resolution, at send time.

    Raises
    ------
    UnsafeURLError
        A :class:`~drift_monitor.domain.errors.ValidationError` (422) naming ``field``.
    """
    parts = _split(url, field)
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise UnsafeURLError("must use https", field)
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeURLError("must not contain credentials (user:password@)", field)
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UnsafeURLError("must name a host", field)
    if parts.fragment:
        raise UnsafeURLError("must not contain a fragment", field)
    if host in METADATA_HOSTS or host.endswith(".metadata.google.internal"):
        raise UnsafeURLError(f"names the cloud metadata server {host}", field)
    literal = _literal_ip(host)
    if literal is not None:
        check_address(literal, policy, field)
    elif not policy.allow_loopback and _names_local_host(host):
        raise UnsafeURLError(
            f"names the local or single-label host {host!r}, refused in production: "
            "use a fully qualified public name",
            field,
        )
    if scheme == "http":
        loopback_host = host == "localhost" or (literal is not None and _is_loopback(literal))
        if not (policy.allow_loopback and loopback_host):
            raise UnsafeURLError(
                "must use https (plain http is accepted only for a loopback host in local "
                "and test mode)",
                field,
            )
    assert isinstance(url, str)
    return url


def resolve_target(
    url: str,
    policy: UrlPolicy,
    *,
    resolver: Resolver = socket.getaddrinfo,
    field: str = "alert_webhook",
) -> ResolvedTarget:
    """Validate ``url``, resolve its host and check every address; return where to connect.

    All addresses must pass, not just the first: an attacker controlling a DNS zone can return
    one public and one internal address and hope the client picks the second.

    Raises
    ------
    UnsafeURLError
        The URL or one of its addresses is refused.
    OSError
        Name resolution failed (``socket.gaierror``): a transient fault, retried by the caller.
    """
    validate_webhook_url(url, policy, field)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".").lower()
    port = parts.port or (443 if scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    literal = _literal_ip(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        infos = resolver(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        addresses = []
        for info in infos:
            raw = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone id
            addresses.append(ipaddress.ip_address(raw))
        if not addresses:
            raise OSError(f"{host} resolved to no address")
    for address in addresses:
        check_address(address, policy, field)
    if scheme == "http" and not all(_is_loopback(a) for a in addresses):
        raise UnsafeURLError("plain http is accepted only for loopback addresses", field)
    return ResolvedTarget(scheme=scheme, host=host, port=port, path=path, ip=str(addresses[0]))
