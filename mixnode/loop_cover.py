"""A node's loop cover traffic (Loopix): packets routed through the network back to the node
itself, at λ_M from the consensus, and the alarm when too many of them do not return.

Sans-I/O: `LoopCover.build` makes one loop packet for the consensus in force, `returned`
takes the payload of a loop that came back, `expire` counts the loops overdue. A loop goes
through every layer once and a gateway, like any other packet, so that links carry it as
they carry everything else:

    mix of layer i (0-based): layers i+1 … L-1, a gateway, layers 0 … i-1, then itself
    gateway:                  layers 0 … L-1, then itself

Every hop, the node itself included, holds the loop for a delay drawn from Exp(mean) capped
at the consensus's maximum. A loop is overdue when it has not come back by the sum of its
delays plus `grace` seconds. An n−1 attack (an adversary holding back everything but its own
packets at some mix) makes loops vanish: `missing_ratio()` over recent loops is the alarm.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from directory.consensus import Consensus
from sphinx_packets import Geometry, NodeDelay, PathHop, Recipient, create_packet

LOOP_ID_SIZE = 16


@dataclass(frozen=True, slots=True)
class LoopPacket:
    first_hop: bytes = field(repr=False)
    packet: bytes = field(repr=False)
    overdue_at: float


def draw_delay_ms(rng: random.Random, mean_ms: int, max_ms: int) -> int:
    """One hop's delay: Exp(mean) in whole milliseconds, capped at the consensus maximum."""
    return min(round(rng.expovariate(1.0 / mean_ms)), max_ms)


class LoopCover:
    """Builds this node's loops and keeps track of the ones outstanding (bounded)."""

    def __init__(
        self,
        geometry: Geometry,
        node_id: bytes,
        loop_recipient: bytes,
        *,
        rng: random.Random,
        grace: float = 2.0,
        max_outstanding: int = 10_000,
        window: int = 200,
    ) -> None:
        self.geometry = geometry
        self.node_id = node_id
        self.loop_recipient = loop_recipient
        self.rng = rng
        self.grace = grace
        self.max_outstanding = max_outstanding
        self._outstanding: dict[bytes, float] = {}
        self._recent: deque[bool] = deque(maxlen=window)
        self.sent = 0
        self.returned_count = 0
        self.missing = 0

    def build(self, consensus: Consensus, now: float) -> LoopPacket | None:
        """A loop packet for `consensus`'s epoch, or None when this node cannot send one
        (not in the consensus, an empty layer, or too many outstanding)."""
        if len(self._outstanding) >= self.max_outstanding:
            return None
        try:
            own = consensus.descriptor(self.node_id)
        except KeyError:
            return None
        layers = [list(layer) for layer in consensus.layers]
        if any(not layer for layer in layers) or not consensus.gateways:
            return None
        own_layer = consensus.layer_of(self.node_id)
        if own_layer is None:
            route = [self.rng.choice(layer) for layer in layers]
        else:
            after = [self.rng.choice(layer) for layer in layers[own_layer + 1 :]]
            before = [self.rng.choice(layer) for layer in layers[:own_layer]]
            route = [*after, self.rng.choice(consensus.gateways), *before]
        parameters = consensus.parameters
        cap = parameters.max_delay_ms
        delays = [draw_delay_ms(self.rng, parameters.mean_delay_ms, cap) for _ in route]
        own_delay = draw_delay_ms(self.rng, parameters.mean_delay_ms, cap)
        epoch = consensus.epoch
        path = [
            PathHop(hop, consensus.descriptor(hop).sphinx_key(epoch), (NodeDelay(delay),))
            for hop, delay in zip(route, delays, strict=True)
        ]
        path.append(
            PathHop(
                self.node_id,
                own.sphinx_key(epoch),
                (Recipient(self.loop_recipient), NodeDelay(own_delay)),
            )
        )
        loop_id = self.rng.randbytes(LOOP_ID_SIZE)
        payload = loop_id + bytes(self.geometry.user_payload_size - LOOP_ID_SIZE)
        packet = create_packet(self.geometry, path, payload)
        overdue_at = now + (sum(delays) + own_delay) / 1000 + self.grace
        self._outstanding[loop_id] = overdue_at
        self.sent += 1
        return LoopPacket(path[0].node_id, packet, overdue_at)

    def returned(self, payload: bytes) -> bool:
        """A loop came back; False if it is not one we are waiting for (late or unknown)."""
        if self._outstanding.pop(bytes(payload[:LOOP_ID_SIZE]), None) is None:
            return False
        self.returned_count += 1
        self._recent.append(True)
        return True

    def expire(self, now: float) -> int:
        """Count the loops overdue at `now` as missing; returns how many were."""
        overdue = [key for key, at in self._outstanding.items() if at <= now]
        for key in overdue:
            del self._outstanding[key]
            self._recent.append(False)
        self.missing += len(overdue)
        return len(overdue)

    def missing_ratio(self) -> float:
        """The share of the most recent resolved loops that did not come back."""
        if not self._recent:
            return 0.0
        return self._recent.count(False) / len(self._recent)

    @property
    def outstanding(self) -> int:
        return len(self._outstanding)
