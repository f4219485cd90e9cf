"""`ClientAddress`: where and how to reach a client, as one string a person can paste.

An address names the recipient's gateway (its node id), the mailbox there, and the
end-to-end key messages are sealed to (mixclient.e2e). Its bytes are

    version u8 (1) ‖ suite u8 ‖ gateway id 32 ‖ mailbox id 32 ‖ public key ‖ checksum 8

where the public key's size follows from the suite (32 bytes for X25519, 1,216 for the
ML-KEM-768 + X25519 hybrid) and the checksum is BLAKE2b-64, personalised
`trimix-address`, of everything before it. The printable form is

    "tmx1" ‖ RFC 4648 base32 of those bytes, lowercase, without padding

(174 characters for X25519, 2,068 for the hybrid). "1" is not a base32 character, so the
prefix cannot be confused with the data. Parsing tolerates surrounding whitespace and an
address written wholly in capitals; anything else is an `AddressError` that says what is
wrong: a wrong prefix, a character outside the alphabet, mixed case, a length no address
has, a checksum mismatch (a mistyped address), an unsupported version, an unknown suite.

Checks run so that a typo reads as a typo: a checksum mismatch is reported as a wrong length
when the length is one no known suite has, else as a mistyped address; version and suite are
read only once the checksum holds (so an unknown suite means an address from a newer client). The last
character's unused low bits must be zero (canonical base32), so that every single-character
change is refused; the 64-bit checksum makes an undetected random typo a 2⁻⁶⁴ event.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import string
from dataclasses import dataclass, field

from mixclient.e2e import E2EError, E2ESuite, public_key_size, suite_from_int

PREFIX = "tmx1"
VERSION = 1
ID_SIZE = 32
CHECKSUM_SIZE = 8
_PERSON = b"trimix-address"
_HEAD_SIZE = 2 + 2 * ID_SIZE
_ALPHABET = frozenset(string.ascii_lowercase + "234567")


class AddressError(ValueError):
    """An address string or its fields are not a valid client address."""


def _encoded_length(size: int) -> int:
    """Characters of unpadded base32 for `size` bytes."""
    return (size * 8 + 4) // 5


def address_size(suite: E2ESuite) -> int:
    """Bytes of an address (before base32) for `suite`."""
    return _HEAD_SIZE + public_key_size(suite) + CHECKSUM_SIZE


_TEXT_LENGTHS = {len(PREFIX) + _encoded_length(address_size(s)): s for s in E2ESuite}


def _checksum(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=CHECKSUM_SIZE, person=_PERSON).digest()


def _checksum_matches(raw: bytes) -> bool:
    return hmac.compare_digest(_checksum(raw[:-CHECKSUM_SIZE]), raw[-CHECKSUM_SIZE:])


@dataclass(frozen=True, slots=True)
class ClientAddress:
    """A client's address. Ids and key are left out of the repr, and `str()` is the repr,
    not the address (they identify a client; a stray f-string must not log them)."""

    gateway_id: bytes = field(repr=False)
    mailbox_id: bytes = field(repr=False)
    suite: E2ESuite
    public_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        for name in ("gateway_id", "mailbox_id"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != ID_SIZE:
                raise AddressError(f"{name} must be {ID_SIZE} bytes")
        try:
            suite = suite_from_int(self.suite)
        except E2EError as error:
            raise AddressError(str(error)) from None
        object.__setattr__(self, "suite", suite)
        size = public_key_size(suite)
        if not isinstance(self.public_key, bytes) or len(self.public_key) != size:
            raise AddressError(f"a {suite.name} public key must be {size} bytes")

    def to_bytes(self) -> bytes:
        body = bytes((VERSION, self.suite)) + self.gateway_id + self.mailbox_id + self.public_key
        return body + _checksum(body)

    def to_string(self) -> str:
        encoded = base64.b32encode(self.to_bytes()).decode("ascii").rstrip("=").lower()
        return PREFIX + encoded

    @classmethod
    def parse(cls, text: str) -> ClientAddress:
        """The address `text` spells; `AddressError` saying what is wrong otherwise."""
        if not isinstance(text, str):
            raise AddressError(f"an address is a string, not {type(text).__name__}")
        text = text.strip()
        if not text.lower().startswith(PREFIX):
            raise AddressError(f"not a trimix address: it must start with {PREFIX!r}")
        if text.isupper():
            text = text.lower()
        elif any(c.isupper() for c in text):
            raise AddressError("an address is all lowercase (or all capitals), not mixed case")
        data = text[len(PREFIX) :]
        for position, character in enumerate(data, start=len(PREFIX) + 1):
            if character not in _ALPHABET:
                # The position is named, never the text.
                raise AddressError(
                    f"an address holds only the letters a-z and digits 2-7 after {PREFIX!r}; "
                    f"character {position} is not one of them"
                )
        raw = _decode_base32(data)
        if raw is None or len(raw) <= 2 + CHECKSUM_SIZE or not _checksum_matches(raw):
            if len(text) not in _TEXT_LENGTHS:
                expected = " or ".join(
                    f"{n} ({suite.name})" for n, suite in sorted(_TEXT_LENGTHS.items())
                )
                raise AddressError(
                    f"an address has {expected} characters, this one has {len(text)}: "
                    "characters are missing or extra"
                )
            raise AddressError("the address is mistyped: its checksum does not match")
        return cls.from_bytes(raw)

    @classmethod
    def from_bytes(cls, raw: bytes) -> ClientAddress:
        """The address whose `to_bytes()` is `raw`; `AddressError` otherwise."""
        if not isinstance(raw, bytes | bytearray | memoryview):
            raise AddressError(f"address bytes must be bytes, not {type(raw).__name__}")
        raw = bytes(raw)
        if len(raw) <= 2 + CHECKSUM_SIZE or not _checksum_matches(raw):
            raise AddressError("the address bytes are cut short or their checksum does not match")
        body = raw[:-CHECKSUM_SIZE]
        if body[0] != VERSION:
            raise AddressError(
                f"unsupported address version {body[0]} (this client reads {VERSION})"
            )
        try:
            suite = suite_from_int(body[1])
        except E2EError as error:
            raise AddressError(str(error)) from None
        if len(raw) != address_size(suite):
            raise AddressError(
                f"an address of suite {suite.name} has "
                f"{len(PREFIX) + _encoded_length(address_size(suite))} characters"
            )
        return cls(
            gateway_id=body[2 : 2 + ID_SIZE],
            mailbox_id=body[2 + ID_SIZE : _HEAD_SIZE],
            suite=suite,
            public_key=body[_HEAD_SIZE:],
        )


def _decode_base32(data: str) -> bytes | None:
    """The bytes unpadded lowercase base32 `data` spells, or None unless it is the
    canonical spelling (unused bits of the last character zero)."""
    padded = data.upper() + "=" * (-len(data) % 8)
    try:
        raw = base64.b32decode(padded)
    except ValueError:
        return None
    if base64.b32encode(raw).decode("ascii").rstrip("=") != data.upper():
        return None
    return raw
