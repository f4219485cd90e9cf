"""Anyone who knows an address can put packets in that mailbox. A hostile sender on the real
testnet (3 authority and 8 node processes on 127.0.0.1; its packets cross five real hops)
sends bob a frame of no known format, a message sealed to nobody, and a copy of a message
bob already has. Bob drops each, counts it by reason in `stats.dropped`, and goes on
delivering: every real message exactly once, nothing else.

The sender is a real `Client` whose sealing and framing this test replaces while it sends the
junk (bob, in the same process, never calls them: he only opens and decodes)."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import aclosing
from typing import Any

import pytest
import trio

import mixclient.client as client_module
from mixclient import Client, ClientConfig
from mixclient.payload_framing import FrameKind
from trimix.testnet import TestnetPlan, TestnetProcesses

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


async def test_junk_in_the_mailbox_is_dropped_counted_and_stops_nothing(
    apps_testnet: tuple[TestnetPlan, TestnetProcesses], monkeypatch: pytest.MonkeyPatch
) -> None:
    plan, _ = apps_testnet
    first, second = plan.gateways
    mallory_config = ClientConfig.from_toml(plan.client_config("hostile-mallory", gateway=first))
    bob_config = ClientConfig.from_toml(plan.client_config("hostile-bob", gateway=second))
    real_seal = client_module.seal
    real_fragment = client_module.fragment
    real_encode = client_module.encode_user_payload
    surb_size = mallory_config.geometry.surb_size
    sent_frames: list[Any] = []

    def recording_fragment(*args: Any) -> Any:
        frames = real_fragment(*args)
        sent_frames.append(frames)
        return frames

    def junk_seal(*args: Any, **kwargs: Any) -> bytes:
        return os.urandom(len(real_seal(*args, **kwargs)))  # sealed to no one

    def zeroed_frame(geometry: Any, frame: Any, surb_ack: bytes | None = None) -> bytes:
        real = real_encode(geometry, frame, surb_ack)
        if frame.kind is not FrameKind.DATA:  # the clients' own loops and drops, meanwhile
            return real
        return real[:surb_size] + bytes(len(real) - surb_size)  # a frame of kind 0

    def replaying_fragment(*_: Any) -> Any:
        return sent_frames[0]  # the first message again, id and all

    async def send_with(name: str, replacement: Callable[..., Any], data: bytes) -> None:
        with monkeypatch.context() as patch:
            patch.setattr(client_module, name, replacement)
            await mallory.send(bob.address, data)

    async with (
        Client(mallory_config) as mallory,
        Client(bob_config) as bob,
        aclosing(bob.messages()) as inbox,
    ):
        received: list[bytes] = []
        with trio.fail_after(120):
            await send_with("fragment", recording_fragment, b"first")
            received.append((await anext(inbox)).data)
            await send_with("encode_user_payload", zeroed_frame, b"never decoded")
            await send_with("seal", junk_seal, b"never opened")
            await send_with("fragment", replaying_fragment, b"first, again")
            await mallory.send(bob.address, b"last")
            received.append((await anext(inbox)).data)
            # The junk went before "last", on paths of its own: give a straggler time.
            while not {"undecodable", "unopenable", "duplicate"} <= set(bob.stats.dropped):
                await trio.sleep(0.2)
        with trio.move_on_after(3):
            received.append((await anext(inbox)).data)
        assert received == [b"first", b"last"]
        dropped = bob.stats.dropped
        assert dropped["undecodable"] >= 1 and dropped["unopenable"] >= 1
        assert dropped["duplicate"] >= 1
        # Only reasons the network itself makes besides (late ACKs and loops).
        assert set(dropped) <= {
            "undecodable", "unopenable", "duplicate", "unmatched_reply", "unmatched_loop",
        }
        assert mallory.stats.dropped.keys() <= {"unmatched_reply", "unmatched_loop", "duplicate"}
