"""`ClientConfig`: what a client needs to know before it can join the network, and its TOML.

Everything a client must agree on with the network (the epoch clock, the Sphinx geometry, the
pinned authorities) is written exactly as in a node's configuration, so one `[epoch]`,
`[geometry]` and `[[authorities]]` block can be pasted into both. Rates and delays are not
configurable: they come from the consensus, since a client with its own rates would stand out.

    [client]
    state_dir = "client-state"     # keys, mailbox, outbox, inbox (SQLite); relative to this file
    # gateway = "<64 hex digits>"  # node id of the gateway to register with; default: one
    #                              # drawn from the consensus on first start, then kept
    suite = "x25519"               # or "mlkem768-x25519": the end-to-end suite of the address
    # fetch_per_second = 8         # mailbox frames fetched per second (at least; see below)
    # fetch_count = 4              # frames per poll (1-16): fewer, more often, is less latency
    # startup_timeout = 120        # seconds to get a verified consensus and the gateway link

    [epoch]
    origin = 1704067200
    length_seconds = 1200

    [geometry]
    hops = 5
    user_payload_size = 2640

    [[authorities]]
    public_key = "<64 hex digits>"
    url = "http://127.0.0.1:8440"

The client polls its mailbox on a fixed schedule: every poll one FETCH frame up and
`fetch_count` frames down, whatever it received. The poll rate is the larger of
`fetch_per_second` and twice λ_P + λ_L of the consensus (its own loops and acknowledgements
and what others send it must fit), so it depends on the consensus only.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from directory.endpoints import AuthorityEndpoint
from directory.epoch import EpochClock
from mixclient.e2e import DEFAULT_SUITE, E2ESuite
from mixclient.reliability import RetryPolicy
from mixnode.gateway_protocol import MAX_FETCH
from mixnode.node_config import (
    NodeConfigError,
    parse_authorities,
    parse_clock,
    parse_geometry,
)
from sphinx_packets import Geometry

SUITE_NAMES = {"x25519": E2ESuite.X25519, "mlkem768-x25519": E2ESuite.MLKEM768_X25519}
NODE_ID_SIZE = 32


class ClientConfigError(ValueError):
    """A client configuration is malformed; the message names the setting."""


@dataclass(frozen=True, slots=True)
class ClientConfig:
    state_dir: Path
    authorities: tuple[AuthorityEndpoint, ...]
    clock: EpochClock
    geometry: Geometry = field(default_factory=Geometry.default)
    gateway: bytes | None = field(default=None, repr=False)
    """The gateway to register with (node id); None: draw one, then keep it."""
    suite: E2ESuite = DEFAULT_SUITE
    threshold: int | None = None
    """Authority signatures a consensus needs; None: a majority of the pinned authorities."""
    fetch_count: int = 4
    """Frames asked for per poll."""
    fetch_per_second: float = 8.0
    """The least mailbox frames per second the client fetches."""
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_tries=8))
    """Eight tries: a dead mix stays in the consensus for up to two epochs, and a try
    whose forward or acknowledgement path crosses it is lost."""
    link_timeout: float = 10.0
    """Seconds for a whole exchange with the gateway (handshake, register, one poll)."""
    max_pending_messages: int = 256
    """Messages `send` accepts before it waits for earlier ones to be acknowledged."""
    startup_timeout: float = 120.0
    """Seconds `Client` waits for a verified consensus (from the authorities or its cache)
    and its gateway when it opens, before it gives up with a `ClientError`."""

    def __post_init__(self) -> None:
        if not self.authorities:
            raise ClientConfigError("at least one authority is needed")
        if self.gateway is not None and (
            not isinstance(self.gateway, bytes) or len(self.gateway) != NODE_ID_SIZE
        ):
            raise ClientConfigError(f"client.gateway must be a {NODE_ID_SIZE}-byte node id")
        if not 1 <= self.fetch_count <= MAX_FETCH:
            raise ClientConfigError(f"fetch_count must be from 1 to {MAX_FETCH}")
        if not self.fetch_per_second > 0:
            raise ClientConfigError("fetch_per_second must be positive")
        if not self.link_timeout > 0 or self.max_pending_messages < 1:
            raise ClientConfigError("link_timeout and max_pending_messages must be positive")
        if not self.startup_timeout > 0:
            raise ClientConfigError("startup_timeout must be positive")

    def poll_interval(self, lambda_p: float, lambda_l: float) -> float:
        """Seconds between polls under a consensus with these client rates."""
        frames_per_second = max(self.fetch_per_second, 2 * (lambda_p + lambda_l))
        return self.fetch_count / frames_per_second

    @classmethod
    def from_toml(cls, path: Path) -> ClientConfig:
        """The configuration in the TOML file `path` (relative paths are from its folder)."""
        try:
            document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as error:
            raise ClientConfigError(f"cannot read {path}: {error.strerror}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ClientConfigError(f"{path} is not valid TOML: {error}") from None
        return parse_client_config(document, base=Path(path).resolve().parent)


def parse_client_config(document: Mapping[str, Any], *, base: Path) -> ClientConfig:
    client = document.get("client")
    if not isinstance(client, Mapping):
        raise ClientConfigError("a [client] table is needed")
    known = {
        "state_dir", "gateway", "suite", "fetch_per_second", "fetch_count", "threshold",
        "startup_timeout",
    }
    unknown = sorted(set(client) - known)
    if unknown:
        raise ClientConfigError(f"unknown setting client.{unknown[0]}")
    state_dir = client.get("state_dir")
    if not isinstance(state_dir, str) or not state_dir:
        raise ClientConfigError("client.state_dir must be a path")
    gateway = None
    if "gateway" in client:
        text = client["gateway"]
        try:
            gateway = bytes.fromhex(text) if isinstance(text, str) else None
        except ValueError:
            gateway = None
        if gateway is None or len(gateway) != NODE_ID_SIZE:
            raise ClientConfigError("client.gateway must be 64 hex digits (a node id)")
    suite_name = client.get("suite", "x25519")
    if suite_name not in SUITE_NAMES:
        raise ClientConfigError(f"client.suite must be one of {', '.join(SUITE_NAMES)}")
    fetch = client.get("fetch_per_second", 8.0)
    if isinstance(fetch, bool) or not isinstance(fetch, int | float) or not fetch > 0:
        raise ClientConfigError("client.fetch_per_second must be a positive number")
    fetch_count = client.get("fetch_count", 4)
    if type(fetch_count) is not int or not 1 <= fetch_count <= MAX_FETCH:
        raise ClientConfigError(f"client.fetch_count must be an integer from 1 to {MAX_FETCH}")
    startup = client.get("startup_timeout", 120.0)
    if isinstance(startup, bool) or not isinstance(startup, int | float) or not startup > 0:
        raise ClientConfigError("client.startup_timeout must be a positive number of seconds")
    threshold = client.get("threshold")
    if threshold is not None and (type(threshold) is not int or threshold < 1):
        raise ClientConfigError("client.threshold must be a positive integer")
    try:
        clock = parse_clock(_table(document, "epoch"))
        geometry = parse_geometry(_table(document, "geometry"))
        authorities = parse_authorities(document.get("authorities"))
    except NodeConfigError as error:
        raise ClientConfigError(str(error)) from None
    return ClientConfig(
        state_dir=base / state_dir,
        authorities=authorities,
        clock=clock,
        geometry=geometry,
        gateway=gateway,
        suite=SUITE_NAMES[suite_name],
        threshold=threshold,
        fetch_per_second=float(fetch),
        fetch_count=fetch_count,
        startup_timeout=float(startup),
    )


def _table(document: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    table = document.get(name, {})
    if not isinstance(table, Mapping):
        raise ClientConfigError(f"[{name}] must be a table")
    return table


def client_config_toml(
    *,
    state_dir: Path,
    clock: EpochClock,
    geometry: Geometry,
    authorities: tuple[AuthorityEndpoint, ...],
    gateway: bytes | None = None,
    suite: str = "x25519",
) -> str:
    """The TOML text of a client configuration (what `trimix testnet` writes per client)."""
    if suite not in SUITE_NAMES:
        raise ClientConfigError(f"suite must be one of {', '.join(SUITE_NAMES)}")
    text = f'[client]\nstate_dir = "{state_dir}"\nsuite = "{suite}"\n'
    if gateway is not None:
        text += f'gateway = "{gateway.hex()}"\n'
    text += (
        f"\n[epoch]\norigin = {clock.origin_ms / 1000}\n"
        f"length_seconds = {clock.length_ms / 1000}\n\n"
        f"[geometry]\nhops = {geometry.hops}\nuser_payload_size = {geometry.user_payload_size}\n"
    )
    for endpoint in authorities:
        text += (
            f'\n[[authorities]]\npublic_key = "{endpoint.public_key.hex()}"\n'
            f'url = "{endpoint.url}"\n'
        )
    return text
