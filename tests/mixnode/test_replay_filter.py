"""The persistent Bloom replay filter and the per-epoch set of filters."""

from __future__ import annotations

import math
import os
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixnode.replay_filter import (
    DEFAULT_FALSE_POSITIVE_RATE,
    HEADER_SIZE,
    BloomParameters,
    BloomReplayFilter,
    ReplayFilterError,
    ReplayFilters,
    blocked_false_positive_rate,
)
from tests.mixnode.killed_child import READY, run_then_sigkill


def seeded(seed: int) -> random.Random:
    return random.Random(seed)


def tags(seed: int, count: int) -> list[bytes]:
    rng = seeded(seed)
    return [rng.randbytes(32) for _ in range(count)]


def new_filter(path: Path, expected_items: int = 1000, rate: float = 1e-6) -> BloomReplayFilter:
    return BloomReplayFilter.create(
        path, expected_items=expected_items, false_positive_rate=rate, rng=seeded(1).randbytes
    )


def test_sizing_follows_the_documented_formula() -> None:
    # the docstring's worked example: 5,000 packets/s for a key living 3 epochs of 20 minutes
    parameters = BloomParameters.for_load(5_000 * 3 * 20 * 60, DEFAULT_FALSE_POSITIVE_RATE)
    assert parameters.hashes == 16
    assert parameters.blocks == 1_353_972
    assert parameters.bits == 512 * parameters.blocks
    assert round(parameters.file_size / 2**20, 1) == 82.6
    assert round(parameters.bits / parameters.expected_items, 1) == 38.5
    assert DEFAULT_FALSE_POSITIVE_RATE == 1e-6


@pytest.mark.parametrize(
    ("items", "rate"), [(1, 0.5), (1000, 1e-6), (100_000, 0.01), (10**7, 1e-9)]
)
def test_sizing_takes_the_fewest_blocks_that_reach_the_rate(items: int, rate: float) -> None:
    parameters = BloomParameters.for_load(items, rate)
    per_block = items / parameters.blocks
    assert blocked_false_positive_rate(per_block, parameters.hashes) <= rate
    if parameters.blocks > 1:
        one_fewer = items / (parameters.blocks - 1)
        assert all(blocked_false_positive_rate(one_fewer, k) > rate for k in range(1, 29))


def test_the_false_positive_estimate_matches_a_direct_computation() -> None:
    # an empty block never answers yes; a block of i items answers yes for a fresh tag's k
    # bits with probability (1 - (1 - 1/512)^(k·i))^k, weighted by Poisson(i; λ)
    assert blocked_false_positive_rate(0.0, 4) == 0.0
    lam, k = 3.0, 5
    direct = sum(
        math.exp(-lam) * lam**i / math.factorial(i) * (1 - (511 / 512) ** (k * i)) ** k
        for i in range(60)
    )
    assert blocked_false_positive_rate(lam, k) == pytest.approx(direct, rel=1e-9)


def test_a_tag_touches_one_block(tmp_path: Path) -> None:
    replay_filter = new_filter(tmp_path / "b.bloom", expected_items=10_000)
    for tag in tags(8, 50):
        before = (tmp_path / "b.bloom").read_bytes()[HEADER_SIZE:]
        replay_filter.add(tag)
        after = (tmp_path / "b.bloom").read_bytes()[HEADER_SIZE:]
        changed = {i // 64 for i in range(len(after)) if after[i] != before[i]}
        assert len(changed) == 1
        set_bits = sum((a ^ b).bit_count() for a, b in zip(after, before, strict=True))
        assert 1 <= set_bits <= replay_filter.parameters.hashes
    replay_filter.close()


@pytest.mark.parametrize(
    ("items", "rate"), [(0, 0.01), (-5, 0.01), (10, 0.0), (10, 1.0), (10, -0.5)]
)
def test_impossible_sizing_is_refused(items: int, rate: float) -> None:
    with pytest.raises(ReplayFilterError):
        BloomParameters.for_load(items, rate)


def test_add_then_contains(tmp_path: Path) -> None:
    replay_filter = new_filter(tmp_path / "f.bloom")
    first, second = tags(2, 2)
    assert first not in replay_filter
    assert replay_filter.add(first) is False
    assert first in replay_filter
    assert second not in replay_filter
    assert replay_filter.add(first) is True
    assert replay_filter.add(second) is False
    replay_filter.close()


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(min_size=1, max_size=64), max_size=200))
def test_no_false_negatives(tmp_path: Path, added: list[bytes]) -> None:
    path = tmp_path / "nofn.bloom"
    path.unlink(missing_ok=True)
    replay_filter = new_filter(path)
    for tag in added:
        replay_filter.add(tag)
    assert all(tag in replay_filter for tag in added)
    replay_filter.close()


