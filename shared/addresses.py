"""Which network addresses the platform may connect to on someone's say-so (a partner's
webhook endpoint, a partner's domain to verify): only globally routable ones; and host names as
DNS takes them (`ascii_host`). Plumbing shared
by the services that make such calls, so that a server-side request forgery is refused alike
everywhere (no I/O here: callers resolve names and check each address)."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import SplitResult

import idna

# IPv6 addresses that carry an IPv4 address a gateway reaches for them (found from outside:
# 64:ff9b::a9fe:a9fe, 2002:a9fe:a9fe:: and ::a9fe:a9fe are "global" to Python's ipaddress
# but lead to 169.254.169.254): NAT64's well-known prefix (RFC 6052) carries it in its last 32
# bits, 6to4 (RFC 3056) after its prefix, an IPv4-mapped address in its last 32 bits.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Never public: NAT64's local-use prefix (RFC 8215) and the deprecated IPv4-compatible form.
# SIIT's IPv4-translated form (RFC 2765, ::ffff:0:a.b.c.d) leads to its IPv4 address too, and
# site-local (fec0::/10, deprecated) is private: Python's ipaddress calls both global.
NOT_PUBLIC_IPV6 = (
    ipaddress.IPv6Network("64:ff9b:1::/48"),
    ipaddress.IPv6Network("::/96"),
    ipaddress.IPv6Network("fec0::/10"),
)
SIIT = ipaddress.IPv6Network("::ffff:0:0:0/96")


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally routable: not private, loopback, link-local, multicast, reserved or shared,
    nor an IPv6 address that leads to an IPv4 address which is one of those."""
    if isinstance(address, ipaddress.IPv6Address):
        if any(address in network for network in NOT_PUBLIC_IPV6):
            return False
        carried = address.ipv4_mapped or address.sixtofour
        if carried is None and (address in NAT64 or address in SIIT):
            carried = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if carried is not None:
            return is_public(carried)
    return address.is_global and not address.is_multicast


# An ASCII label as DNS names hosts (RFC 1123's letters, digits and hyphens; an underscore
# where a caller allows it, as DNS itself does), 1-63 characters, no hyphen at either end.
_LDH = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_LDH_UNDERSCORE = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
HOST_MAX = 253


def ascii_host(host: str, *, underscores: bool = False) -> str:
    """`host` as DNS asks for it: lower case, each label in another script as its A-label
    (IDNA 2008 with UTS 46), an A-label given must decode. ValueError saying why for no host
    name (an empty label, one over 63 characters, a space, bad punycode). ASCII labels are held
    to DNS' own rule only: IDNA 2008 also refuses `ab--cd` (its third and fourth characters are
    reserved for A-labels), which is a real name."""
    try:
        mapped = idna.uts46_remap(host, std3_rules=False, transitional=False)
    except idna.IDNAError as error:
        raise ValueError(str(error)) from None
    pattern = _LDH_UNDERSCORE if underscores else _LDH
    labels = []
    for label in mapped.split("."):
        if label.isascii():
            if not pattern.fullmatch(label):
                raise ValueError(f"label {label[:63]!r} is not a host name's label")
            if label.startswith("xn--"):
                _a_label(label)
            labels.append(label)
        else:
            labels.append(_a_label_of(label))
    ascii_name = ".".join(labels)
    if len(ascii_name) > HOST_MAX:
        raise ValueError(f"a host name has at most {HOST_MAX} characters")
    return ascii_name


def _a_label(label: str) -> None:
    try:
        idna.decode(label)
    except idna.IDNAError as error:
        raise ValueError(f"label {label!r}: {error}") from None


def _a_label_of(label: str) -> str:
    try:
        return idna.encode(label, uts46=True).decode("ascii")
    except idna.IDNAError as error:
        raise ValueError(f"label {label[:63]!r}: {error}") from None


def url_host(
    parts: SplitResult, what: str
) -> tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address | None]:
    """A URL's host as DNS is asked for it (A-labels, no final dot) and its address when it is
    a literal; ValueError naming what is wrong where no client would read the host or port as
    this does: an empty port or port 0 (urlsplit takes both), a name whose last label is a
    number but not an IPv4 address in dotted decimal form (2852039166, 0x7f.1, 0177.0.0.1 and
    127.1 all reach an address to browsers and resolvers), a name DNS would not take (an
    underscore is DNS'). A bracketed host is an IPv6 address (its zone, if any, kept)."""
    authority = parts.netloc.rpartition("@")[2]
    port_text = authority.rpartition("]")[2] if authority.startswith("[") else authority
    if port_text.endswith(":") or parts.port == 0:
        raise ValueError(f"{what}'s port must be a number from 1 to 65535")
    host = (parts.hostname or "").removesuffix(".")
    if not host:
        raise ValueError(f"{what} must name a host")
    if authority.startswith("["):
        try:
            return host, ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{what}'s host in brackets must be an IPv6 address") from None
    try:  # the name as DNS is asked for it: a fullwidth localhost is localhost
        name = ascii_host(host, underscores=True).removesuffix(".")
    except ValueError as error:
        raise ValueError(f"{what}'s host is not a valid name: {error}") from None
    # Numbers once mapped as clients map them: fullwidth digits and ideographic full stops
    # (127.0.0.1 so written) reach 127.0.0.1, where a check of the host as typed saw a name.
    last = name.rpartition(".")[2]
    if last.isdigit() or last.startswith("0x"):
        try:
            return name, ipaddress.IPv4Address(name)
        except ValueError:
            raise ValueError(
                f"{what}'s host is a number but not an IPv4 address in dotted decimal form"
            ) from None
    return name, None
