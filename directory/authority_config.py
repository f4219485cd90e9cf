"""`AuthorityConfig`: an authority's TOML configuration (read with `tomllib`).

Relative paths are relative to the configuration file. A sample, `SAMPLE_CONFIG`, is what
`trimix authority run --help` shows.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from directory.authority_core import DEFAULT_UPLOADS_PER_SOURCE, AuthorityPolicy
from directory.descriptor import Role
from directory.endpoints import AuthorityEndpoint
from directory.epoch import DEFAULT_EPOCH_LENGTH_MS, DEFAULT_ORIGIN_MS, EpochClock
from directory.errors import ConfigError, DirectoryError
from directory.http_app import DEFAULT_REQUEST_SECONDS
from directory.http_server import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_PER_SOURCE,
    ConnectionLimits,
)
from directory.parameters import ParameterRanges, Parameters, parameters_from_array
from directory.vote import MAX_DESCRIPTORS
from sphinx_packets import Geometry, SphinxError

ROLES = {"mix": Role.MIX, "gateway": Role.GATEWAY}

SAMPLE_CONFIG = """\
[authority]
key_file = "authority.key"       # from `trimix authority keygen`, mode 0600
data_dir = "authority-data"      # SQLite database of descriptors, votes, consensuses
listen = "127.0.0.1:8440"        # host:port of the HTTP API
# threshold = 2                  # signatures a consensus needs, floor(n/2)+1 (default) .. n

[epoch]                          # identical on every authority, node and client
origin = 1704067200              # Unix seconds when epoch 0 began
length_seconds = 1200            # 20 minutes

[parameters]                     # this authority's proposal; the consensus takes the low median
mean_delay_ms = 50               # 1/mu, the mean per-hop delay
lambda_p = 2.0                   # client payload stream, per second
lambda_l = 0.5                   # client loop stream
lambda_d = 0.5                   # client drop stream
lambda_m = 1.0                   # mix loop stream
layers = 3

[parameters.acceptable]          # optional: the consensus values this authority signs
mean_delay_ms = [20, 200]        # default: a factor of 4 around the proposal
lambda_p = [0.5, 8.0]            #   (layers: exactly the proposal), within the safe bounds
layers = [3, 3]

[geometry]                       # the Sphinx geometry; its hash goes into the consensus
hops = 5
user_payload_size = 2640

[[authorities]]                  # every pinned authority, this one included
public_key = "<64 hex digits>"
url = "http://127.0.0.1:8440"

[[authorities]]
public_key = "<64 hex digits>"
url = "http://192.0.2.2:8440"

[registration]                   # closed by default: only the [[nodes]] below may upload
open = false                     # true admits any node key (testnets only; logged)
allow_loopback_addresses = false # true admits 127.0.0.1 / ::1 descriptor addresses
uploads_per_source_per_epoch = 128

[[nodes]]                        # one entry per admitted node
identity_key = "<64 hex digits>"
role = "mix"                     # or "gateway"

