"""End-to-end encryption: HPKE round trips per suite, wrong keys, tampering, truncation,
key serialization, and no key material in reprs or error messages."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixclient.e2e import (
    DEFAULT_SUITE,
    MAX_SEAL_OVERHEAD,
    E2EError,
    E2EKeyPair,
    E2ESuite,
    open_sealed,
    public_key_size,
    seal,
    seal_overhead,
    suite_from_int,
)

INFO = b"trimix test v1"
SUITES = list(E2ESuite)
_X25519_PAIR = E2EKeyPair.generate(E2ESuite.X25519)


@pytest.fixture(scope="module", params=SUITES, ids=lambda s: s.name)
def keypair(request: pytest.FixtureRequest) -> E2EKeyPair:
    return E2EKeyPair.generate(request.param)


def test_default_suite_is_x25519() -> None:
    assert DEFAULT_SUITE is E2ESuite.X25519
    assert E2EKeyPair.generate().suite is E2ESuite.X25519


def test_sizes_per_suite() -> None:
    assert public_key_size(E2ESuite.X25519) == 32
    assert public_key_size(E2ESuite.MLKEM768_X25519) == 1184 + 32
    assert seal_overhead(E2ESuite.X25519) == 32 + 16
    assert seal_overhead(E2ESuite.MLKEM768_X25519) == 1120 + 16
    assert MAX_SEAL_OVERHEAD == 1136


@pytest.mark.parametrize("size", [0, 1, 2048, 1 << 20])
def test_round_trip(keypair: E2EKeyPair, size: int) -> None:
    plaintext = bytes(range(256)) * (size // 256) + bytes(size % 256)
    sealed = seal(keypair.suite, keypair.public_key, plaintext, info=INFO)
    assert len(sealed) == size + seal_overhead(keypair.suite)
    assert plaintext[:64] not in sealed or size < 16
    assert open_sealed(keypair, sealed, info=INFO) == plaintext


@settings(max_examples=25, deadline=None)
@given(plaintext=st.binary(max_size=4096), info=st.binary(max_size=64))
def test_round_trip_random(plaintext: bytes, info: bytes) -> None:
    keypair = _X25519_PAIR
    sealed = seal(keypair.suite, keypair.public_key, plaintext, info=info)
    assert open_sealed(keypair, sealed, info=info) == plaintext


def test_sealing_is_randomized(keypair: E2EKeyPair) -> None:
    one = seal(keypair.suite, keypair.public_key, b"same", info=INFO)
    two = seal(keypair.suite, keypair.public_key, b"same", info=INFO)
    assert one != two


def test_wrong_key_fails(keypair: E2EKeyPair) -> None:
    sealed = seal(keypair.suite, keypair.public_key, b"for someone else", info=INFO)
    with pytest.raises(E2EError, match="does not open"):
        open_sealed(E2EKeyPair.generate(keypair.suite), sealed, info=INFO)


def test_other_suite_key_fails() -> None:
    sealed = seal(E2ESuite.X25519, _X25519_PAIR.public_key, b"x" * 2000, info=INFO)
    with pytest.raises(E2EError):
        open_sealed(E2EKeyPair.generate(E2ESuite.MLKEM768_X25519), sealed, info=INFO)


def test_wrong_info_fails(keypair: E2EKeyPair) -> None:
    sealed = seal(keypair.suite, keypair.public_key, b"context bound", info=INFO)
    with pytest.raises(E2EError, match="does not open"):
        open_sealed(keypair, sealed, info=b"another context")


def test_every_flipped_byte_is_detected(keypair: E2EKeyPair) -> None:
    sealed = seal(keypair.suite, keypair.public_key, b"tamper with me", info=INFO)
    # The hybrid's encapsulation is long: test a sample of positions across it and all of
    # the AEAD part.
    positions = sorted(set(range(0, len(sealed), 7)) | set(range(len(sealed) - 40, len(sealed))))
    for position in positions:
        tampered = bytearray(sealed)
        tampered[position] ^= 0x01
        with pytest.raises(E2EError):
            open_sealed(keypair, bytes(tampered), info=INFO)


def test_truncation_and_extension_fail(keypair: E2EKeyPair) -> None:
    sealed = seal(keypair.suite, keypair.public_key, b"cut me short", info=INFO)
    for cut in (0, 1, 16, seal_overhead(keypair.suite) - 1, len(sealed) - 1):
        with pytest.raises(E2EError):
            open_sealed(keypair, sealed[:cut], info=INFO)
    with pytest.raises(E2EError):
        open_sealed(keypair, sealed + b"\x00", info=INFO)


def test_private_key_serialization_round_trip(keypair: E2EKeyPair) -> None:
    stored = keypair.private_bytes()
    assert stored[0] == keypair.suite
    restored = E2EKeyPair.from_private_bytes(stored)
    assert restored.suite is keypair.suite
    assert restored.public_key == keypair.public_key
    sealed = seal(keypair.suite, keypair.public_key, b"after a restart", info=INFO)
    assert open_sealed(restored, sealed, info=INFO) == b"after a restart"


@pytest.mark.parametrize(
    "stored",
    [b"", b"\x09" + bytes(32), b"\x01" + bytes(31), b"\x02" + bytes(95), b"\x01" + bytes(33)],
)
def test_bad_private_bytes_raise(stored: bytes) -> None:
    with pytest.raises(E2EError):
        E2EKeyPair.from_private_bytes(stored)


def test_bad_public_keys_raise() -> None:
    with pytest.raises(E2EError, match="32 bytes"):
        seal(E2ESuite.X25519, bytes(31), b"x", info=INFO)
    with pytest.raises(E2EError, match="1216 bytes"):
        seal(E2ESuite.MLKEM768_X25519, bytes(32), b"x", info=INFO)
    # The all-zero X25519 point gives an all-zero shared secret: HPKE refuses it.
    with pytest.raises(E2EError):
        seal(E2ESuite.X25519, bytes(32), b"x", info=INFO)
    with pytest.raises(E2EError, match="unknown end-to-end suite 7"):
        seal(7, bytes(32), b"x", info=INFO)  # type: ignore[arg-type]
    with pytest.raises(E2EError, match="must be bytes"):
        seal(E2ESuite.X25519, "not bytes", b"x", info=INFO)  # type: ignore[arg-type]


def test_bad_arguments_raise_e2e_error() -> None:
    with pytest.raises(E2EError):
        open_sealed("not a key pair", b"x" * 100, info=INFO)  # type: ignore[arg-type]
    with pytest.raises(E2EError):
        open_sealed(_X25519_PAIR, None, info=INFO)  # type: ignore[arg-type]
    with pytest.raises(E2EError):
        suite_from_int(True)
    with pytest.raises(E2EError):
        E2EKeyPair.generate(0)  # type: ignore[arg-type]


def test_no_key_material_in_repr_or_errors(keypair: E2EKeyPair) -> None:
    secret = keypair.private_bytes()[1:]
    text = repr(keypair) + str(keypair)
    assert secret.hex() not in text
    assert keypair.public_key.hex()[:16] not in text
    assert str(secret) not in text
    sealed = seal(keypair.suite, keypair.public_key, b"x", info=INFO)
    with pytest.raises(E2EError) as caught:
        open_sealed(E2EKeyPair.generate(keypair.suite), sealed, info=INFO)
    message = str(caught.value)
    assert secret.hex() not in message and keypair.public_key.hex()[:16] not in message
    with pytest.raises(E2EError) as caught:
        E2EKeyPair.from_private_bytes(secret)
    assert secret.hex()[2:18] not in str(caught.value)
