"""The epoch clock: epochs of fixed length from a fixed origin, and the phase deadlines at
which the authorities build the consensus of the next epoch.

All instants are integer milliseconds since the Unix epoch; `now` arguments are float
seconds (as `time.time()` returns) and are converted here, in one place.

The consensus for epoch `e` is built during epoch `e - 1` (of length T, starting at S):

    S + T/2     vote_at          descriptor uploads for e close; each authority signs its
                                 vote (with its commitment) and hands it to the others
    S + 9T/16   relay_at         votes close: each authority relays the votes it held at
                                 this instant, and reveals the value it committed to
    S + 11T/16  reveal_relay_at  reveals close: each authority relays the reveals it held
    S + 3T/4    compute_at       relays close; each authority computes and signs
    S + 7T/8    publish_at       signature exchange closes; the consensus is published
    S + T       valid_after      epoch e begins (= fresh_until of e - 1)
    S + 2T      fresh_until  epoch e ends
    S + 3T      valid_until  the consensus of e expires: nodes keep epoch e's keys through
                             epoch e + 1 for packets in flight, and so may its consensus be used
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from directory.errors import ConfigError, InvalidTimeError

DEFAULT_ORIGIN_MS = 1_704_067_200_000
"""2024-01-01T00:00:00Z."""
DEFAULT_EPOCH_LENGTH_MS = 20 * 60 * 1000
MIN_EPOCH_LENGTH_MS = 1000


def to_ms(now: float) -> int:
    """Float seconds since the Unix epoch to integer milliseconds (rounded down);
    `InvalidTimeError` for NaN, infinities and anything that is not a number."""
    if type(now) not in (int, float) or not math.isfinite(now):
        raise InvalidTimeError(f"not a finite time in seconds: {now!r}")
    return math.floor(now * 1000)


@dataclass(frozen=True, slots=True)
class EpochSchedule:
    """The timeline of one epoch's consensus, in milliseconds since the Unix epoch."""

    epoch: int
    vote_at: int
    relay_at: int
    reveal_relay_at: int
    compute_at: int
    publish_at: int
    valid_after: int
    fresh_until: int
    valid_until: int


@dataclass(frozen=True, slots=True)
class EpochClock:
    """Epoch `n` covers [origin + n·length, origin + (n+1)·length)."""

    origin_ms: int = DEFAULT_ORIGIN_MS
    length_ms: int = DEFAULT_EPOCH_LENGTH_MS

    def __post_init__(self) -> None:
        if type(self.origin_ms) is not int or self.origin_ms < 0:
            raise ConfigError("the epoch origin must be a non-negative integer of milliseconds")
        if type(self.length_ms) is not int or self.length_ms < MIN_EPOCH_LENGTH_MS:
            raise ConfigError(
                f"the epoch length must be an integer of at least {MIN_EPOCH_LENGTH_MS} ms"
            )

    def epoch_at(self, now: float) -> int:
        """The epoch `now` falls in; 0 before the origin."""
        return max(0, (to_ms(now) - self.origin_ms) // self.length_ms)

    def start_ms(self, epoch: int) -> int:
        """When `epoch` begins."""
        return self.origin_ms + epoch * self.length_ms

    def start(self, epoch: int) -> float:
        """When `epoch` begins, in float seconds."""
        return self.start_ms(epoch) / 1000

    def schedule(self, epoch: int) -> EpochSchedule:
        """The phase deadlines for building `epoch`'s consensus (during `epoch - 1`) and its
        validity times."""
        if epoch < 1:
            raise ConfigError("epoch 0 has no consensus: it is built during the epoch before")
        building = self.start_ms(epoch - 1)
        length = self.length_ms
        return EpochSchedule(
            epoch=epoch,
            vote_at=building + length // 2,
            relay_at=building + length * 9 // 16,
            reveal_relay_at=building + length * 11 // 16,
            compute_at=building + length * 3 // 4,
            publish_at=building + length * 7 // 8,
            valid_after=building + length,
            fresh_until=building + 2 * length,
            valid_until=building + 3 * length,
        )
