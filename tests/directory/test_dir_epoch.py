"""The epoch clock."""

from __future__ import annotations

import math

import pytest

from directory.epoch import DEFAULT_EPOCH_LENGTH_MS, EpochClock, to_ms
from directory.errors import ConfigError, DirectoryError, InvalidTimeError


def test_default_epochs_are_twenty_minutes() -> None:
    assert EpochClock().length_ms == DEFAULT_EPOCH_LENGTH_MS == 20 * 60 * 1000


def test_current_epoch_and_its_start() -> None:
    clock = EpochClock(origin_ms=10_000, length_ms=3_000)
    assert clock.epoch_at(0) == 0  # before the origin
    assert clock.epoch_at(10.0) == 0
    assert clock.epoch_at(12.999) == 0
    assert clock.epoch_at(13.0) == 1
    assert clock.start_ms(5) == 25_000
    assert clock.start(5) == 25.0
    for epoch in range(1, 50):
        assert clock.epoch_at(clock.start(epoch)) == epoch
        assert clock.epoch_at(clock.start(epoch) - 0.001) == epoch - 1


def test_phase_deadlines_lie_in_the_epoch_before() -> None:
    clock = EpochClock(origin_ms=0, length_ms=1_200_000)
    schedule = clock.schedule(3)
    building = clock.start_ms(2)
    assert (
        building
        < schedule.vote_at
        < schedule.relay_at
        < schedule.reveal_relay_at
        < schedule.compute_at
        < schedule.publish_at
        < schedule.valid_after
    )
    assert schedule.vote_at == building + 600_000
    assert schedule.relay_at == building + 675_000
    assert schedule.reveal_relay_at == building + 825_000
    assert schedule.compute_at == building + 900_000
    assert schedule.publish_at == building + 1_050_000
    assert schedule.valid_after == clock.start_ms(3)
    assert schedule.fresh_until == clock.start_ms(4)
    assert schedule.valid_until == clock.start_ms(5)
    assert clock.epoch_at(schedule.publish_at / 1000) == 2


def test_seconds_long_epochs_for_tests() -> None:
    clock = EpochClock(origin_ms=0, length_ms=1_000)
    schedule = clock.schedule(1)
    phases = [
        schedule.vote_at,
        schedule.relay_at,
        schedule.reveal_relay_at,
        schedule.compute_at,
        schedule.publish_at,
    ]
    assert 0 < phases[0] and phases[-1] < 1_000
    # Every phase of a one-second epoch still lasts at least 60 ms.
    assert all(b - a >= 60 for a, b in zip(phases, [*phases[1:], 1_000], strict=True))


@pytest.mark.parametrize("length", [0, 999, -5])
def test_too_short_epochs_are_refused(length: int) -> None:
    with pytest.raises(ConfigError):
        EpochClock(origin_ms=0, length_ms=length)


def test_epoch_zero_has_no_schedule() -> None:
    with pytest.raises(ConfigError):
        EpochClock().schedule(0)


def test_to_ms_rounds_down() -> None:
    assert to_ms(1.0019) == 1001


@pytest.mark.parametrize("now", [math.nan, math.inf, -math.inf, "12", None])
def test_a_time_that_is_not_a_finite_number_is_a_directory_error(now: object) -> None:
    with pytest.raises(InvalidTimeError):
        to_ms(now)  # type: ignore[arg-type]
    with pytest.raises(DirectoryError):
        EpochClock().epoch_at(now)  # type: ignore[arg-type]
