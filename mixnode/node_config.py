"""`NodeConfig`: a mix node's or gateway's TOML configuration (read with `tomllib`).

Relative paths are relative to the configuration file. `SAMPLE_CONFIG` is what
`trimix node run --help` shows; docs/OPERATING.md explains every key.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from directory.descriptor import NAME_PATTERN, Role
from directory.endpoints import AuthorityEndpoint
from directory.epoch import DEFAULT_EPOCH_LENGTH_MS, DEFAULT_ORIGIN_MS, EpochClock
from directory.errors import DirectoryError
from mixnode.rate_limit import Allowance
from sphinx_packets import Geometry, SphinxError

SAMPLE_CONFIG = """\
[node]
name = "mix-1"                      # letters, digits, . _ -
role = "mix"                        # "mix" or "gateway"
data_dir = "node-data"              # keys, replay filters, mailboxes, consensus cache
listen = "0.0.0.0:30001"            # Noise links from other nodes
public_address = "203.0.113.7:30001"  # what the descriptor tells the network
# client_listen = "0.0.0.0:30002"   # gateways only: Noise links from clients
# public_client_address = "203.0.113.7:30002"  # gateways: what clients are told (the
#                                     # descriptor's second address); default client_listen
workers = 1                         # processes for the packet crypto

[metrics]
listen = "127.0.0.1:9301"           # Prometheus metrics; keep it local

[epoch]                             # identical on every authority, node and client
origin = 1704067200
length_seconds = 1200

[geometry]
hops = 5
user_payload_size = 2640

[[authorities]]                     # every pinned directory authority
public_key = "<64 hex digits>"
url = "http://192.0.2.1:8440"

[limits]                            # optional; these are the defaults
max_connections = 2000
max_connections_per_address = 32
new_connections_burst_per_address = 64  # new links from one address (an IPv6 /64):
new_connections_per_address_per_second = 8.0  # this many at once, then this many a second
handshake_timeout = 5.0             # seconds for the whole Noise handshake
idle_timeout = 180.0
queue_capacity = 100000             # packets waiting for their delay
peer_queue_capacity = 5000          # packets waiting for one next hop's link
expected_packets_per_second = 5000  # sizes the replay filters (false positives 1e-6)
max_mailboxes = 100000
mailbox_max_messages = 10000
mailbox_max_bytes = 33554432
mailbox_store_max_bytes = 4294967296  # gateways: payload bytes of all mailboxes together
mailbox_expire_days = 30
client_rate_factor = 3.0            # gateways: a client link may send packets and fetch
client_burst_seconds = 2.0          #   frames at this many times a client's rates, with this
client_packet_rate_floor = 50.0     #   many seconds of it at once, and at least these rates
client_fetch_rate_floor = 1000.0    #   a second; more packets are dropped, fetches wait
registrations_per_address_per_hour = 20  # gateways: new mailboxes from one address (an IPv6
#                                     /64): this many at once, and this many an hour after
shutdown_grace = 5.0                # seconds to send what is due on SIGTERM
"""


class NodeConfigError(Exception):
    """The node's configuration is missing, unreadable or invalid."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_connections: int = 2000
    max_connections_per_address: int = 32
    new_connections_per_address_per_second: float = 8.0
    new_connections_burst_per_address: int = 64
    handshake_timeout: float = 5.0
    idle_timeout: float = 180.0
    queue_capacity: int = 100_000
    peer_queue_capacity: int = 5000
    expected_packets_per_second: int = 5000
    max_mailboxes: int = 100_000
    mailbox_max_messages: int = 10_000
    mailbox_max_bytes: int = 32 * 1024 * 1024
    mailbox_store_max_bytes: int = 4 * 1024**3
    mailbox_expire_days: float = 30.0
    client_rate_factor: float = 3.0
    client_burst_seconds: float = 2.0
    client_packet_rate_floor: float = 50.0
    client_fetch_rate_floor: float = 1000.0
    registrations_per_address_per_hour: int = 20
    shutdown_grace: float = 5.0

    @property
    def client_packets(self) -> Allowance:
        """Packets a client link may send, against λ_P + λ_L + λ_D."""
        return Allowance(
            self.client_rate_factor, self.client_packet_rate_floor, self.client_burst_seconds
        )

    @property
    def client_fetches(self) -> Allowance:
        """Mailbox frames a client link may fetch, against 2 (λ_P + λ_L)."""
        return Allowance(
            self.client_rate_factor, self.client_fetch_rate_floor, self.client_burst_seconds
        )


@dataclass(frozen=True, slots=True)
class NodeConfig:
    name: str
    role: Role
    data_dir: Path
    listen_host: str
    listen_port: int
    public_host: str
    public_port: int
    client_listen: tuple[str, int] | None
    public_client: tuple[str, int] | None
    """A gateway's client address as published (its descriptor's second address)."""
    workers: int
    metrics_listen: tuple[str, int] | None
    clock: EpochClock
    geometry: Geometry
    authorities: tuple[AuthorityEndpoint, ...]
    limits: Limits

    @property
    def identity_key_file(self) -> Path:
        return self.data_dir / "identity.key"

    @property
    def link_key_file(self) -> Path:
        return self.data_dir / "link.key"


