"""The sender's blinding chain gives the values of blinding one multiplication at a time."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sphinx_packets import Geometry, blinding, create_packet, new_surb
from sphinx_packets.blinding import ORDER, BlindingChain, clamp, clamped_representative
from sphinx_packets.errors import InvalidKeyError
from sphinx_packets.primitives import x25519, x25519_public
from tests.sphinx_packets.helpers import forward_path, make_nodes, seeded_rng

FIELD_PRIME = 2**255 - 19
scalars = st.binary(min_size=32, max_size=32)


def step_by_step(secret_key: bytes, factors: list[bytes], element: bytes) -> bytes:
    value = x25519(secret_key, element)
    for factor in factors:
        value = x25519(factor, value)
    return value


def with_two_torsion(public_key: bytes) -> bytes:
    """The curve point public key + (0, 0): on a Montgomery curve, adding the point of order
    two maps u to 1/u. It is on the curve but not in the prime-order subgroup."""
    u = int.from_bytes(public_key, "little")
    return pow(u, FIELD_PRIME - 2, FIELD_PRIME).to_bytes(32, "little")


@settings(max_examples=60, deadline=None)
@given(
    secret_key=scalars,
    factors=st.lists(scalars, max_size=5),
    private_keys=st.lists(scalars, min_size=1, max_size=3),
)
def test_every_hop_gets_the_step_by_step_alpha_and_secret(
    secret_key: bytes, factors: list[bytes], private_keys: list[bytes]
) -> None:
    base = (9).to_bytes(32, "little")
    chain = BlindingChain(secret_key, x25519_public(secret_key))
    for hop in range(len(factors) + 1):
        if hop:
            chain.blind(factors[hop - 1])
        assert chain.alpha() == step_by_step(secret_key, factors[:hop], base)
        for private_key in private_keys:
            public_key = x25519_public(private_key)
            expected = step_by_step(secret_key, factors[:hop], public_key)
            assert chain.shared_secret(public_key) == expected
            # The node's side: its private key times this hop's α.
            assert x25519(private_key, chain.alpha()) == expected
            # A point of the curve outside the prime-order subgroup: still the same.
            torsioned = with_two_torsion(public_key)
            assert chain.shared_secret(torsioned) == step_by_step(
                secret_key, factors[:hop], torsioned
            )


@given(scalar=scalars)
def test_the_representative_is_left_alone_by_clamping_and_acts_as_the_scalar(
    scalar: bytes,
) -> None:
    reduced = int.from_bytes(scalar, "little") % ORDER
    representative = clamped_representative(reduced.to_bytes(32, "little"))
    if representative is None:  # about 2^-125: never seen in practice
        return
    assert clamp(representative) == representative
    value = int.from_bytes(representative, "little")
    assert value % 8 == 0
    assert (value - reduced) % ORDER == 0 or (value + reduced) % ORDER == 0


@pytest.mark.parametrize("eighth", [0, 1, 2**124, ORDER - 1, ORDER - 2**124, 2**252 + 1])
def test_no_representative_next_to_zero_or_the_order(eighth: int) -> None:
    scalar = (8 * eighth) % ORDER
    assert clamped_representative(scalar.to_bytes(32, "little")) is None


def test_without_a_representative_the_chain_multiplies_step_by_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(blinding, "clamped_representative", lambda scalar: None)
    secret_key, factors = bytes(range(32)), [bytes([7] * 32), bytes([200] * 32)]
    public_key = x25519_public(bytes([42] * 32))
    chain = BlindingChain(secret_key, x25519_public(secret_key))
    for factor in factors:
        chain.blind(factor)
    base = (9).to_bytes(32, "little")
    assert chain.alpha() == step_by_step(secret_key, factors, base)
    assert chain.shared_secret(public_key) == step_by_step(secret_key, factors, public_key)


@pytest.mark.parametrize("blinded", [False, True])
def test_a_low_order_public_key_is_refused(blinded: bool) -> None:
    chain = BlindingChain(bytes([1] * 32), x25519_public(bytes([1] * 32)))
    if blinded:
        chain.blind(bytes([3] * 32))
    for low_order in (bytes(32), (1).to_bytes(32, "little")):  # of orders 2 and 4
        with pytest.raises(InvalidKeyError):
            chain.shared_secret(low_order)


def test_the_repr_shows_no_secret() -> None:
    secret_key = bytes(range(32))
    chain = BlindingChain(secret_key, x25519_public(secret_key))
    chain.blind(bytes([9] * 32))
    assert repr(chain) == "BlindingChain(factors=1)"


def test_packets_and_surbs_are_the_bytes_step_by_step_blinding_made() -> None:
    """Known answers: the SHA-256 of a packet and of a SURB built with fixed randomness, as
    the step-by-step blinding (before 2026-11-22) built them."""
    geometry = Geometry.default()
    rng = seeded_rng(2026)
    path = forward_path(make_nodes(5, rng), bytes(range(32)), [10, 20, 30, 40, 50])
    packet = create_packet(geometry, path, bytes(geometry.user_payload_size), rng=seeded_rng(7))
    surb, _ = new_surb(geometry, path, rng=seeded_rng(8))
    assert hashlib.sha256(packet).hexdigest() == (
        "fcd17b95b82d8a1addccd9a8bd93ff54c7983692b61bbde9cfafaac2d9150564"
    )
    assert hashlib.sha256(surb.to_bytes()).hexdigest() == (
        "d9019a138e8e0391c788b3f286c88b1cbab29f00bdd019900e6b214fde9c885b"
    )
