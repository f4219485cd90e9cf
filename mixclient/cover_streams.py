"""The client's sending schedule: the three Loopix streams and the queue of real packets
(sans-I/O; `rng` and `now` injected, times in seconds on the caller's clock).

Streams. Three independent Poisson processes with the rates of the consensus in force
(`Parameters.lambda_p`, `lambda_l`, `lambda_d`, events per second):

    payload (λ_P): send the next queued real packet, or a drop packet when none is queued
    loop    (λ_L): send a loop packet, routed through the network back to the own mailbox
    drop    (λ_D): send a drop packet

Each stream keeps the time of its next event; when it fires, the next one is drawn as
`at + Exp(rate)`. Draws are taken from `rng` in the order the events fire, so the event
times are a function of the seed and the rates alone: the queue never touches `rng`, and an
observer of the link sees the same process whether the user is idle or busy. A rate of 0
turns a stream off.

Consensus changes. `set_rates(rates, now)` redraws, from `now`, the next event of each
stream whose rate changed (the exponential is memoryless, so the process stays Poisson
with the new rate from `now` on); streams whose rate is unchanged keep their schedule.

Lateness. A driver that wakes late gets every event up to `now` from `due(now)`, in time
order. Events more than `max_lateness` seconds in the past (a suspended laptop) are not
sent in a burst: the stream is restarted at `now - max_lateness` (memoryless again) and the
restart is counted in `restarts`.

Building ahead. `next_emission(now)` hands out the next emission before it falls due, so
that the driver builds its packet (route, SURB-ACK, Sphinx layers) while it waits and only
puts ready bytes on the link at `at`: what building costs, real or cover, never shows in the
link's timing. A payload slot taken ahead takes its queued packet then; a real packet queued
after that waits for the slot after.

Queue. Real packets (first transmissions, retransmissions, replies) wait in a bounded
`SendQueue` and leave ONLY in payload-stream slots, oldest first; retransmissions and
replies (`urgent`) go before new packets. A full queue refuses the packet (`put` returns
False), which is the caller's back-pressure: nothing is sent outside the schedule.
"""

from __future__ import annotations

import enum
import math
import random
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

from directory.parameters import Parameters

T = TypeVar("T")

DEFAULT_MAX_LATENESS = 5.0
DEFAULT_QUEUE_CAPACITY = 4096


class StreamKind(enum.Enum):
    """Which Poisson stream an event belongs to."""

    PAYLOAD = "payload"
    LOOP = "loop"
    DROP = "drop"


@dataclass(frozen=True, slots=True)
class StreamRates:
    """Events per second of each stream."""

    payload: float
    loop: float
    drop: float

    def __post_init__(self) -> None:
        for name in ("payload", "loop", "drop"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"the {name} rate must be a finite number >= 0")

    @classmethod
    def from_parameters(cls, parameters: Parameters) -> StreamRates:
        """The rates a consensus prescribes (every client uses the same)."""
        return cls(parameters.lambda_p, parameters.lambda_l, parameters.lambda_d)

    def of(self, kind: StreamKind) -> float:
        return float(getattr(self, kind.value))

    @property
    def total(self) -> float:
        """λ_P + λ_L + λ_D: the rate of packets on the client's link."""
        return self.payload + self.loop + self.drop


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """A stream fired at `at`."""

    kind: StreamKind
    at: float


