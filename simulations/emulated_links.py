"""In-memory links of an emulation: bounded Trio memory channels instead of Noise over TCP.

A node's inbox carries `Carried` packets: the packet bytes, which is all the node's cores
see, and the wiretap's trace number beside them (None for SURB-ACK replies, which the event
log leaves out). A client's inbox carries what its gateway stored for it (`Delivery`), the
in-memory stand-in for fetching its mailbox.

Every link adds the configured constant latency. With a latency above zero the packets in
transit wait in one `mixnode.scheduler` heap driven by one task (a constant latency keeps
each link first in, first out). A full inbox refuses the packet, counted by reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import trio

from mixnode.gateway_protocol import Delivery
from mixnode.scheduler import DelayScheduler, SchedulerTask

INBOX_CAPACITY = 65_536
IN_TRANSIT_CAPACITY = 1_000_000


@dataclass(frozen=True, slots=True)
class Carried:
    """A packet on an emulated link, with the trace only the wiretap reads."""

    trace: int | None
    packet: bytes = field(repr=False)


_Item = tuple[trio.MemorySendChannel[Carried] | trio.MemorySendChannel[Delivery], Carried | Delivery]


class EmulatedLinks:
    """Every link of the emulated network: node inboxes, client inboxes, the link latency."""

    def __init__(self, latency: float, *, capacity: int = INBOX_CAPACITY) -> None:
        if not latency >= 0:
            raise ValueError("the link latency must be >= 0")
        self.latency = latency
        self._capacity = capacity
        self._nodes: dict[bytes, trio.MemorySendChannel[Carried]] = {}
        self._clients: dict[int, trio.MemorySendChannel[Delivery]] = {}
        self._transit: SchedulerTask[_Item] = SchedulerTask(DelayScheduler(IN_TRANSIT_CAPACITY))
        self.refused: Counter[str] = Counter()

    @property
    def in_transit(self) -> int:
        """Packets on a link with latency, not yet in an inbox."""
        return len(self._transit.scheduler)

    def attach_node(self, node_id: bytes) -> trio.MemoryReceiveChannel[Carried]:
        send, receive = trio.open_memory_channel[Carried](self._capacity)
        self._nodes[node_id] = send
        return receive

    def attach_client(self, index: int) -> trio.MemoryReceiveChannel[Delivery]:
        send, receive = trio.open_memory_channel[Delivery](self._capacity)
        self._clients[index] = send
        return receive

    def to_node(self, node_id: bytes, carried: Carried) -> None:
        channel = self._nodes.get(node_id)
        if channel is None:
            self.refused["unknown_node"] += 1
            return
        self._send(channel, carried)

    def to_client(self, index: int, delivery: Delivery) -> None:
        self._send(self._clients[index], delivery)

    def _send(
        self, channel: trio.MemorySendChannel[Carried] | trio.MemorySendChannel[Delivery], item: Carried | Delivery
    ) -> None:
        if self.latency > 0:
            if not self._transit.push(trio.current_time() + self.latency, (channel, item)):
                self.refused["in_transit_full"] += 1
            return
        self._deliver(channel, item)

    def _deliver(
        self, channel: trio.MemorySendChannel[Carried] | trio.MemorySendChannel[Delivery], item: Carried | Delivery
    ) -> None:
        try:
            channel.send_nowait(item)  # type: ignore[arg-type]
        except trio.WouldBlock:
            self.refused["inbox_full"] += 1

    def _arrive(self, items: list[_Item]) -> None:
        for channel, item in items:
            self._deliver(channel, item)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Carry packets in transit (only needed with a latency above zero); runs until cancelled."""
        if self.latency <= 0:
            task_status.started()
            await trio.sleep_forever()
        await self._transit.run(self._arrive, task_status=task_status)
