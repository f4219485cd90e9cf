"""The Sphinx packet format: pure, synchronous, no I/O."""

from sphinx_packets.errors import (
    GeometryError,
    InvalidCommandError,
    InvalidKeyError,
    InvalidMACError,
    InvalidPacketError,
    InvalidSURBError,
    PathError,
    PayloadTagError,
    SphinxError,
)
from sphinx_packets.geometry import Geometry

__all__ = [
    "Geometry",
    "GeometryError",
    "InvalidCommandError",
    "InvalidKeyError",
    "InvalidMACError",
    "InvalidPacketError",
    "InvalidSURBError",
    "PathError",
    "PayloadTagError",
    "SphinxError",
]
