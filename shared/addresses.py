"""Which network addresses the platform may connect to on someone's say-so (a partner's
webhook endpoint, a partner's domain to verify): only globally routable ones. Plumbing shared
by the services that make such calls, so that a server-side request forgery is refused alike
everywhere (no I/O here: callers resolve names and check each address)."""

from __future__ import annotations

import ipaddress

# IPv6 addresses that carry an IPv4 address a gateway reaches for them (found from outside:
# 64:ff9b::a9fe:a9fe, 2002:a9fe:a9fe:: and ::a9fe:a9fe are "global" to Python's ipaddress
# but lead to 169.254.169.254): NAT64's well-known prefix (RFC 6052) carries it in its last 32
# bits, 6to4 (RFC 3056) after its prefix, an IPv4-mapped address in its last 32 bits.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Never public: NAT64's local-use prefix (RFC 8215) and the deprecated IPv4-compatible form.
NOT_PUBLIC_IPV6 = (ipaddress.IPv6Network("64:ff9b:1::/48"), ipaddress.IPv6Network("::/96"))


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally routable: not private, loopback, link-local, multicast, reserved or shared,
    nor an IPv6 address that leads to an IPv4 address which is one of those."""
    if isinstance(address, ipaddress.IPv6Address):
        if any(address in network for network in NOT_PUBLIC_IPV6):
            return False
        carried = address.ipv4_mapped or address.sixtofour
        if carried is None and address in NAT64:
            carried = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if carried is not None:
            return is_public(carried)
    return address.is_global and not address.is_multicast
