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

from directory.authority_core import AuthorityPolicy
from directory.endpoints import AuthorityEndpoint
from directory.epoch import DEFAULT_EPOCH_LENGTH_MS, DEFAULT_ORIGIN_MS, EpochClock
from directory.errors import ConfigError, DirectoryError
from directory.parameters import Parameters, parameters_from_array
from directory.vote import MAX_DESCRIPTORS
from sphinx_packets import Geometry, SphinxError

SAMPLE_CONFIG = """\
[authority]
key_file = "authority.key"       # from `trimix authority keygen`, mode 0600
data_dir = "authority-data"      # SQLite database of descriptors, votes, consensuses
listen = "127.0.0.1:8440"        # host:port of the HTTP API

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

[geometry]                       # the Sphinx geometry; its hash goes into the consensus
hops = 5
user_payload_size = 2640

[[authorities]]                  # every pinned authority, this one included
public_key = "<64 hex digits>"
url = "http://127.0.0.1:8440"

[[authorities]]
public_key = "<64 hex digits>"
url = "http://192.0.2.2:8440"

[nodes]                          # optional: admit only these node identity keys
# allowed = ["<64 hex digits>"]

[limits]                         # optional
max_descriptors_per_epoch = 10000
retain_published_epochs = 72
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
    allowed_nodes: frozenset[bytes] | None
    max_descriptors_per_epoch: int
    retain_published_epochs: int

    def policy(self) -> AuthorityPolicy:
        return AuthorityPolicy(
            authorities=frozenset(a.public_key for a in self.authorities),
            clock=self.clock,
            parameters=self.parameters,
            geometry=self.geometry,
            allowed_nodes=self.allowed_nodes,
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
    nodes = _table(document, "nodes", required=False)
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

    allowed_nodes = None
    if "allowed" in nodes:
        allowed = nodes["allowed"]
        if not isinstance(allowed, list) or not all(isinstance(k, str) for k in allowed):
            raise ConfigError("nodes.allowed must be a list of hex keys")
        allowed_nodes = frozenset(_hex_key(k) for k in allowed)

    max_descriptors = _int(limits, "max_descriptors_per_epoch", MAX_DESCRIPTORS)
    if not 1 <= max_descriptors <= MAX_DESCRIPTORS:
        raise ConfigError(f"limits.max_descriptors_per_epoch must be in 1..{MAX_DESCRIPTORS}")

    return AuthorityConfig(
        key_file=base / _get(authority, "key_file", str, "authority"),
        data_dir=base / _get(authority, "data_dir", str, "authority"),
        listen_host=host,
        listen_port=int(port),
        clock=clock,
        parameters=proposal,
        geometry=shape,
        authorities=tuple(authorities),
        allowed_nodes=allowed_nodes,
        max_descriptors_per_epoch=max_descriptors,
        retain_published_epochs=_int(limits, "retain_published_epochs", 72),
    )


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
