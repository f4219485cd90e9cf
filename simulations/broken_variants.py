"""Deliberately broken variants of the emulated network: they prove the comparison can fail.

* ``real_on_top``: a client whose real packets are added on top of the payload stream
  instead of taking its slots. The payload stream always sends drops, and real messages
  leave on a stream of their own at λ_P, so the client's link carries λ_P more packets per
  second than the design says, and an observer sees its traffic grow when it talks. The
  cover overhead (and the traffic profile) departs from the model's.
* ``no_delay``: nodes that forward every packet at once, ignoring the delay the sender
  wrote for them. Pools hold nothing; sender entropy and latency collapse.

Neither is ever used outside emulations that ask for it by name.
"""

from __future__ import annotations

import math
import random
from typing import Any, Final, Literal

from mixclient.cover_streams import (
    Emission,
    PoissonStreams,
    SendQueue,
    StreamKind,
    StreamRates,
)
from mixnode.packet_pipeline import Outcome, PacketPipeline, Scheduled
from simulations.emulated_client import ClientDriver, QueuedFragment

Variant = Literal["faithful", "real_on_top", "no_delay"]
VARIANTS: Final = ("faithful", "real_on_top", "no_delay")


class RealOnTopClient(ClientDriver):
    """Real packets on a stream of their own at λ_P, on top of the (all-cover) payload stream."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.real_queue = SendQueue()
        rate = self.consensus.parameters.lambda_p
        self._real_stream = PoissonStreams(
            StreamRates(rate, 0.0, 0.0), rng=random.Random(self._bytes_rng.randbytes(16)), now=0.0
        )

    def emissions(self, now: float) -> list[Emission[QueuedFragment]]:
        cover = self.schedule.due(now)  # its queue stays empty: every payload slot is a drop
        real = [
            Emission(StreamKind.PAYLOAD, event.at, item)
            for event in self._real_stream.due(now)
            if (item := self.real_queue.take()) is not None
        ]
        return sorted(cover + real, key=lambda emission: emission.at)

    def next_event(self) -> float:
        event = self._real_stream.next_event()
        return min(super().next_event(), math.inf if event is None else event.at)


class NoDelayPipeline(PacketPipeline):
    """The real pipeline, but every packet is due the moment it arrives."""

    def process(self, packet: bytes, now: float) -> Outcome:
        outcome = super().process(packet, now)
        if isinstance(outcome, Scheduled):
            return Scheduled(now, outcome.action)
        return outcome
