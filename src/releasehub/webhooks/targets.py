"""Which addresses a webhook may be sent to.

A repo admin registers webhook URLs, and the server then POSTs to them from inside its own
network. Without a rule, anyone who can create a repo could make the server call the services
next to it (a cloud metadata endpoint, an internal admin API, a database port): server-side
request forgery. So a webhook may only target global (public) addresses, unless the operator
names the private networks that are allowed (`RELEASEHUB_WEBHOOK_ALLOWED_NETWORKS`, CIDRs such
as `10.0.0.0/8,127.0.0.1/32`). The host is resolved when the webhook is registered and again
before every delivery, so a name that later resolves to a private address is refused as well.

An IPv6 address can carry an IPv4 address inside it, and a packet sent to it reaches that IPv4
address through a translator or tunnel: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-translated
(`::ffff:0:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`, and the
local-use `64:ff9b:1::/48`), 6to4 (`2002:AABB:CCDD::`) and Teredo (`2001::/32`, whose client
address is stored inverted). The embedded IPv4 address is judged as if it had been given, so
`64:ff9b::127.0.0.1` is loopback. Local-use NAT64 and Teredo addresses are themselves refused
unless their IPv6 network is allowed: they lead into a translator the operator runs, or through
a tunnel whose far end cannot be told from the address alone.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
SETTING = "RELEASEHUB_WEBHOOK_ALLOWED_NETWORKS"

_V6 = ipaddress.IPv6Network
# Prefixes whose address *is* the IPv4 address in its low 32 bits (or, for 6to4, bits 16-48).
_IPV4_TRANSLATED = _V6("::ffff:0:0:0/96")
_IPV4_COMPATIBLE = _V6("::/96")
_NAT64 = _V6("64:ff9b::/96")
_SIX_TO_FOUR = _V6("2002::/16")
# Prefixes refused on their own (unless allowed), whose embedded IPv4 addresses are judged too.
_NAT64_LOCAL = _V6("64:ff9b:1::/48")
_TEREDO = _V6("2001::/32")


class TargetRefused(Exception):
    """The URL's host is (or resolves to) an address webhooks may not reach; the message says which."""


def parse_networks(text: str) -> tuple[Network, ...]:
    """`10.0.0.0/8, fd00::/8` -> networks; a bare address is a network of one."""
    out = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{SETTING}: {item!r} is not a network such as 10.0.0.0/8 or 127.0.0.1/32") from None
    return tuple(out)


def _addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise TargetRefused(f"the webhook host {host!r} does not resolve ({exc.strerror or exc})") from None
    found = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def _low_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)


def reached(address: Address) -> tuple[list[Address], bool]:
    """The addresses a packet to `address` reaches, and whether `address` itself must be allowed.

    For an address that merely spells an IPv4 address (mapped, translated, compatible, NAT64,
    6to4) that is the IPv4 address alone; for local-use NAT64 and Teredo it is the address (never
    public) and the IPv4 addresses inside it; otherwise the address itself.
    """
    if isinstance(address, ipaddress.IPv4Address):
        return [address], False
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped], False
    if address in _IPV4_TRANSLATED or address in _NAT64:
        return [_low_ipv4(address)], False
    if address in _IPV4_COMPATIBLE and int(address) > 1:  # not '::' nor '::1', which are themselves
        return [_low_ipv4(address)], False
    if address in _SIX_TO_FOUR and address.sixtofour is not None:
        return [address.sixtofour], False
    if address in _NAT64_LOCAL:
        return [address, _low_ipv4(address)], True
    if address.teredo is not None:
        server, client = address.teredo  # `ipaddress` undoes the client address's inversion
        return [address, server, client], True
    return [address], False


def _may_reach(address: Address, allowed: Sequence[Network], public: bool = True) -> bool:
    if public and address.is_global and not address.is_multicast:
        return True
    return any(address in network for network in allowed if network.version == address.version)


def check_target(url: str, allowed: Sequence[Network] = ()) -> None:
    """Raise TargetRefused unless every address the URL's host resolves to may be reached."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    for address in _addresses(host, port):
        targets, tunnel = reached(address)
        if tunnel and not _may_reach(address, allowed, public=False):
            kind = "a Teredo tunnel" if address in _TEREDO else "a local-use NAT64"
            shown = host if str(address) == host else f"{host} ({address})"
            raise TargetRefused(
                f"the webhook host {shown} is {kind} address, which leads through a translator or tunnel "
                f"the server cannot judge; use a public URL, or ask the operator to allow that network "
                f"with {SETTING}")
        for plain in targets:
            if (tunnel and plain is address) or _may_reach(plain, allowed):
                continue
            if str(plain) == host:
                shown = host
            elif plain is address:
                shown = f"{host} ({plain})"
            elif str(address) == host:
                shown = f"{host} (which carries the IPv4 address {plain})"
            else:
                shown = f"{host} ({address}, which carries the IPv4 address {plain})"
            raise TargetRefused(
                f"the webhook host {shown} is a private, loopback or reserved address, which webhooks may not "
                f"reach from inside the server's network; use a public URL, or ask the operator to allow that "
                f"network with {SETTING}")