def test_measured_false_positive_rate_is_near_the_target(tmp_path: Path) -> None:
    count, target = 100_000, 0.01
    replay_filter = new_filter(tmp_path / "fp.bloom", expected_items=count, rate=target)
    for tag in tags(3, count):
        replay_filter.add(tag)
    false_positives = sum(tag in replay_filter for tag in tags(4, count))
    # binomial(10^5, 0.01): mean 1,000, sd ≈ 31; the bounds are > 6 sd away
    assert 0.8 * target * count < false_positives < 1.2 * target * count
    replay_filter.close()


def test_bit_positions_depend_on_the_salt(tmp_path: Path) -> None:
    tag = tags(5, 1)[0]
    one = BloomReplayFilter.create(tmp_path / "a", expected_items=100, rng=seeded(10).randbytes)
    two = BloomReplayFilter.create(tmp_path / "b", expected_items=100, rng=seeded(11).randbytes)
    one.add(tag)
    two.add(tag)
    one.close()
    two.close()
    bits_one = (tmp_path / "a").read_bytes()[HEADER_SIZE:]
    bits_two = (tmp_path / "b").read_bytes()[HEADER_SIZE:]
    assert any(bits_one) and any(bits_two)
    assert bits_one != bits_two


def test_reopen_after_close_keeps_tags_and_parameters(tmp_path: Path) -> None:
    path = tmp_path / "r.bloom"
    replay_filter = new_filter(path, expected_items=5000)
    added = tags(6, 500)
    for tag in added:
        replay_filter.add(tag)
    parameters = replay_filter.parameters
    replay_filter.close()
    replay_filter.close()  # idempotent
    reopened = BloomReplayFilter.open(path)
    assert reopened.parameters == parameters
    assert all(tag in reopened for tag in added)
    assert sum(tag in reopened for tag in tags(7, 500)) == 0
    reopened.close()


def test_a_closed_filter_refuses_use(tmp_path: Path) -> None:
    replay_filter = new_filter(tmp_path / "c.bloom")
    replay_filter.close()
    with pytest.raises(ReplayFilterError, match="closed"):
        replay_filter.add(b"tag")
    with pytest.raises(ReplayFilterError, match="closed"):
        _ = b"tag" in replay_filter


@pytest.mark.parametrize("bad", [b"", "text", None, 7])
def test_a_tag_must_be_non_empty_bytes(tmp_path: Path, bad: object) -> None:
    replay_filter = new_filter(tmp_path / "t.bloom")
    with pytest.raises(ReplayFilterError):
        replay_filter.add(bad)  # type: ignore[arg-type]
    replay_filter.close()


def test_create_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "x.bloom"
    new_filter(path).close()
    with pytest.raises(ReplayFilterError, match="already exists"):
        new_filter(path)


def test_create_rejects_a_bad_rng(tmp_path: Path) -> None:
    with pytest.raises(ReplayFilterError, match="16 bytes"):
        BloomReplayFilter.create(tmp_path / "x", expected_items=10, rng=lambda n: b"short")


# corrupt and truncated files


