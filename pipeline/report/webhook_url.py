"""Which webhook URLs alerts may be posted to, checked when subscriptions load and again
before each send (issue 15).

- ``https://`` only; plain ``http://`` only to loopback (a receiver on this host, as in the
  tests: :data:`HTTP_ALLOWED_NETWORKS`) or to a network the subscription lists in
  ``allow_networks``.
- Every address the host stands for must be public: loopback is accepted by default
  (:data:`DEFAULT_ALLOWED_NETWORKS`); link-local, private, shared, reserved and
  unspecified addresses are refused unless ``allow_networks`` covers them; cloud metadata
  addresses (:data:`METADATA_ADDRESSES`) only when ``allow_networks`` names that very
  address (``"169.254.169.254/32"``), never through a wider range. IPv4 addresses inside
  IPv6 ones (``::ffff:a.b.c.d``, NAT64, 6to4, Teredo, IPv4-compatible) are judged by the
  IPv4 address too.
- IPv4 written any other way than dotted decimal (``0x7f000001``, ``2130706433``,
  ``0177.0.0.1``, ``127.1``) is refused: C resolvers read those as addresses, other
  parsers as names, which is how such URLs slip past a check.
- A host name is resolved before each send, every address of the answer is checked, and
  the connection goes to a checked address (:func:`resolve`), so a DNS answer that changes
  between the check and the connection (rebinding) cannot redirect it.
- A user name or password in the URL is refused; query values, credentials and long path
  segments (tokens) are replaced by ``***`` wherever a URL is shown (:func:`redact_url`).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from pipeline.core.errors import ConfigError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Networks every subscription may reach although they are not public: loopback, for a
#: receiver on this host (and the tests). Set to ``()`` to refuse loopback too.
DEFAULT_ALLOWED_NETWORKS: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
#: Networks reached over plain ``http://`` without a subscription's ``allow_networks``.
HTTP_ALLOWED_NETWORKS: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
#: Instance-metadata endpoints (AWS, GCP, Azure, OpenStack; AWS IPv6 and ECS; Alibaba).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200")
)

_FORBIDDEN_CHARS = re.compile(r"[\x00-\x20\x7f\\]|[^\x00-\x7f]")
_DOTTED = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)")
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SECRET_SEGMENT = 16  # a path segment this long or longer is shown as ***


class UrlPolicyError(ConfigError):
    """A webhook URL is refused; the message says why and what to change."""


@dataclass(frozen=True)
class WebhookUrl:
    """A webhook URL that passed the static checks."""

    scheme: str
    host: str
    """Lower-case host name, or an IP address (IPv6 without brackets)."""
    port: int
    target: str
    """Path and query as sent in the request line."""
    literal: IPAddress | None
    """The address when the host is written as one."""
    display: str
    """The URL with secrets redacted, for messages and logs."""


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """``allow_networks`` entries as networks (``"10.20.0.0/16"``, ``"fd00::/8"``, an address)."""
    out = []
    for v in values:
        try:
            out.append(ipaddress.ip_network(str(v), strict=False))
        except ValueError:
            raise UrlPolicyError(
                f"allow_networks entry {v!r} is not a network. Write it like '10.20.0.0/16' or '10.20.0.5'."
            ) from None
    return tuple(out)


def redact_url(url: str) -> str:
    """``url`` for messages: no user name or password, query values and path segments of
    16+ characters (tokens) shown as ``***``, anything unprintable escaped."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    path = "/".join("***" if len(s) >= _SECRET_SEGMENT else s for s in parts.path.split("/"))
    query = "&".join(f"{kv.split('=', 1)[0]}=***" if "=" in kv else "***" for kv in parts.query.split("&"))
    text = f"{parts.scheme}://{netloc}{path}" + (f"?{query}" if parts.query else "")
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text[:300])