def load_node_config(path: Path) -> NodeConfig:
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except OSError as error:
        raise NodeConfigError(f"cannot read {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise NodeConfigError(f"{path} is not valid TOML: {error}") from None
    return parse_node_config(document, base=path.parent)


def parse_node_config(document: Mapping[str, Any], *, base: Path) -> NodeConfig:
    node = _table(document, "node")
    name = _get(node, "name", str, "node")
    if not NAME_PATTERN.fullmatch(name):
        raise NodeConfigError("node.name: 1 to 64 letters, digits, '.', '_' or '-'")
    roles = {"mix": Role.MIX, "gateway": Role.GATEWAY}
    role = roles.get(_get(node, "role", str, "node"))
    if role is None:
        raise NodeConfigError('node.role must be "mix" or "gateway"')
    listen = host_port(_get(node, "listen", str, "node"), "node.listen")
    public = host_port(_get(node, "public_address", str, "node"), "node.public_address")
    if public[1] == 0:
        raise NodeConfigError("node.public_address needs a port")
    client_listen = None
    if "client_listen" in node:
        if role is not Role.GATEWAY:
            raise NodeConfigError("node.client_listen is for gateways only")
        client_listen = host_port(_get(node, "client_listen", str, "node"), "node.client_listen")
    elif role is Role.GATEWAY:
        raise NodeConfigError("a gateway needs node.client_listen")
    public_client = client_listen
    if "public_client_address" in node:
        if role is not Role.GATEWAY:
            raise NodeConfigError("node.public_client_address is for gateways only")
        public_client = host_port(
            _get(node, "public_client_address", str, "node"), "node.public_client_address"
        )
    workers = node.get("workers", 1)
    if type(workers) is not int or not 1 <= workers <= 64:
        raise NodeConfigError("node.workers must be an integer from 1 to 64")

    metrics = _table(document, "metrics", required=False)
    metrics_listen = None
    if "listen" in metrics:
        metrics_listen = host_port(_get(metrics, "listen", str, "metrics"), "metrics.listen")

    return NodeConfig(
        name=name,
        role=role,
        data_dir=base / _get(node, "data_dir", str, "node"),
        listen_host=listen[0],
        listen_port=listen[1],
        public_host=public[0],
        public_port=public[1],
        client_listen=client_listen,
        public_client=public_client,
        workers=workers,
        metrics_listen=metrics_listen,
        clock=parse_clock(_table(document, "epoch", required=False)),
        geometry=parse_geometry(_table(document, "geometry", required=False)),
        authorities=parse_authorities(document.get("authorities")),
        limits=_limits(_table(document, "limits", required=False)),
    )


def host_port(text: str, where: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise NodeConfigError(f"{where} must be host:port")
    return host, int(port)


def parse_clock(table: Mapping[str, Any]) -> EpochClock:
    origin = table.get("origin", DEFAULT_ORIGIN_MS / 1000)
    length = table.get("length_seconds", DEFAULT_EPOCH_LENGTH_MS / 1000)
    if type(origin) not in (int, float) or type(length) not in (int, float):
        raise NodeConfigError("epoch.origin and epoch.length_seconds must be numbers")
    try:
        return EpochClock(origin_ms=round(origin * 1000), length_ms=round(length * 1000))
    except DirectoryError as error:
        raise NodeConfigError(f"epoch: {error}") from None


def parse_geometry(table: Mapping[str, Any]) -> Geometry:
    default = Geometry.default()
    try:
        return Geometry(
            hops=table.get("hops", default.hops),
            user_payload_size=table.get("user_payload_size", default.user_payload_size),
        )
    except SphinxError as error:
        raise NodeConfigError(f"geometry: {error}") from None


def parse_authorities(raw: Any) -> tuple[AuthorityEndpoint, ...]:
    if not isinstance(raw, list) or not raw:
        raise NodeConfigError("at least one [[authorities]] entry is needed")
    authorities = []
    for entry in raw:
        if not isinstance(entry, dict):
            raise NodeConfigError("each [[authorities]] entry is a table")
        url = _get(entry, "url", str, "authorities")
        if not url.startswith(("http://", "https://")):
            raise NodeConfigError("authorities.url must be an http:// or https:// URL")
        text = _get(entry, "public_key", str, "authorities")
        try:
            key = bytes.fromhex(text)
        except ValueError:
            key = b""
        if len(key) != 32:
            raise NodeConfigError("authorities.public_key must be 64 hex digits")
        authorities.append(AuthorityEndpoint(key, url))
    if len({a.public_key for a in authorities}) != len(authorities):
        raise NodeConfigError("an authority key is listed twice")
    return tuple(authorities)


def _limits(table: Mapping[str, Any]) -> Limits:
    defaults = Limits()
    values: dict[str, Any] = {}
    for name in Limits.__dataclass_fields__:
        default = getattr(defaults, name)
        value = table.get(name, default)
        if isinstance(default, int):
            ok = type(value) is int and value >= 1
        else:
            ok = type(value) in (int, float) and 0 < value < math.inf
            value = float(value)
        if not ok:
            raise NodeConfigError(f"limits.{name} must be a positive number")
        values[name] = value
    unknown = set(table) - set(Limits.__dataclass_fields__)
    if unknown:
        raise NodeConfigError(f"unknown key limits.{min(unknown)}")
    return Limits(**values)


def _table(document: Mapping[str, Any], name: str, *, required: bool = True) -> Mapping[str, Any]:
    value = document.get(name)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise NodeConfigError(f"the [{name}] table is {'missing' if value is None else 'not a table'}")
    return value


def _get(table: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = table.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise NodeConfigError(f"{where}.{key} is missing or not a {kind.__name__}")
    return value
