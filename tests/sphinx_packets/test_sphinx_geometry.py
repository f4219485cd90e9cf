"""`Geometry`: derived sizes, validation and the hash the consensus carries."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sphinx_packets import Geometry, GeometryError, SphinxError


def test_default_geometry_hash_is_pinned() -> None:
    # The hash is consensus-critical: a change here splits the network. Change it knowingly.
    assert Geometry.default().hash().hex() == (
        "192ea0c69803c91eccbf680f01ed562b9b326a75ce137080b9398f2937381239"
    )


def test_every_field_changes_the_hash() -> None:
    base = Geometry.default()
    assert Geometry.default().hash() == base.hash()
    assert dataclasses.replace(base, hops=4).hash() != base.hash()
    assert dataclasses.replace(base, user_payload_size=2641).hash() != base.hash()


@given(st.integers(1, 32), st.integers(1, 1 << 20))
def test_sizes_are_derived_consistently(hops: int, user: int) -> None:
    geometry = Geometry(hops=hops, user_payload_size=user)
    assert geometry.header_size == 2 + 32 + 82 * hops + 32
    assert geometry.payload_size == 32 + user
    assert geometry.packet_size == geometry.header_size + geometry.payload_size


@pytest.mark.parametrize(
    "kwargs",
    [
        {"hops": 0, "user_payload_size": 10},
        {"hops": 33, "user_payload_size": 10},
        {"hops": 5, "user_payload_size": 0},
        {"hops": 5, "user_payload_size": 10, "nike": "x448"},
        {"hops": 5, "user_payload_size": 10, "sprp": "aez"},
    ],
)
def test_invalid_geometries_are_rejected(kwargs: dict) -> None:
    with pytest.raises(GeometryError):
        Geometry(**kwargs)
    assert issubclass(GeometryError, SphinxError)


def test_geometry_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Geometry.default().hops = 3  # type: ignore[misc]