def scrub(text: str, url: str) -> str:
    """``text`` with every secret part of ``url`` (credentials, query values, long path
    segments) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return text
    secrets = [parts.username or "", parts.password or "", parts.query]
    secrets += [kv.split("=", 1)[-1] for kv in parts.query.split("&")]
    secrets += [s for s in parts.path.split("/") if len(s) >= _SECRET_SEGMENT]
    for s in sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True):
        text = text.replace(s, "***")
    return text


def parse_webhook_url(url: str, *, allow_networks: Sequence[Network] = ()) -> WebhookUrl:
    """Check ``url`` without the network: syntax, scheme, credentials, how the host is
    written and, for an address, whether it may be reached.

    Raises
    ------
    UrlPolicyError
        What is wrong and what to write instead; never the credentials themselves.
    """
    shown = redact_url(url)
    if _FORBIDDEN_CHARS.search(url):
        raise UrlPolicyError(
            f"webhook_url {shown}: a space, backslash, control or non-ASCII character is not allowed "
            "in a URL. Percent-encode it in the path, or use the punycode (xn--) form of the host."
        )
    try:
        parts = urlsplit(url)
    except ValueError:
        raise UrlPolicyError(f"webhook_url {shown} is not a valid URL (check the [brackets]).") from None
    if parts.scheme not in ("https", "http"):
        raise UrlPolicyError(f"webhook_url {shown} must start with https://.")
    if "@" in parts.netloc:
        raise UrlPolicyError(
            f"webhook_url {shown} carries a user name or password (user:password@host). Remove it: "
            "alerts are authenticated by their signature (secret_env); a receiver that wants a token "
            "can take it in the query, which is never logged."
        )
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise UrlPolicyError(f"webhook_url {shown}: the port is not a number from 1 to 65535.")
    port = port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    if not host:
        raise UrlPolicyError(f"webhook_url {shown} has no host.")
    literal = _literal(host, bracketed="[" in parts.netloc, shown=shown)
    allowed = (*parse_networks(DEFAULT_ALLOWED_NETWORKS), *allow_networks)
    if literal is not None:
        check_address(literal, allowed=allowed, shown=shown)
    if parts.scheme == "http":
        http_ok = (*parse_networks(HTTP_ALLOWED_NETWORKS), *allow_networks)
        named_ok = literal is None and (host == "localhost" or bool(allow_networks))
        if not named_ok and not (literal is not None and _within(literal, http_ok)):
            raise UrlPolicyError(
                f"webhook_url {shown} must start with https:// (plain http:// only to loopback, e.g. "
                "a receiver on this host, or to a network listed in allow_networks)."
            )
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return WebhookUrl(parts.scheme, host, port, target, literal, shown)


def resolve(url: WebhookUrl, *, allow_networks: Sequence[Network] = ()) -> tuple[str, ...]:
    """The addresses to connect to for ``url``, each one checked (one DNS lookup; connect
    only to these, never resolve the name again).

    Raises
    ------
    UrlPolicyError
        An address of the answer is refused (the whole answer is then refused).
    OSError
        The name does not resolve (``socket.gaierror``): worth trying again later.
    """
    allowed = (*parse_networks(DEFAULT_ALLOWED_NETWORKS), *allow_networks)
    if url.literal is not None:
        addresses: list[IPAddress] = [url.literal]
    else:
        infos = socket.getaddrinfo(url.host, url.port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos))
    for a in addresses:
        check_address(a, allowed=allowed, shown=f"{url.display} ({url.host} is {a})")
    if url.scheme == "http":
        http_ok = (*parse_networks(HTTP_ALLOWED_NETWORKS), *allow_networks)
        outside = [a for a in addresses if not _within(a, http_ok)]
        if outside:
            raise UrlPolicyError(
                f"webhook_url {url.display}: {url.host} is {outside[0]}, which plain http:// may not "
                "reach. Use https://, or list its network in allow_networks."
            )
    return tuple(str(a) for a in addresses)


def check_address(ip: IPAddress, *, allowed: Sequence[Network], shown: str) -> None:
    """Refuse ``ip`` (and any IPv4 address inside it) unless it is public or ``allowed``."""
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    for a in [mapped] if mapped else [ip, *_embedded_v4(ip)]:
        inside = f"{ip} (= {a})" if a != ip else str(a)
        if a in METADATA_ADDRESSES:
            if any(n.num_addresses == 1 and n.network_address == a for n in allowed):
                continue
            raise UrlPolicyError(
                f"webhook_url {shown}: {inside} is a cloud metadata address; alerts are never sent "
                f'there unless allow_networks names exactly that address ("{a}/{a.max_prefixlen}").'
            )
        if _within(a, allowed) or (a.is_global and not a.is_multicast):
            continue
        raise UrlPolicyError(
            f"webhook_url {shown}: {inside} is {_kind(a)} address, not a public address. If this "
            f"receiver really is inside your network, add its network to allow_networks of the "
            f'subscription (e.g. allow_networks = ["{a}/{a.max_prefixlen}"]).'
        )


def _literal(host: str, *, bracketed: bool, shown: str) -> IPAddress | None:
    """The address ``host`` is written as, None for a host name; refuses odd IPv4 forms."""
    if bracketed:
        if "%" in host:
            raise UrlPolicyError(f"webhook_url {shown}: an IPv6 zone (%...) is not allowed.")
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise UrlPolicyError(f"webhook_url {shown}: [{host}] is not an IPv6 address.") from None
    if _DOTTED.fullmatch(host):
        return ipaddress.IPv4Address(host)
    labels = host.rstrip(".").split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        raise UrlPolicyError(
            f"webhook_url {shown}: host '{host}' is an IP address written in a non-standard form (hex, "
            "octal, one integer or shortened). Write it in dotted decimal a.b.c.d, or use a host name."
        )
    if not all(_LABEL.fullmatch(label) for label in labels) or len(host) > 253:
        raise UrlPolicyError(f"webhook_url {shown}: '{host}' is not a valid host name.")
    return None


def _embedded_v4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses a packet to ``ip`` may end up at (6to4, Teredo, NAT64, compatible)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    out = [a for a in (ip.sixtofour, *(ip.teredo or ())) if a is not None]
    low = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _NAT64 or (int(ip) >> 32 == 0 and int(ip) > 1):
        out.append(low)
    return out


def _within(ip: IPAddress, networks: Sequence[Network]) -> bool:
    return any(ip in n for n in networks)


def _kind(ip: IPAddress) -> str:
    for attr, name in (
        ("is_loopback", "a loopback"),
        ("is_link_local", "a link-local"),
        ("is_unspecified", "an unspecified"),
        ("is_multicast", "a multicast"),
        ("is_private", "a private"),
        ("is_reserved", "a reserved"),
    ):
        if getattr(ip, attr):
            return name
    return "a non-public (shared or special-purpose)"
