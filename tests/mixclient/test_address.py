"""Client addresses: round trips, and a clear `AddressError` for every way to get one wrong."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixclient.address import (
    CHECKSUM_SIZE,
    PREFIX,
    AddressError,
    ClientAddress,
    address_size,
)
from mixclient.e2e import E2EKeyPair, E2ESuite, public_key_size

BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
HYBRID_KEY = E2EKeyPair.generate(E2ESuite.MLKEM768_X25519).public_key

ids = st.binary(min_size=32, max_size=32)
x25519_addresses = st.builds(
    ClientAddress,
    gateway_id=ids,
    mailbox_id=ids,
    suite=st.just(E2ESuite.X25519),
    public_key=st.binary(min_size=32, max_size=32),
)
hybrid_addresses = st.builds(
    ClientAddress,
    gateway_id=ids,
    mailbox_id=ids,
    suite=st.just(E2ESuite.MLKEM768_X25519),
    public_key=st.just(HYBRID_KEY),
)
addresses = st.one_of(x25519_addresses, hybrid_addresses)


def _example(suite: E2ESuite = E2ESuite.X25519) -> ClientAddress:
    key = HYBRID_KEY if suite is E2ESuite.MLKEM768_X25519 else bytes(range(32))
    return ClientAddress(bytes(range(32)), bytes(range(32, 64)), suite, key)


def _spell(raw: bytes) -> str:
    return PREFIX + base64.b32encode(raw).decode().rstrip("=").lower()


def _with_checksum(body: bytes) -> bytes:
    return body + hashlib.blake2b(body, digest_size=8, person=b"trimix-address").digest()


@settings(max_examples=60, deadline=None)
@given(address=addresses)
def test_round_trip(address: ClientAddress) -> None:
    text = address.to_string()
    assert text.startswith(PREFIX)
    assert set(text[len(PREFIX) :]) <= set(BASE32)
    assert ClientAddress.parse(text) == address


@settings(max_examples=30, deadline=None)
@given(
    address=x25519_addresses,
    before=st.text(" \t\r\n", max_size=3),
    after=st.text(" \t\r\n", max_size=3),
)
def test_whitespace_and_capitals_tolerated(address: ClientAddress, before: str, after: str) -> None:
    text = address.to_string()
    assert ClientAddress.parse(before + text + after) == address
    assert ClientAddress.parse(before + text.upper() + after) == address


def test_layout_and_lengths() -> None:
    address = _example()
    raw = address.to_bytes()
    assert len(raw) == address_size(E2ESuite.X25519) == 2 + 32 + 32 + 32 + CHECKSUM_SIZE
    assert raw[0] == 1 and raw[1] == E2ESuite.X25519
    assert raw[2:34] == address.gateway_id and raw[34:66] == address.mailbox_id
    assert raw[66:98] == address.public_key
    assert raw == _with_checksum(raw[:-8])
    assert len(address.to_string()) == 174
    assert len(_example(E2ESuite.MLKEM768_X25519).to_string()) == 2068


@pytest.mark.parametrize("suite", list(E2ESuite), ids=lambda s: s.name)
def test_every_single_character_change_is_detected(suite: E2ESuite) -> None:
    text = _example(suite).to_string()
    # Every position of the short address; for the long one, a spread of positions
    # including all the ends.
    positions = (
        range(len(text))
        if len(text) < 300
        else [*range(40), *range(40, len(text), 37), *range(len(text) - 40, len(text))]
    )
    for position in positions:
        for replacement in BASE32 + "01" + "X" + "=":
            if replacement == text[position]:
                continue
            changed = text[:position] + replacement + text[position + 1 :]
            with pytest.raises(AddressError):
                ClientAddress.parse(changed)


@settings(max_examples=200, deadline=None)
@given(address=x25519_addresses, data=st.data())
def test_random_single_character_changes_are_detected(
    address: ClientAddress, data: st.DataObject
) -> None:
    text = address.to_string()
    position = data.draw(st.integers(0, len(text) - 1))
    replacement = data.draw(st.sampled_from(BASE32).filter(lambda c: c != text[position]))
    with pytest.raises(AddressError):
        ClientAddress.parse(text[:position] + replacement + text[position + 1 :])


def test_mistyped_says_so() -> None:
    text = _example().to_string()
    position = 50
    replacement = "a" if text[position] != "a" else "b"
    with pytest.raises(AddressError, match="mistyped"):
        ClientAddress.parse(text[:position] + replacement + text[position + 1 :])


def test_swapped_neighbours_are_detected() -> None:
    text = _example().to_string()
    for position in range(len(PREFIX), len(text) - 1):
        if text[position] != text[position + 1]:
            swapped = text[:position] + text[position + 1] + text[position] + text[position + 2 :]
            with pytest.raises(AddressError):
                ClientAddress.parse(swapped)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must start with 'tmx1'"),
        ("tmx2aaaa", "must start with 'tmx1'"),
        ("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", "must start with 'tmx1'"),
        ("tmx1aaaa!aaa", "character 9 is not one of them"),
        ("tmx1aaaa aaa", "character 9 is not one of them"),
        ("tmx1aaa0", "character 8"),
        (
            "tmx1aaaa",
            "has 174 \\(X25519\\) or 2068 \\(MLKEM768_X25519\\) characters, this one has 8",
        ),
        ("tmx1AAaa", "mixed case"),
    ],
)
def test_clear_messages(text: str, message: str) -> None:
    with pytest.raises(AddressError, match=message):
        ClientAddress.parse(text)


def test_truncated_and_extended_addresses_name_the_length() -> None:
    text = _example().to_string()
    for broken in (text[:-1], text[:-5], text + "a", text + "aaaaaaaa"):
        with pytest.raises(AddressError, match="missing or extra"):
            ClientAddress.parse(broken)


def test_non_canonical_last_character_is_refused() -> None:
    text = _example().to_string()
    # 106 bytes are 848 bits: the last character carries 3 data bits and 2 unused ones.
    last = BASE32.index(text[-1])
    for unused in (1, 2, 3):
        changed = text[:-1] + BASE32[last ^ unused]
        with pytest.raises(AddressError, match="mistyped"):
            ClientAddress.parse(changed)


def test_unknown_suite_and_version_with_a_valid_checksum() -> None:
    body = _example().to_bytes()[:-CHECKSUM_SIZE]
    unknown_suite = _spell(_with_checksum(body[:1] + b"\x09" + body[2:]))
    with pytest.raises(AddressError, match="unknown end-to-end suite 9"):
        ClientAddress.parse(unknown_suite)
    newer = _spell(_with_checksum(b"\x02" + body[1:]))
    with pytest.raises(AddressError, match="unsupported address version 2"):
        ClientAddress.parse(newer)
    # A hybrid suite number on an X25519-sized address: the length does not fit the suite.
    mismatched = _spell(_with_checksum(body[:1] + b"\x02" + body[2:]))
    with pytest.raises(AddressError, match="MLKEM768_X25519 has 2068 characters"):
        ClientAddress.parse(mismatched)


def test_fields_are_checked() -> None:
    with pytest.raises(AddressError, match="gateway_id"):
        ClientAddress(bytes(31), bytes(32), E2ESuite.X25519, bytes(32))
    with pytest.raises(AddressError, match="mailbox_id"):
        ClientAddress(bytes(32), "x" * 32, E2ESuite.X25519, bytes(32))  # type: ignore[arg-type]
    with pytest.raises(AddressError, match="public key must be 1216 bytes"):
        ClientAddress(bytes(32), bytes(32), E2ESuite.MLKEM768_X25519, bytes(32))
    with pytest.raises(AddressError, match="unknown end-to-end suite"):
        ClientAddress(bytes(32), bytes(32), 5, bytes(32))  # type: ignore[arg-type]
    assert ClientAddress(bytes(32), bytes(32), 1, bytes(32)).suite is E2ESuite.X25519  # type: ignore[arg-type]
    with pytest.raises(AddressError, match="is a string"):
        ClientAddress.parse(b"tmx1")  # type: ignore[arg-type]


def test_repr_and_str_hide_ids_and_key() -> None:
    address = _example()
    for text in (repr(address), str(address), f"{address}"):
        assert address.gateway_id.hex()[:16] not in text
        assert address.mailbox_id.hex()[:16] not in text
        assert address.to_string()[4:40] not in text
    assert public_key_size(address.suite) == len(address.public_key)
