"""Who the client is, behind the platform's own Ingress or Gateway.

A proxy appends the address it received a request from to `X-Forwarded-For`. Only entries
appended by a proxy the gateway trusts are believed: starting from the direct peer, which must
itself be a trusted proxy, the entries are read right to left, and the first address that is not
a trusted proxy is the client. Anything further left was written by the client (or by a proxy
it chose) and is never read, so a forged header from an untrusted peer changes nothing: that
peer is the client.

The trusted addresses are `KEELSON_GATEWAY_TRUSTED_PROXIES` (CIDRs), which the operator derives
from the platform's route (`render/configmap.py`); without it nothing is trusted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from keelson_services.settings import SettingsError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str, *, variable: str = "KEELSON_GATEWAY_TRUSTED_PROXIES") -> tuple[Network, ...]:
    """Comma-separated CIDRs (a bare address is a /32 or /128); a clear error for anything else."""
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise SettingsError(f"{variable}: {item!r} is not an IP address or CIDR") from None
    return tuple(networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[::1]:443", as some proxies write IPv6
        text = text[1 : text.index("]")]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    def __init__(self, networks: Iterable[Network] = ()) -> None:
        self.networks = tuple(networks)

    def trusts(self, address: str) -> bool:
        found = _address(address)
        return found is not None and any(found in network for network in self.networks)

    def client(self, peer: str, forwarded_for: Sequence[str]) -> str:
        """The client's address: `peer` (the direct connection's) unless it is a trusted proxy,
        then the rightmost entry of the `X-Forwarded-For` headers that is not one."""
        if not self.trusts(peer):
            return peer
        hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
        client = peer
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                break  # a trusted proxy never writes this: keep the last address it vouched for
            client = str(address)
            if not self.trusts(client):
                break
        return client