[limits]                         # optional
max_descriptors_per_epoch = 10000
retain_published_epochs = 72     # at least 1
max_connections = 512            # lowered to fit the file-descriptor limit
max_connections_per_source = 32
request_seconds = 10             # a request body must arrive whole within this
"""


@dataclass(frozen=True, slots=True)
class AuthorityConfig:
    key_file: Path
    data_dir: Path
    listen_host: str
    listen_port: int
    clock: EpochClock
    parameters: Parameters
    geometry: Geometry
    authorities: tuple[AuthorityEndpoint, ...]
    threshold: int | None
    acceptable: ParameterRanges | None
    allowed_nodes: Mapping[bytes, Role]
    open_registration: bool
    allow_loopback_addresses: bool
    uploads_per_source_per_epoch: int
    max_descriptors_per_epoch: int
    retain_published_epochs: int
    connection_limits: ConnectionLimits
    request_seconds: float

    def policy(self) -> AuthorityPolicy:
        return AuthorityPolicy(
            authorities=frozenset(a.public_key for a in self.authorities),
            clock=self.clock,
            parameters=self.parameters,
            geometry=self.geometry,
            threshold=self.threshold,
            acceptable=self.acceptable,
            allowed_nodes=self.allowed_nodes,
            open_registration=self.open_registration,
            allow_loopback_addresses=self.allow_loopback_addresses,
            uploads_per_source_per_epoch=self.uploads_per_source_per_epoch,
            max_descriptors_per_epoch=self.max_descriptors_per_epoch,
            retain_published_epochs=self.retain_published_epochs,
        )

    def peers(self, own_key: bytes) -> tuple[AuthorityEndpoint, ...]:
        """The other authorities."""
        return tuple(a for a in self.authorities if a.public_key != own_key)


def load_authority_config(path: Path) -> AuthorityConfig:
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    return parse_authority_config(document, base=path.parent)


def parse_authority_config(document: Mapping[str, Any], *, base: Path) -> AuthorityConfig:
    authority = _table(document, "authority")
    epoch = _table(document, "epoch", required=False)
    parameters = _table(document, "parameters", required=False)
    geometry = _table(document, "geometry", required=False)
    registration = _table(document, "registration", required=False)
    limits = _table(document, "limits", required=False)

    host, _, port = _get(authority, "listen", str, "authority").rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError("authority.listen must be host:port")

    origin = epoch.get("origin", DEFAULT_ORIGIN_MS / 1000)
    length = epoch.get("length_seconds", DEFAULT_EPOCH_LENGTH_MS / 1000)
    if type(origin) not in (int, float) or type(length) not in (int, float):
        raise ConfigError("epoch.origin and epoch.length_seconds must be numbers")
    clock = EpochClock(origin_ms=round(origin * 1000), length_ms=round(length * 1000))

    defaults = Parameters.default()
    proposal = Parameters(
        mean_delay_ms=_int(parameters, "mean_delay_ms", defaults.mean_delay_ms),
        lambda_p_mhz=_rate(parameters, "lambda_p", defaults.lambda_p_mhz),
        lambda_l_mhz=_rate(parameters, "lambda_l", defaults.lambda_l_mhz),
        lambda_d_mhz=_rate(parameters, "lambda_d", defaults.lambda_d_mhz),
        lambda_m_mhz=_rate(parameters, "lambda_m", defaults.lambda_m_mhz),
        layers=_int(parameters, "layers", defaults.layers),
    )
    try:
        parameters_from_array(proposal.to_array())
    except DirectoryError as error:
        raise ConfigError(f"parameters: {error}") from None
    default_geometry = Geometry.default()
    try:
        shape = Geometry(
            hops=_int(geometry, "hops", default_geometry.hops),
            user_payload_size=_int(
                geometry, "user_payload_size", default_geometry.user_payload_size
            ),
        )
    except SphinxError as error:
        raise ConfigError(f"geometry: {error}") from None

    raw_authorities = document.get("authorities")
    if not isinstance(raw_authorities, list) or not raw_authorities:
        raise ConfigError("at least one [[authorities]] entry is needed")
    authorities = []
    for entry in raw_authorities:
        if not isinstance(entry, dict):
            raise ConfigError("each [[authorities]] entry is a table")
        url = _get(entry, "url", str, "authorities")
        if not url.startswith(("http://", "https://")):
            raise ConfigError("authorities.url must be an http:// or https:// URL")
        authorities.append(
            AuthorityEndpoint(_hex_key(_get(entry, "public_key", str, "authorities")), url)
        )
    if len({a.public_key for a in authorities}) != len(authorities):
        raise ConfigError("an authority key is listed twice")

    threshold = authority.get("threshold")
    if threshold is not None and type(threshold) is not int:
        raise ConfigError("authority.threshold must be an integer")

    max_descriptors = _int(limits, "max_descriptors_per_epoch", MAX_DESCRIPTORS)
    if not 1 <= max_descriptors <= MAX_DESCRIPTORS:
        raise ConfigError(f"limits.max_descriptors_per_epoch must be in 1..{MAX_DESCRIPTORS}")
    request_seconds = limits.get("request_seconds", DEFAULT_REQUEST_SECONDS)
    if type(request_seconds) not in (int, float) or not 0.1 <= request_seconds <= 600:
        raise ConfigError("limits.request_seconds must be a number of seconds in 0.1..600")
    connections = ConnectionLimits(
        max_connections=_positive(limits, "max_connections", DEFAULT_MAX_CONNECTIONS),
        max_per_source=_positive(limits, "max_connections_per_source", DEFAULT_MAX_PER_SOURCE),
    )

    config = AuthorityConfig(
        key_file=base / _get(authority, "key_file", str, "authority"),
        data_dir=base / _get(authority, "data_dir", str, "authority"),
        listen_host=host,
        listen_port=int(port),
        clock=clock,
        parameters=proposal,
        geometry=shape,
        authorities=tuple(authorities),
        threshold=threshold,
        acceptable=_acceptable(parameters.get("acceptable"), proposal),
        allowed_nodes=_allowed_nodes(document.get("nodes")),
        open_registration=_bool(registration, "open"),
        allow_loopback_addresses=_bool(registration, "allow_loopback_addresses"),
        uploads_per_source_per_epoch=_positive(
            registration, "uploads_per_source_per_epoch", DEFAULT_UPLOADS_PER_SOURCE
        ),
        max_descriptors_per_epoch=max_descriptors,
        retain_published_epochs=_int(limits, "retain_published_epochs", 72),
        connection_limits=connections,
        request_seconds=float(request_seconds),
    )
    config.policy()  # every cross-check (threshold, ranges, retention) raises ConfigError
    return config


def _allowed_nodes(raw: Any) -> dict[bytes, Role]:
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise ConfigError(
            "nodes must be [[nodes]] entries, each with identity_key and role (mix or gateway)"
        )
    allowed: dict[bytes, Role] = {}
    for entry in raw:
        if not isinstance(entry, dict):
            raise ConfigError("each [[nodes]] entry is a table")
        key = _hex_key(_get(entry, "identity_key", str, "nodes"))
        role = ROLES.get(_get(entry, "role", str, "nodes"))
        if role is None:
            raise ConfigError("nodes.role must be \"mix\" or \"gateway\"")
        if key in allowed:
            raise ConfigError("a node identity key is listed twice in [[nodes]]")
        allowed[key] = role
    return allowed


def _acceptable(raw: Any, proposal: Parameters) -> ParameterRanges | None:
    """`[parameters.acceptable]`: the ranges given, the default ones around the proposal
    (`ParameterRanges.around`) for the others; rates per second as in [parameters]."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError("parameters.acceptable must be a table of [low, high] ranges")
    unknown = set(raw) - set(_RANGE_KEYS)
    if unknown:
        raise ConfigError(f"parameters.acceptable: unknown keys {sorted(unknown)}")
    ranges: dict[str, tuple[int, int]] = {}
    for key, name in _RANGE_KEYS.items():
        if key not in raw:
            continue
        value = raw[key]
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(type(v) in (int, float) and v >= 0 for v in value)
        ):
            raise ConfigError(f"parameters.acceptable.{key} must be [low, high]")
        scale = 1000 if name.endswith("_mhz") else 1
        if scale == 1 and not all(type(v) is int for v in value):
            raise ConfigError(f"parameters.acceptable.{key} must be integers")
        ranges[name] = (round(value[0] * scale), round(value[1] * scale))
    merged = ParameterRanges.around(proposal).bounds() | ranges
    try:
        return ParameterRanges(**merged)
    except DirectoryError as error:
        raise ConfigError(f"parameters.acceptable: {error}") from None