class PoissonStreams:
    """The three independent Poisson processes, as a schedule the driver polls."""

    def __init__(
        self,
        rates: StreamRates,
        *,
        rng: random.Random,
        now: float,
        max_lateness: float = DEFAULT_MAX_LATENESS,
    ) -> None:
        if not max_lateness > 0:
            raise ValueError("max_lateness must be positive")
        self._rng = rng
        self._rates = rates
        self._max_lateness = max_lateness
        self._next: dict[StreamKind, float] = {
            kind: self._draw(now, rates.of(kind)) for kind in StreamKind
        }
        self.restarts = 0

    @property
    def rates(self) -> StreamRates:
        return self._rates

    def set_rates(self, rates: StreamRates, now: float) -> None:
        """Switch to `rates` (a new consensus): streams whose rate changed restart at `now`."""
        for kind in StreamKind:
            if rates.of(kind) != self._rates.of(kind):
                self._next[kind] = self._draw(now, rates.of(kind))
        self._rates = rates

    def next_event(self) -> StreamEvent | None:
        """The event that fires next (not consumed), or None when every stream is off."""
        kind = min(self._next, key=self._next.__getitem__)
        at = self._next[kind]
        return None if math.isinf(at) else StreamEvent(kind, at)

    def wait_time(self, now: float) -> float:
        """Seconds from `now` until the next event: 0 if one is due, inf if none will come."""
        event = self.next_event()
        return math.inf if event is None else max(0.0, event.at - now)

    def due(self, now: float) -> list[StreamEvent]:
        """Consume and return every event at or before `now`, in time order."""
        self._restart_late(now)
        events = []
        while True:
            kind = min(self._next, key=self._next.__getitem__)
            at = self._next[kind]
            if at > now:
                return events
            events.append(StreamEvent(kind, at))
            self._next[kind] = self._draw(at, self._rates.of(kind))

    def pop(self, now: float) -> StreamEvent | None:
        """Consume and return the next event, due or not (None when every stream is off)."""
        self._restart_late(now)
        event = self.next_event()
        if event is not None:
            self._next[event.kind] = self._draw(event.at, self._rates.of(event.kind))
        return event

    def _restart_late(self, now: float) -> None:
        horizon = now - self._max_lateness
        for kind, at in self._next.items():
            if at < horizon:
                self._next[kind] = self._draw(horizon, self._rates.of(kind))
                self.restarts += 1

    def _draw(self, start: float, rate: float) -> float:
        return start + self._rng.expovariate(rate) if rate > 0 else math.inf


class SendQueue(Generic[T]):
    """Real packets waiting for a payload slot: bounded, FIFO, urgent ones first."""

    def __init__(self, capacity: int = DEFAULT_QUEUE_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("the queue capacity must be at least 1")
        self.capacity = capacity
        self._urgent: deque[T] = deque()
        self._normal: deque[T] = deque()

    def put(self, item: T, *, urgent: bool = False) -> bool:
        """Queue `item`; False (and nothing queued) when the queue is full."""
        if len(self) >= self.capacity:
            return False
        (self._urgent if urgent else self._normal).append(item)
        return True

    def take(self) -> T | None:
        """The next packet to send, or None when the queue is empty."""
        if self._urgent:
            return self._urgent.popleft()
        if self._normal:
            return self._normal.popleft()
        return None

    def __len__(self) -> int:
        return len(self._urgent) + len(self._normal)

    @property
    def full(self) -> bool:
        return len(self) >= self.capacity


@dataclass(frozen=True, slots=True)
class Emission(Generic[T]):
    """What to put on the link at `at`: `packet` (a queued real packet, in a payload slot
    only), or when it is None a cover packet of `kind` (payload and drop: a drop packet;
    loop: a loop packet)."""

    kind: StreamKind
    at: float
    packet: T | None = None

    @property
    def real(self) -> bool:
        return self.packet is not None


class CoverSchedule(Generic[T]):
    """The streams and the send queue together: `due(now)` says what to send."""

    def __init__(
        self,
        rates: StreamRates,
        *,
        rng: random.Random,
        now: float,
        queue_capacity: int = DEFAULT_QUEUE_CAPACITY,
        max_lateness: float = DEFAULT_MAX_LATENESS,
    ) -> None:
        self.streams = PoissonStreams(rates, rng=rng, now=now, max_lateness=max_lateness)
        self.queue: SendQueue[T] = SendQueue(queue_capacity)
        self.sent_real = 0
        self.sent_cover = {kind: 0 for kind in StreamKind}

    def set_rates(self, rates: StreamRates, now: float) -> None:
        self.streams.set_rates(rates, now)

    def wait_time(self, now: float) -> float:
        return self.streams.wait_time(now)

    def due(self, now: float) -> list[Emission[T]]:
        """Every emission due at `now`, in time order; payload slots take queued packets."""
        return [self._fill(event) for event in self.streams.due(now)]

    def next_emission(self, now: float) -> Emission[T] | None:
        """The next emission, taken ahead of its time `at` (None when every stream is off)."""
        event = self.streams.pop(now)
        return None if event is None else self._fill(event)

    def _fill(self, event: StreamEvent) -> Emission[T]:
        packet = self.queue.take() if event.kind is StreamKind.PAYLOAD else None
        if packet is None:
            self.sent_cover[event.kind] += 1
        else:
            self.sent_real += 1
        return Emission(event.kind, event.at, packet)
