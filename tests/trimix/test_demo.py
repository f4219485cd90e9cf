"""The demo: its verdict (`tally`: every message exactly once, intact, from the right sender)
and the `trimix testnet --demo` command itself, run as a person runs it. (`demo_run` on a
shared testnet: tests/trimix/test_client_apps.py.)"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from trimix.demo import Arrival, DemoReport, Expected, Tally, tally

REPO = Path(__file__).resolve().parents[2]
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


def test_the_demo_command_runs_a_testnet_and_exits_0_when_all_arrived_once(
    tmp_path: Path,
) -> None:
    """`trimix testnet --demo` as a person runs it (short epochs so that the consensus comes
    sooner): exit code 0, the JSON report says every message came once, cover went out, and
    every daemon stopped cleanly."""
    process = subprocess.Popen(
        [sys.executable, "-m", "trimix", "testnet", "--demo", "--json", "--epoch-seconds", "4",
         "--dir", str(tmp_path / "tn")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its daemons share its process group: killed with it below
    )
    try:
        output, errors = process.communicate(timeout=240)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    assert process.returncode == 0, errors[-3000:]
    report = json.loads(output.strip().splitlines()[-1])
    assert report["ok"] and report["error"] is None and report["unexpected"] == 0
    assert report["copies"] == [1] * 6
    assert [d["size"] for d in report["deliveries"][:4]] == [1, 2048, 65536, 262144]
    assert all(d["delivered_s"] > 0 for d in report["deliveries"])
    alice, bob = report["links"]["alice"], report["links"]["bob"]
    assert alice["real"] >= 1 + 2 + 33 + 129 and bob["real"] >= 1  # fragments and the reply
    assert alice["packets_on_link"] > alice["real"] and bob["packets_on_link"] > bob["real"]
    assert "bob sees sender None" in errors
    assert "stopped every process cleanly" in errors