_RANGE_KEYS = {
    "mean_delay_ms": "mean_delay_ms",
    "lambda_p": "lambda_p_mhz",
    "lambda_l": "lambda_l_mhz",
    "lambda_d": "lambda_d_mhz",
    "lambda_m": "lambda_m_mhz",
    "layers": "layers",
}


def _bool(table: Mapping[str, Any], key: str) -> bool:
    value = table.get(key, False)
    if type(value) is not bool:
        raise ConfigError(f"{key} must be true or false")
    return value


def _positive(table: Mapping[str, Any], key: str, default: int) -> int:
    value = _int(table, key, default)
    if value < 1:
        raise ConfigError(f"{key} must be at least 1")
    return value


def _table(document: Mapping[str, Any], name: str, *, required: bool = True) -> Mapping[str, Any]:
    value = document.get(name)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"the [{name}] table is {'missing' if value is None else 'not a table'}")
    return value


def _get(table: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = table.get(key)
    if not isinstance(value, kind):
        raise ConfigError(f"{where}.{key} is missing or not a {kind.__name__}")
    return value


def _int(table: Mapping[str, Any], key: str, default: int) -> int:
    value = table.get(key, default)
    if type(value) is not int or value < 0:
        raise ConfigError(f"{key} must be a non-negative integer")
    return value


def _rate(table: Mapping[str, Any], key: str, default_mhz: int) -> int:
    """A rate per second in the file, millihertz in the parameters."""
    value = table.get(key, default_mhz / 1000)
    if type(value) not in (int, float) or not 0 <= value <= 1_000_000:
        raise ConfigError(f"parameters.{key} must be a rate per second between 0 and 1e6")
    return round(float(value) * 1000)


def _hex_key(text: str) -> bytes:
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not a hex key") from None
    if len(key) != 32:
        raise ConfigError(f"{text!r} is not a 32-byte key in hex")
    return key