def valid_file(tmp_path: Path) -> tuple[Path, bytes]:
    path = tmp_path / "valid.bloom"
    path.unlink(missing_ok=True)
    replay_filter = new_filter(path, expected_items=100)
    replay_filter.add(b"some tag")
    replay_filter.close()
    return path, path.read_bytes()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ReplayFilterError, match="cannot open"):
        BloomReplayFilter.open(tmp_path / "absent.bloom")


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda data: b"", "truncated"),
        (lambda data: data[: HEADER_SIZE - 1], "truncated"),
        (lambda data: data[:-1], "truncated"),
        (lambda data: data[: HEADER_SIZE + 3], "truncated"),
        (lambda data: data + b"\0", "truncated or corrupt"),
        (lambda data: b"NOTBLOOM" + data[8:], "bad magic"),
        (lambda data: data[:8] + b"\0\1" + data[10:], "version 1"),  # unblocked, before v2
        (lambda data: data[:12] + bytes([data[12] ^ 1]) + data[13:], "checksum"),
        (lambda data: data[:100] + b"\1" + data[101:], "reserved"),
    ],
)
def test_corrupt_file_is_a_clear_error(tmp_path: Path, mangle, message: str) -> None:  # type: ignore[no-untyped-def]
    path, data = valid_file(tmp_path)
    path.write_bytes(mangle(data))
    with pytest.raises(ReplayFilterError, match=message):
        BloomReplayFilter.open(path)


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(min_value=0, max_value=HEADER_SIZE - 1), st.integers(1, 255))
def test_any_header_byte_flip_is_detected(tmp_path: Path, position: int, flip: int) -> None:
    path, data = valid_file(tmp_path)
    mangled = bytearray(data)
    mangled[position] ^= flip
    path.write_bytes(bytes(mangled))
    with pytest.raises(ReplayFilterError):
        BloomReplayFilter.open(path)


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=2 * HEADER_SIZE))
def test_arbitrary_bytes_are_refused(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "junk.bloom"
    path.write_bytes(data)
    with pytest.raises(ReplayFilterError):
        BloomReplayFilter.open(path)


# persistence across SIGKILL

CHILD = """
import random, sys
from pathlib import Path
from mixnode.replay_filter import ReplayFilters
filters = ReplayFilters(Path(sys.argv[1]), expected_items=10_000)
filters.ensure(7)
rng = random.Random(int(sys.argv[2]))
for _ in range(int(sys.argv[3])):
    assert filters.record(rng.randbytes(32), 7) is False
sys.stdout.write("ready\\n")
sys.stdout.flush()
import time
time.sleep(600)
"""


def test_tags_added_by_a_sigkilled_process_are_there_after_reopening(tmp_path: Path) -> None:
    assert READY == b"ready\n"
    run_then_sigkill(CHILD, str(tmp_path), "8", "2000")
    filters = ReplayFilters(tmp_path, expected_items=10_000)
    assert filters.ensure(7).parameters.expected_items == 10_000
    assert all(filters.seen(tag) for tag in tags(8, 2000))
    assert not any(filters.seen(tag) for tag in tags(9, 2000))
    filters.close()


# the per-epoch set


def make_filters(directory: Path) -> ReplayFilters:
    return ReplayFilters(directory, expected_items=1000, rng=seeded(12).randbytes)


def test_ensure_creates_once_and_reopens(tmp_path: Path) -> None:
    filters = make_filters(tmp_path)
    first = filters.ensure(3)
    assert filters.ensure(3) is first
    assert (tmp_path / "replay-3.bloom").is_file()
    filters.record(b"a tag", 3)
    filters.close()
    again = make_filters(tmp_path)
    assert again.epochs == []
    again.ensure(3)
    assert again.seen(b"a tag")
    again.close()


def test_seen_checks_every_live_filter_and_record_targets_one(tmp_path: Path) -> None:
    filters = make_filters(tmp_path)
    filters.ensure(4)
    filters.ensure(5)
    assert filters.epochs == [4, 5]
    assert not filters.seen(b"old key tag")
    assert filters.record(b"old key tag", 4) is False
    assert filters.seen(b"old key tag")
    assert b"old key tag" not in filters.ensure(5)
    assert filters.record(b"old key tag", 4) is True
    assert filters.seen(b"old key tag", 4)
    assert not filters.seen(b"old key tag", 5)
    with pytest.raises(ReplayFilterError, match="epoch 6"):
        filters.seen(b"old key tag", 6)
    filters.close()


def test_record_needs_an_open_epoch(tmp_path: Path) -> None:
    filters = make_filters(tmp_path)
    with pytest.raises(ReplayFilterError, match="epoch 9"):
        filters.record(b"tag", 9)
    with pytest.raises(ReplayFilterError):
        filters.ensure(-1)


def test_retire_before_closes_and_deletes_old_filters(tmp_path: Path) -> None:
    filters = make_filters(tmp_path)
    old, current, nxt = filters.ensure(10), filters.ensure(11), filters.ensure(12)
    filters.record(b"tag", 10)
    assert filters.retire_before(11) == [10]
    assert filters.epochs == [11, 12]
    assert not (tmp_path / "replay-10.bloom").exists()
    assert (tmp_path / "replay-11.bloom").exists()
    assert not filters.seen(b"tag")
    with pytest.raises(ReplayFilterError, match="closed"):
        old.add(b"x")
    current.add(b"x")
    nxt.add(b"x")
    filters.close()


def test_retire_before_deletes_files_left_by_an_earlier_run(tmp_path: Path) -> None:
    earlier = make_filters(tmp_path)
    earlier.ensure(1)
    earlier.ensure(2)
    earlier.close()
    (tmp_path / "replay-1.bloom.partial").write_bytes(b"half-made")
    (tmp_path / "unrelated.txt").write_text("keep me")
    filters = make_filters(tmp_path)
    filters.ensure(3)
    assert filters.retire_before(3) == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["replay-3.bloom", "unrelated.txt"]
    filters.close()


def test_a_corrupt_filter_on_disk_is_not_silently_replaced(tmp_path: Path) -> None:
    (tmp_path / "replay-6.bloom").write_bytes(b"garbage")
    filters = make_filters(tmp_path)
    with pytest.raises(ReplayFilterError, match="truncated"):
        filters.ensure(6)
    assert (tmp_path / "replay-6.bloom").read_bytes() == b"garbage"


def test_repr_names_no_tags(tmp_path: Path) -> None:
    filters = make_filters(tmp_path)
    replay_filter = filters.ensure(2)
    replay_filter.add(b"secret-tag")
    assert "secret" not in repr(filters) + repr(replay_filter)
    filters.close()


def test_prepare_writes_the_file_out_and_ensure_opens_it(tmp_path: Path) -> None:
    filters = ReplayFilters(tmp_path, expected_items=50_000)
    filters.prepare(9)
    path = filters.path_for(9)
    assert path.exists() and filters.epochs == []
    assert os.stat(path).st_blocks * 512 >= os.stat(path).st_size - 4096  # not sparse
    tag = bytes(range(32))
    filters.ensure(9).add(tag)
    filters.prepare(9)  # an existing filter is left alone
    assert filters.seen(tag)
    filters.close()
