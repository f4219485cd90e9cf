"""The testnet's smoke run: real packets along real 5-hop paths into a real mailbox.

A sender registers a mailbox at the entry gateway and a receiver at the exit gateway, each
over its own Noise client link. The sender builds packets with the consensus's keys along
entry gateway → layer 1 → layer 2 → layer 3 → exit gateway, each hop's delay drawn from
Exp(mean) as a client would, and sends them at a steady rate; the receiver polls its mailbox,
acknowledges what it gets, and the run reports counts and latency percentiles, with the part
of the latency that the drawn delays do not explain (the network and processing overhead).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass

import trio

from directory.consensus import Consensus
from mixnode.gateway_client import GatewayClient
from mixnode.key_ring import LinkKey
from mixnode.loop_cover import draw_delay_ms
from mixnode.surb_ack import carries_surb_acks
from sphinx_packets import Geometry, NodeDelay, PathHop, Recipient, create_packet
from trimix.testnet import PlannedNode

MARKER = b"trimix-smoke-v1\0"
_HEAD = struct.Struct(">16sQdd")  # marker, sequence, sent at, drawn delays (s)


@dataclass(frozen=True, slots=True)
class SmokeReport:
    sent: int
    delivered: int
    duplicates: int
    latency_ms: tuple[float, ...]
    overhead_ms: tuple[float, ...]
    """Latency minus the delays drawn for the packet's five hops."""

    def percentile(self, values: tuple[float, ...], q: float) -> float:
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]

    def as_dict(self) -> dict[str, object]:
        def rounded(values: tuple[float, ...], q: float) -> float:
            return round(self.percentile(values, q), 2)

        return {
            "sent": self.sent,
            "delivered": self.delivered,
            "duplicates": self.duplicates,
            "latency_ms_p50": rounded(self.latency_ms, 50),
            "latency_ms_p90": rounded(self.latency_ms, 90),
            "latency_ms_p99": rounded(self.latency_ms, 99),
            "overhead_ms_p50": rounded(self.overhead_ms, 50),
            "overhead_ms_p99": rounded(self.overhead_ms, 99),
        }


def smoke_path(
    consensus: Consensus,
    entry: bytes,
    exit_: bytes,
    mailbox_id: bytes,
    rng: random.Random,
) -> tuple[list[PathHop], float]:
    """A client's path entry → one mix per layer → exit, with drawn delays; and their sum."""
    parameters = consensus.parameters
    route = [entry, *(rng.choice(layer) for layer in consensus.layers), exit_]
    delays = [
        draw_delay_ms(rng, parameters.mean_delay_ms, parameters.max_delay_ms) for _ in route
    ]
    path = [
        PathHop(hop, consensus.descriptor(hop).sphinx_key(consensus.epoch), (NodeDelay(d),))
        for hop, d in zip(route[:-1], delays[:-1], strict=True)
    ]
    path.append(
        PathHop(
            exit_,
            consensus.descriptor(exit_).sphinx_key(consensus.epoch),
            (Recipient(mailbox_id), NodeDelay(delays[-1])),
        )
    )
    return path, sum(delays) / 1000


async def smoke_run(
    current: Callable[[], Consensus],
    geometry: Geometry,
    entry: PlannedNode,
    exit_: PlannedNode,
    *,
    packets: int,
    rate: float,
    settle: float = 15.0,
    rng: random.Random | None = None,
) -> SmokeReport:
    """Send `packets` packets at `rate` per second, each built with the consensus `current()`
    returns at that moment (as a client would: keys rotate every epoch); wait up to `settle`
    seconds for the last."""
    rng = rng or random.Random()
    assert entry.client_port is not None and exit_.client_port is not None
    sender_key = LinkKey.generate()
    receiver_key = LinkKey.generate()
    size = geometry.packet_size
    ack_field = geometry.surb_size if carries_surb_acks(geometry) else 0
    sender = await GatewayClient.connect(
        "127.0.0.1", entry.client_port, sender_key.private_key, entry.link_public_key, size
    )
    receiver = await GatewayClient.connect(
        "127.0.0.1", exit_.client_port, receiver_key.private_key, exit_.link_public_key, size
    )
    try:
        await sender.register()
        mailbox = await receiver.register()
        seen: set[int] = set()
        latency: list[float] = []
        overhead: list[float] = []
        duplicates = 0
        sending_done = trio.Event()

        async def send_all() -> None:
            for sequence in range(packets):
                path, delays = smoke_path(current(), entry.node_id, exit_.node_id, mailbox, rng)
                # No SURB-ACK (the field is zero): the receiver's polling measures delivery.
                head = bytes(ack_field) + _HEAD.pack(MARKER, sequence, trio.current_time(), delays)
                payload = head + bytes(geometry.user_payload_size - len(head))
                await sender.send_packet(create_packet(geometry, path, payload))
                await trio.sleep(rng.expovariate(rate))
            sending_done.set()

        async def receive_all() -> None:
            nonlocal duplicates
            idle_since: float | None = None
            while len(seen) < packets:
                fetched = await receiver.fetch(16)
                now = trio.current_time()
                for item in fetched:
                    marker, sequence, sent_at, delays = _HEAD.unpack_from(item.message.payload)
                    if marker != MARKER:
                        continue
                    if sequence in seen:
                        duplicates += 1
                        continue
                    seen.add(sequence)
                    latency.append((now - sent_at) * 1000)
                    overhead.append((now - sent_at - delays) * 1000)
                if fetched:
                    await receiver.ack([m.message_id for m in fetched])
                    idle_since = None
                    continue
                if sending_done.is_set():
                    idle_since = idle_since if idle_since is not None else now
                    if now - idle_since > settle:
                        return
                await trio.sleep(0.02)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_all)
            nursery.start_soon(receive_all)
    finally:
        await sender.aclose()
        await receiver.aclose()
    return SmokeReport(packets, len(seen), duplicates, tuple(latency), tuple(overhead))
