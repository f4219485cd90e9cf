"""The testnet demo: two clients, alice and bob, exchange messages of several sizes, then an
anonymous message and its reply; each delivery is printed with its latency, and each client
says how many packets it put on its link and how many of them were real.

The demo's verdict is "every message delivered exactly once, with the right content and the
right sender": both inboxes are read for the whole run (so that a latency is the moment a
message came out of `messages()`, and a second copy or a message nobody sent is seen), and
`tally` compares what was expected with what arrived. `demo_run` drives it on a running
testnet (`trimix testnet --demo`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

import trio
from tqdm import tqdm

from mixclient import Client, ClientAddress, ClientConfig, ClientError, ReceivedMessage
from mixclient.e2e import seal_overhead
from mixclient.payload_framing import fragment_count, frame_data_size
from trimix.testnet import TestnetPlan

DEMO_SIZES = (1, 2048, 64 * 1024, 256 * 1024)
DEMO_RATES = (20.0, 2.0, 2.0)
"""λ_P, λ_L, λ_D of the demo network: raised from the defaults so that 256 KiB takes seconds."""
ANONYMOUS_TEXT = b"guess who"
REPLY_TEXT = b"someone who holds my SURBs"
GRACE_SECONDS = 3.0
"""How long the inboxes are still read after the last delivery, to catch a second copy."""
_ENVELOPE_HEAD = 4
"""Version, kind and the sender's length: what a direct message's envelope adds besides the
sender's address (mixclient.envelope); for the progress bar's length only."""


@dataclass(frozen=True, slots=True)
class Expected:
    """A message the demo sent: to whom, what, and from whom it must appear to come."""

    label: str
    recipient: str
    data: bytes = field(repr=False)
    sender: str | None = field(repr=False)
    """The sender's address the recipient must see; None: it must see none."""


@dataclass(frozen=True, slots=True)
class Arrival:
    """A message that came out of a client's `messages()`."""

    recipient: str
    data: bytes = field(repr=False)
    sender: str | None = field(repr=False)
    at: float
    message: ReceivedMessage | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Tally:
    copies: tuple[int, ...]
    """For each expected message, how many intact copies arrived (1 is right)."""
    unexpected: int
    """Arrivals that are no expected message: damaged, from the wrong sender, or made up."""

    @property
    def ok(self) -> bool:
        return self.unexpected == 0 and all(c == 1 for c in self.copies)


def tally(expected: Sequence[Expected], arrivals: Sequence[Arrival]) -> Tally:
    """Compare what was sent with what arrived."""
    copies = [0] * len(expected)
    unexpected = 0
    for arrival in arrivals:
        matches = [
            index
            for index, sent in enumerate(expected)
            if (sent.recipient, sent.data, sent.sender)
            == (arrival.recipient, arrival.data, arrival.sender)
        ]
        if not matches:
            unexpected += 1
        for index in matches:
            copies[index] += 1
    return Tally(tuple(copies), unexpected)


@dataclass(frozen=True, slots=True)
class Delivery:
    label: str
    size: int
    acknowledged_s: float | None
    """Seconds from `send` to its return (every fragment acknowledged); None: not returned
    (a reply on SURBs is not acknowledged: the time its packets left)."""
    delivered_s: float | None
    """Seconds from `send` to the message coming out of the recipient's `messages()`."""

    def as_dict(self) -> dict[str, object]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 2)

        return {
            "label": self.label,
            "size": self.size,
            "acknowledged_s": rounded(self.acknowledged_s),
            "delivered_s": rounded(self.delivered_s),
        }


@dataclass(frozen=True, slots=True)
class DemoReport:
    deliveries: tuple[Delivery, ...]
    tally: Tally
    links: dict[str, dict[str, int]]
    """Per client: packets_on_link, real, loops_returned, loops_lost, retransmissions."""
    error: str | None = None
    """Why the demo stopped early (a send failed, a message did not come in time)."""

    @property
    def ok(self) -> bool:
        return self.error is None and self.tally.ok

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "error": self.error,
            "deliveries": [d.as_dict() for d in self.deliveries],
            "copies": list(self.tally.copies),
            "unexpected": self.tally.unexpected,
            "links": self.links,
        }


class _Inboxes:
    """Every arrival at either client, and a way to wait for one."""

    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []
        self._changed = trio.Event()

    async def collect(self, name: str, client: Client) -> None:
        async for message in client.messages():
            self.arrivals.append(
                Arrival(name, message.data, message.sender, trio.current_time(), message)
            )
            self._changed.set()
            self._changed = trio.Event()

    async def wait_for(self, expected: Expected) -> Arrival:
        """The first arrival of `expected` (sender included); waits for it."""
        key = (expected.recipient, expected.data, expected.sender)
        while True:
            changed = self._changed
            for arrival in self.arrivals:
                if (arrival.recipient, arrival.data, arrival.sender) == key:
                    return arrival
            await changed.wait()


