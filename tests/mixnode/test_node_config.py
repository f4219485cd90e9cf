"""The node's TOML configuration: the sample parses, and mistakes are named."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from directory.descriptor import Role
from mixnode.node_config import (
    SAMPLE_CONFIG,
    Limits,
    NodeConfigError,
    parse_node_config,
)

KEY = "ab" * 32


def _sample() -> dict[str, Any]:
    return tomllib.loads(SAMPLE_CONFIG.replace("<64 hex digits>", KEY))


def test_sample_config_parses() -> None:
    config = parse_node_config(_sample(), base=Path("/etc/trimix"))
    assert config.role is Role.MIX
    assert config.data_dir == Path("/etc/trimix/node-data")
    assert (config.listen_host, config.listen_port) == ("0.0.0.0", 30001)
    assert config.metrics_listen == ("127.0.0.1", 9301)
    assert config.authorities[0].public_key == bytes.fromhex(KEY)
    assert config.limits.queue_capacity == 100_000
    assert config.limits.client_packets.rate(204.0) == pytest.approx(612.0)


def test_gateway_needs_client_listen() -> None:
    document = _sample()
    document["node"]["role"] = "gateway"
    with pytest.raises(NodeConfigError, match="client_listen"):
        parse_node_config(document, base=Path("."))
    document["node"]["client_listen"] = "127.0.0.1:30002"
    assert parse_node_config(document, base=Path(".")).client_listen == ("127.0.0.1", 30002)


@pytest.mark.parametrize(
    ("table", "key", "value", "message"),
    [
        ("node", "role", "relay", "node.role"),
        ("node", "name", "no spaces", "node.name"),
        ("node", "listen", "nohostport", "node.listen"),
        ("node", "workers", 0, "node.workers"),
        ("node", "workers", True, "node.workers"),
        ("limits", "queue_capacity", 0, "limits.queue_capacity"),
        ("limits", "handshake_timeout", -1.0, "limits.handshake_timeout"),
        ("limits", "bogus", 1, "limits.bogus"),
        ("limits", "client_rate_factor", 0, "limits.client_rate_factor"),
        ("limits", "client_burst_seconds", "2", "limits.client_burst_seconds"),
        ("geometry", "hops", "5", "geometry"),
        ("epoch", "length_seconds", 0.1, "epoch"),
    ],
)
def test_invalid_values_are_named(table: str, key: str, value: Any, message: str) -> None:
    document = _sample()
    document.setdefault(table, {})[key] = value
    with pytest.raises(NodeConfigError, match=message):
        parse_node_config(document, base=Path("."))


def test_authorities_are_checked() -> None:
    document = _sample()
    document["authorities"] = [{"public_key": "zz", "url": "http://a"}]
    with pytest.raises(NodeConfigError, match="public_key"):
        parse_node_config(document, base=Path("."))
    document["authorities"] = [{"public_key": KEY, "url": "ftp://a"}]
    with pytest.raises(NodeConfigError, match="url"):
        parse_node_config(document, base=Path("."))
    document["authorities"] = [{"public_key": KEY, "url": "http://a"}] * 2
    with pytest.raises(NodeConfigError, match="twice"):
        parse_node_config(document, base=Path("."))


def test_the_sample_lists_every_limit_at_its_default() -> None:
    assert _sample()["limits"] == {
        name: getattr(Limits(), name) for name in Limits.__dataclass_fields__
    }
