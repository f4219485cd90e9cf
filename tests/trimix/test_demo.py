"""The demo's verdict (`tally`): every message exactly once, intact, from the right sender.
The demo itself over a real testnet: test_the_demo_* in tests/trimix/test_client_apps.py."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from trimix.demo import Arrival, DemoReport, Expected, Tally, tally

ALICE = "tmx1alice"


def sent(index: int, data: bytes, sender: str | None = ALICE) -> Expected:
    return Expected(f"message {index}", "bob", data, sender)


def arrived(message: Expected, *, at: float = 1.0) -> Arrival:
    return Arrival(message.recipient, message.data, message.sender, at)


messages = st.lists(st.binary(min_size=1, max_size=64), min_size=1, max_size=8, unique=True)


@given(messages, st.randoms(use_true_random=False))
def test_each_message_once_in_any_order_is_ok(datas: list[bytes], rng: random.Random) -> None:
    expected = [sent(i, d) for i, d in enumerate(datas)]
    arrivals = [arrived(m) for m in expected]
    rng.shuffle(arrivals)
    result = tally(expected, arrivals)
    assert result == Tally((1,) * len(datas), 0) and result.ok


@given(messages, st.data())
def test_a_second_copy_is_caught(datas: list[bytes], data: st.DataObject) -> None:
    expected = [sent(i, d) for i, d in enumerate(datas)]
    twice = data.draw(st.integers(0, len(expected) - 1))
    result = tally(expected, [*map(arrived, expected), arrived(expected[twice], at=9.0)])
    assert not result.ok
    assert result.copies[twice] == 2 and result.unexpected == 0


@given(messages, st.data())
def test_a_lost_message_is_caught(datas: list[bytes], data: st.DataObject) -> None:
    expected = [sent(i, d) for i, d in enumerate(datas)]
    lost = data.draw(st.integers(0, len(expected) - 1))
    result = tally(expected, [arrived(m) for i, m in enumerate(expected) if i != lost])
    assert not result.ok and result.copies[lost] == 0


def test_damage_a_wrong_sender_or_a_wrong_recipient_is_not_the_message() -> None:
    message = sent(0, b"hello")
    for wrong in (
        Arrival("bob", b"hellp", ALICE, 1.0),  # damaged
        Arrival("bob", b"hello", "tmx1mallory", 1.0),  # another sender
        Arrival("bob", b"hello", None, 1.0),  # a direct message shown as anonymous
        Arrival("alice", b"hello", ALICE, 1.0),  # the wrong inbox
    ):
        result = tally([message], [wrong])
        assert result == Tally((0,), 1) and not result.ok


def test_an_anonymous_message_must_arrive_without_a_sender() -> None:
    question = sent(0, b"guess who", sender=None)
    assert tally([question], [Arrival("bob", b"guess who", None, 1.0)]).ok
    assert not tally([question], [Arrival("bob", b"guess who", ALICE, 1.0)]).ok


def test_the_report_fails_on_an_early_stop_even_when_the_tally_holds() -> None:
    complete = DemoReport((), Tally((1,), 0), {})
    assert complete.ok and complete.as_dict()["ok"] is True
    stopped = DemoReport((), Tally((1,), 0), {}, error="message 1: not delivered within 120 s")
    assert not stopped.ok and stopped.as_dict()["error"].startswith("message 1")
