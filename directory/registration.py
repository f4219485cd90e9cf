"""Who may register a descriptor, with which addresses, and how often one source may try.

- Closed registration (the default): only node identity keys listed in the authority's
  configuration, each with its role, may upload. `open_registration` admits any key (for
  testnets; the daemon logs a warning).
- Addresses: unless registration is open, a descriptor may not name an unspecified,
  link-local or multicast host, nor a loopback one unless `allow_loopback_addresses` is set
  (a closed testnet on 127.0.0.1). Duplicates are refused by the descriptor decoder.
- `SourceRateLimiter`: a token bucket per source address (opaque to it), in a bounded
  table, with time passed in, so that no single source can exhaust the authority's capacity.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass

from directory.descriptor import Address

LOOPBACK_NAMES = ("localhost", "localhost.", "ip6-localhost", "ip6-loopback")


def host_scope(host: str) -> str:
    """`"unspecified"`, `"loopback"`, `"link-local"`, `"multicast"` or `"global"` (any other
    address, and every host name but localhost's)."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        lowered = text.lower()
        if lowered in LOOPBACK_NAMES or lowered.endswith(".localhost"):
            return "loopback"
        return "global"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    return "global"


def address_problem(
    addresses: tuple[Address, ...], *, open_registration: bool, allow_loopback: bool
) -> str | None:
    """Why these descriptor addresses are refused, or None."""
    if open_registration:
        return None
    for address in addresses:
        scope = host_scope(address.host)
        if scope == "global" or (scope == "loopback" and allow_loopback):
            continue
        return f"a {scope} address cannot be registered"
    return None


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class SourceRateLimiter:
    """At most `burst` requests at once per source, refilled at `per_second`; at most
    `max_sources` sources remembered (the least recently seen is forgotten first)."""

    def __init__(self, *, burst: int, per_second: float, max_sources: int = 4096) -> None:
        self.burst = burst
        self.per_second = per_second
        self.max_sources = max_sources
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def allow(self, source: str, now: float) -> bool:
        """Whether `source` may make one more request at `now` (and count it)."""
        bucket = self._buckets.get(source)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
            self._buckets[source] = bucket
            while len(self._buckets) > self.max_sources:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(source)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.per_second)
            bucket.updated = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True
