"""The testnet demo: two clients exchange messages of several sizes, then an anonymous
message and its reply, and each says how many packets it put on its link and how many of
them were real."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field

import trio

from mixclient import Client, ClientConfig, Emitted, ReceivedMessage
from trimix.testnet import TestnetPlan

DEMO_SIZES = (1, 2048, 64 * 1024, 256 * 1024)
DEMO_RATES = (20.0, 2.0, 2.0)
"""λ_P, λ_L, λ_D of the demo network: raised from the defaults so that 256 KiB takes seconds."""


@dataclass
class LinkCount:
    total: int = 0
    real: int = 0

    def __call__(self, emitted: Emitted) -> None:
        self.total += 1
        self.real += emitted.real


@dataclass
class DemoReport:
    deliveries: list[dict[str, object]] = field(default_factory=list)
    links: dict[str, dict[str, int]] = field(default_factory=dict)
    ok: bool = True


async def _next(stream: AsyncIterator[ReceivedMessage], timeout: float) -> ReceivedMessage:
    with trio.fail_after(timeout):
        return await anext(stream)


async def demo_run(
    plan: TestnetPlan, echo: Callable[[str], None], *, timeout: float = 120.0
) -> DemoReport:
    """Run the demo on a running testnet `plan`; `echo` prints progress."""
    first, second = plan.gateways
    alice_config = ClientConfig.from_toml(plan.client_config("alice", gateway=first))
    bob_config = ClientConfig.from_toml(plan.client_config("bob", gateway=second))
    counts = {"alice": LinkCount(), "bob": LinkCount()}
    report = DemoReport()
    async with (
        Client(alice_config, on_emit=counts["alice"]) as alice,
        Client(bob_config, on_emit=counts["bob"]) as bob,
        aclosing(alice.messages()) as alice_inbox,
        aclosing(bob.messages()) as bob_inbox,
    ):
        echo(f"alice {alice.address[:24]}… at {first.name}")
        echo(f"bob   {bob.address[:24]}… at {second.name}")
        for size in DEMO_SIZES:
            data = os.urandom(size)
            started = time.monotonic()
            await alice.send(bob.address, data)
            acked = time.monotonic() - started
            message = await _next(bob_inbox, timeout)
            latency = time.monotonic() - started
            good = message.data == data and message.sender == alice.address
            report.ok &= good
            report.deliveries.append(
                {"size": size, "acknowledged_s": round(acked, 2), "delivered_s": round(latency, 2),
                 "intact": good}
            )
            echo(f"alice → bob  {size:>7} bytes: acknowledged in {acked:5.2f} s, delivered in "
                 f"{latency:5.2f} s, {'intact' if good else 'DAMAGED'}")
        started = time.monotonic()
        await alice.send_anonymous(bob.address, b"guess who", reply_surbs=2)
        message = await _next(bob_inbox, timeout)
        anonymous = message.sender is None and message.anonymous and message.data == b"guess who"
        echo(f"alice → bob  anonymous message delivered in {time.monotonic() - started:5.2f} s; "
             f"bob sees sender {message.sender!r}")
        await message.reply(b"someone who knows my address")
        answer = await _next(alice_inbox, timeout)
        replied = answer.data == b"someone who knows my address"
        echo(f"bob → alice  reply through alice's SURBs delivered in "
             f"{time.monotonic() - started:5.2f} s, {'intact' if replied else 'DAMAGED'}")
        report.ok &= anonymous and replied
        report.deliveries.append({"anonymous_and_reply": anonymous and replied})
        for name, client in (("alice", alice), ("bob", bob)):
            stats = client.stats
            report.links[name] = {
                "packets_on_link": counts[name].total,
                "real": counts[name].real,
                "loops_returned": stats.loops_returned,
                "loops_lost": stats.loops_lost,
                "retransmissions": stats.retransmissions,
            }
            echo(f"{name:5}: {counts[name].total} packets on its link, {counts[name].real} of "
                 f"them real; loops back {stats.loops_returned}, lost {stats.loops_lost}; "
                 f"retransmissions {stats.retransmissions}")
    return report
