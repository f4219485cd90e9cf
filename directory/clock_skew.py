"""How far this machine's clock is from the authorities', read from their HTTP `Date` headers.

Epochs follow the wall clock: a client or node whose clock is off asks for a consensus the
authorities have not published yet (clock ahead) or one whose keys the nodes have already
deleted (clock behind), and nothing it does works. Without a hint, that looks like an
unreachable or broken network. Every authority answer carries a `Date` header (RFC 9110
§6.6.1: the origin server's clock, in whole seconds), so each request tells how far this
machine's clock is from that authority's:

    offset = (date + 0.5) − (sent + received) / 2

(the header truncates to the second, so its middle is half a second later; the request's
midpoint stands for the moment the authority read its clock). `offset` > 0: the authorities
are ahead, this clock is behind. The estimate is the median over the authorities heard from,
so one authority with a wrong clock (or one that lies) does not decide it, and it is only a
diagnosis: it changes nothing the fetcher does, it only makes its errors and warnings say
what is wrong.
"""

from __future__ import annotations

import math
import statistics
from email.utils import parsedate_to_datetime

NOTICE_SECONDS = 2.0
"""An offset at least this large is worth naming in an error (the header's resolution and
the request's round trip make smaller ones noise)."""


def parse_http_date(value: str | None) -> float | None:
    """POSIX seconds of an HTTP `Date` header value (IMF-fixdate or the obsolete forms); None
    when it is absent, malformed, without a time zone or out of range."""
    if value is None or len(value) > 64:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        return None
    try:
        seconds = moment.timestamp()
    except (OverflowError, OSError, ValueError):
        return None
    return seconds if math.isfinite(seconds) else None


class ClockSkew:
    """The latest clock offset seen from each authority, and their median."""

    def __init__(self, sources: int) -> None:
        if sources < 1:
            raise ValueError("need at least one source")
        self.sources = sources
        self._offsets: dict[int, float] = {}

    def observe(self, source: int, server_time: float, sent: float, received: float) -> None:
        """An answer from authority `source` (0 ≤ source < `sources`) with `Date` header
        `server_time`, to a request sent at `sent` and answered at `received` (this clock)."""
        if not 0 <= source < self.sources:
            raise ValueError(f"source {source} is not one of {self.sources}")
        self._offsets[source] = (server_time + 0.5) - (sent + received) / 2

    def offset(self) -> float | None:
        """The authorities' clock minus this one, in seconds (median); None before any
        answer."""
        if not self._offsets:
            return None
        return statistics.median(self._offsets.values())

    def describe(self, at_least: float = NOTICE_SECONDS) -> str | None:
        """A sentence naming the offset if it is at least `at_least` seconds, else None."""
        offset = self.offset()
        if offset is None or abs(offset) < at_least:
            return None
        direction = "behind" if offset > 0 else "ahead of"
        return (
            f"this machine's clock is {abs(offset):.0f} s {direction} the authorities' "
            "(by their HTTP Date headers); epochs follow the clock: set it right (NTP)"
        )
