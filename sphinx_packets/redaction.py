"""Reprs that show no bytes: a repr may end up in a log line, and the bytes of a packet
value are keys, payloads, tags or ids."""

from __future__ import annotations

from dataclasses import fields
from typing import Any


def _shown(item: object) -> str:
    if isinstance(item, bytes):
        return f"<{len(item)} bytes>"
    if isinstance(item, tuple):
        return (
            "(" + ", ".join(_shown(part) for part in item) + ("," if len(item) == 1 else "") + ")"
        )
    return repr(item)


def redacted_repr(value: Any) -> str:
    """A dataclass's repr in which every bytes field (or tuple of them) shows its size only."""
    shown = ", ".join(f"{f.name}={_shown(getattr(value, f.name))}" for f in fields(value))
    return f"{type(value).__name__}({shown})"
