"""The clock offset read from the authorities' `Date` headers: parsing, the median, and the
fetcher naming a wrong clock in its errors and warnings, against a real authority daemon."""

from __future__ import annotations

import logging
import random
import time
from email.utils import formatdate
from pathlib import Path

import pytest
import trio
from dir_helpers import GEOMETRY
from dir_network import clock_starting_now, plan_authorities, start_authority
from hypothesis import given
from hypothesis import strategies as st

from directory.clock_skew import ClockSkew, parse_http_date
from directory.errors import ConsensusUnavailableError
from directory.fetcher import ConsensusFetcher


def test_http_dates_in_every_form_rfc_9110_allows_are_read() -> None:
    expected = 784111777.0  # Sun, 06 Nov 1994 08:49:37 GMT
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == expected
    assert parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == expected
    assert parse_http_date("Sun Nov  6 08:49:37 1994") is None  # asctime: no zone, not trusted
    assert parse_http_date(formatdate(1_700_000_000, usegmt=True)) == 1_700_000_000.0


@pytest.mark.parametrize(
    "value",
    [None, "", "yesterday", "Sun, 06 Nov 1994 08:49:37", "Sun, 99 Nov 1994 08:49:37 GMT",
     "Sun, 06 Nov 99999999 08:49:37 GMT", "x" * 1000],
)
def test_a_missing_or_malformed_date_is_none(value: str | None) -> None:
    assert parse_http_date(value) is None


@given(st.text(max_size=80))
def test_no_header_value_makes_the_parser_raise(value: str) -> None:
    parsed = parse_http_date(value)
    assert parsed is None or isinstance(parsed, float)


def test_the_offset_is_the_median_so_one_wrong_authority_does_not_decide_it() -> None:
    skew = ClockSkew(3)
    assert skew.offset() is None and skew.describe() is None
    # Sent at 1000.0, answered at 1000.2: the midpoint 1000.1 against a Date of 1000 + 0.5.
    skew.observe(0, 1000.0, 1000.0, 1000.2)
    assert skew.offset() == pytest.approx(0.4)
    skew.observe(1, 1000.0 + 5000, 1000.0, 1000.2)  # one authority's clock is far off
    skew.observe(2, 1000.0, 1000.0, 1000.2)
    assert skew.offset() == pytest.approx(0.4)
    assert skew.describe() is None  # within what the header's resolution allows

    skew.observe(0, 1000.0 + 30, 1000.0, 1000.2)
    skew.observe(2, 1000.0 + 30, 1000.0, 1000.2)
    assert skew.offset() == pytest.approx(30.4)
    assert "30 s behind the authorities'" in (skew.describe() or "")
    assert skew.describe(at_least=60) is None

    skew.observe(0, 1000.0 - 600, 1000.0, 1000.2)
    skew.observe(1, 1000.0 - 600, 1000.0, 1000.2)
    assert "600 s ahead of the authorities'" in (skew.describe() or "")
    with pytest.raises(ValueError, match="source 3"):
        skew.observe(3, 0.0, 0.0, 0.0)


@pytest.mark.parametrize(("off_by", "named"), [(0.0, None), (3600.0, "ahead of"),
                                               (-3600.0, "behind")])
async def test_a_fetcher_names_a_wrong_clock_in_its_error_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, off_by: float, named: str | None
) -> None:
    clock = clock_starting_now(60_000)
    plan = plan_authorities(random.Random(71), 1)
    key, endpoint = plan[0]
    epoch = clock.epoch_at(time.time())
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            authority = await start_authority(nursery, key, endpoint, [endpoint], clock, tmp_path)
            try:
                fetcher = ConsensusFetcher(
                    [endpoint], GEOMETRY, clock, rng=random.Random(1),
                    now=lambda: time.time() + off_by,
                )
                caplog.set_level(logging.WARNING, logger="directory.fetcher")
                for _ in range(2):
                    with pytest.raises(ConsensusUnavailableError) as caught:
                        await fetcher.fetch(epoch + 5)  # never published: HTTP 404
                    assert "HTTP 404" in str(caught.value)
                    assert fetcher.last_failure == str(caught.value)
            finally:
                with trio.CancelScope(shield=True):
                    await authority.stop()
    offset = fetcher.clock_skew.offset()
    assert offset is not None and abs(offset + off_by) < 1.5
    warnings = [
        r.getMessage() for r in caplog.records
        if r.name == "directory.fetcher" and r.levelno == logging.WARNING
    ]
    if named is None:
        assert "clock" not in str(caught.value)
        assert warnings == []
    else:
        assert f"3600 s {named} the authorities'" in str(caught.value)
        assert len(warnings) == 1 and f"3600 s {named} the authorities'" in warnings[0]
        assert "127.0.0.1" not in warnings[0]
