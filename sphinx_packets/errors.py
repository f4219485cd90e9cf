"""The exceptions of the packet format. Malformed input raises a `SphinxError` subclass."""


class SphinxError(Exception):
    """Base of every error the packet format raises."""


class GeometryError(SphinxError):
    """A geometry is invalid, or an input does not fit it."""


class InvalidPacketError(SphinxError):
    """A packet or header has the wrong size or a malformed field."""


class InvalidMACError(SphinxError):
    """The header MAC does not verify: tampered header or wrong key."""


class InvalidCommandError(SphinxError):
    """The routing commands of a hop are malformed."""


class PayloadTagError(SphinxError):
    """The payload's zero tag is wrong: the payload was tampered with."""


class InvalidKeyError(SphinxError):
    """A key or group element is malformed or of low order."""


class PathError(SphinxError):
    """A path does not fit the geometry (too long, empty, or with missing commands)."""


class InvalidSURBError(SphinxError):
    """A SURB or its keys are malformed."""
