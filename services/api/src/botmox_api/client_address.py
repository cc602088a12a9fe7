"""The client address a request is counted against: the peer, or what a trusted proxy reports.

Behind a reverse proxy (Caddy in the deploy) every request comes from the proxy's address, so the
per-address rate limit would count the proxy, not the clients. ``X-Forwarded-For`` is believed only
when the peer is in ``FORWARDED_ALLOW_IPS``; the chain is then read from the right, skipping trusted
hops, and the first untrusted address is the client. Entries left of it were written by the client
itself and are never believed. By default no peer is trusted and the header is ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Final

from starlette.types import Scope

from botmox_api.config import IpNetwork

FORWARDED_FOR: Final = b"x-forwarded-for"
UNKNOWN: Final = "unknown"


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


class ClientAddresses:
    def __init__(self, trusted: Iterable[IpNetwork]) -> None:
        self._trusted = tuple(trusted)

    def _is_trusted(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address in network for network in self._trusted)

    def of(self, scope: Scope) -> str:
        client = scope.get("client")
        peer_text = str(client[0]) if client else UNKNOWN
        peer = _address(peer_text)
        if peer is None or not self._trusted or not self._is_trusted(peer):
            return peer_text
        chain = [
            hop
            for name, value in scope["headers"]
            if name == FORWARDED_FOR
            for hop in value.decode("latin-1").split(",")
        ]
        client_address = peer
        for hop in reversed(chain):
            address = _address(hop)
            if address is None:
                break  # not an address: the hop that reported it is the last one we can name
            client_address = address
            if not self._is_trusted(address):
                break
        return str(client_address)