async def demo_run(
    plan: TestnetPlan,
    echo: Callable[[str], None],
    *,
    timeout: float = 120.0,
    progress: TextIO | None = None,
    sizes: Sequence[int] = DEMO_SIZES,
) -> DemoReport:
    """Run the demo on the running testnet `plan`. `echo` prints a line; with `progress`,
    a bar of acknowledged fragments is drawn there while a message is sent. `timeout`
    bounds each step (a send, then its delivery)."""
    first, second = plan.gateways[:2]
    alice_config = ClientConfig.from_toml(plan.client_config("alice", gateway=first))
    bob_config = ClientConfig.from_toml(plan.client_config("bob", gateway=second))
    inboxes = _Inboxes()
    expected: list[Expected] = []
    deliveries: list[Delivery] = []
    error: str | None = None
    async with (
        Client(alice_config) as alice,
        Client(bob_config) as bob,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(inboxes.collect, "alice", alice)
        nursery.start_soon(inboxes.collect, "bob", bob)
        echo(f"alice {alice.address[:24]}… at {first.name}")
        echo(f"bob   {bob.address[:24]}… at {second.name}")
        fragment_room = frame_data_size(alice_config.geometry)
        overhead = (
            _ENVELOPE_HEAD
            + len(ClientAddress.parse(alice.address).to_bytes())
            + seal_overhead(ClientAddress.parse(bob.address).suite)
        )
        try:
            for size in sizes:
                sent = Expected(f"alice → bob {size} bytes", "bob", os.urandom(size), alice.address)
                expected.append(sent)
                fragments = fragment_count(size + overhead, fragment_room)
                started = trio.current_time()
                with trio.fail_after(timeout):
                    await _send_with_progress(
                        alice, bob.address, sent.data, fragments, progress, f"{size} bytes"
                    )
                    acked = trio.current_time() - started
                    arrival = await inboxes.wait_for(sent)
                delivery = Delivery(sent.label, size, acked, arrival.at - started)
                deliveries.append(delivery)
                echo(f"alice → bob  {size:>7} bytes: acknowledged in {acked:5.2f} s, "
                     f"delivered in {arrival.at - started:5.2f} s")

            question = Expected("alice → bob anonymous", "bob", ANONYMOUS_TEXT, None)
            expected.append(question)
            started = trio.current_time()
            with trio.fail_after(timeout):
                await alice.send_anonymous(bob.address, question.data, reply_surbs=2)
                acked = trio.current_time() - started
                arrival = await inboxes.wait_for(question)
            deliveries.append(
                Delivery(question.label, len(question.data), acked, arrival.at - started)
            )
            echo(f"alice → bob  anonymous message: acknowledged in {acked:5.2f} s, delivered "
                 f"in {arrival.at - started:5.2f} s; bob sees sender {arrival.sender!r}")

            answer = Expected("bob → alice reply", "alice", REPLY_TEXT, None)
            expected.append(answer)
            assert arrival.message is not None
            started = trio.current_time()
            with trio.fail_after(timeout):
                await arrival.message.reply(answer.data)
                left = trio.current_time() - started
                back = await inboxes.wait_for(answer)
            deliveries.append(Delivery(answer.label, len(answer.data), None, back.at - started))
            echo(f"bob → alice  reply through alice's SURBs: on bob's link in {left:5.2f} s, "
                 f"delivered in {back.at - started:5.2f} s")
            await trio.sleep(GRACE_SECONDS)
        except (ClientError, trio.TooSlowError) as failure:
            error = (
                f"{expected[-1].label}: not delivered within {timeout:g} s"
                if isinstance(failure, trio.TooSlowError)
                else f"{expected[-1].label}: {failure}"
            )
            echo(f"FAILED: {error}")
        nursery.cancel_scope.cancel()
        links = {}
        for name, client in (("alice", alice), ("bob", bob)):
            stats = client.stats
            links[name] = {
                "packets_on_link": stats.packets_sent,
                "real": stats.real_sent,
                "loops_returned": stats.loops_returned,
                "loops_lost": stats.loops_lost,
                "retransmissions": stats.retransmissions,
            }
            echo(f"{name:5}: {stats.packets_sent} packets on its link, {stats.real_sent} of "
                 f"them real; loops back {stats.loops_returned}, lost {stats.loops_lost}; "
                 f"retransmissions {stats.retransmissions}")
    counted = tally(expected, inboxes.arrivals)
    for sent, copies in zip(expected, counted.copies, strict=True):
        if copies != 1:
            echo(f"{sent.label}: {copies} copies arrived (1 expected)")
    if counted.unexpected:
        echo(f"{counted.unexpected} message(s) arrived that nobody sent (or damaged)")
    return DemoReport(tuple(deliveries), counted, links, error)


async def _send_with_progress(
    client: Client,
    address: str,
    data: bytes,
    fragments: int,
    progress: TextIO | None,
    description: str,
) -> None:
    """`client.send`, with a bar of its fragments acknowledged (about `fragments` of them)."""
    if progress is None:
        await client.send(address, data)
        return
    before = client.stats.acks_received
    with tqdm(total=fragments, desc=description, unit="fragment", file=progress,
              leave=False) as bar:
        async with trio.open_nursery() as nursery:

            async def follow() -> None:
                while True:
                    done = client.stats.acks_received - before
                    bar.total = max(bar.total, done)
                    bar.update(done - bar.n)
                    await trio.sleep(0.2)

            nursery.start_soon(follow)
            await client.send(address, data)
            nursery.cancel_scope.cancel()
