"""Which addresses a webhook may be sent to.

A repo admin registers webhook URLs, and the server then POSTs to them from inside its own
network. Without a rule, anyone who can create a repo could make the server call the services
next to it (a cloud metadata endpoint, an internal admin API, a database port): server-side
request forgery. So a webhook may only target global (public) addresses, unless the operator
names the private networks that are allowed (`RELEASEHUB_WEBHOOK_ALLOWED_NETWORKS`, CIDRs such
as `10.0.0.0/8,127.0.0.1/32`). The host is resolved when the webhook is registered and again
before every delivery, so a name that later resolves to a private address is refused as well.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
SETTING = "RELEASEHUB_WEBHOOK_ALLOWED_NETWORKS"


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
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def check_target(url: str, allowed: Sequence[Network] = ()) -> None:
    """Raise TargetRefused unless every address the URL's host resolves to may be reached."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    for address in _addresses(host, port):
        mapped = getattr(address, "ipv4_mapped", None)
        plain = mapped or address
        if plain.is_global and not plain.is_multicast:
            continue
        if any(plain in network for network in allowed if network.version == plain.version):
            continue
        shown = host if str(plain) == host else f"{host} ({plain})"
        raise TargetRefused(
            f"the webhook host {shown} is a private, loopback or reserved address, which webhooks may not "
            f"reach from inside the server's network; use a public URL, or ask the operator to allow that "
            f"network with {SETTING}")
