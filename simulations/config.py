"""The simulator's parameters: one frozen value, validated, read from and written to TOML.

Every parameter carries its TOML section and a help text in its field metadata, so the TOML
layout and the command-line flags both come from this one definition.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from simulations.errors import ConfigError

Workload = Literal["saturated", "poisson"]
WORKLOADS: Final = ("saturated", "poisson")
NodeLoops = Literal["indistinguishable", "recognised"]
NODE_LOOP_VIEWS: Final = ("indistinguishable", "recognised")

QUEUE_RELAXATIONS: Final = 10.0  # the automatic window lasts at least this many client-queue relaxation times
PATH_DELAYS: Final = 10.0  # the automatic warm-up lasts this many mean path delays

SECTIONS: Final = ("network", "traffic", "adversary", "run", "metrics")


def _param(default: Any, section: str, help: str) -> Any:
    return field(default=default, metadata={"section": section, "help": help})


@dataclass(frozen=True, slots=True)
class SimConfig:
    """All parameters of one simulation run. Rates are per second, times in seconds."""

    # network
    clients: int = _param(100, "network", "number of clients")
    layers: int = _param(3, "network", "number of mix layers (L)")
    width: int = _param(3, "network", "mixes per layer (W)")
    gateways: int = _param(
        3, "network", "gateways; each holds packets like a mix (0: clients talk to layer 1 directly)"
    )
    mu: float = _param(10.0, "network", "per-hop delay rate μ; mean delay per hop is 1/μ seconds")
    link_latency: float = _param(0.0, "network", "constant latency of every link, seconds")
    # traffic
    lambda_p: float = _param(1.0, "traffic", "payload stream rate λ_P per client")
    lambda_l: float = _param(0.0, "traffic", "loop cover rate λ_L per client")
    lambda_d: float = _param(0.0, "traffic", "drop cover rate λ_D per client")
    lambda_m: float = _param(0.0, "traffic", "loop rate λ_M per mix and per gateway")
    workload: Workload = _param(
        "saturated",
        "traffic",
        "real messages: 'saturated' (one in every payload slot) or 'poisson' (queued, at message_rate)",
    )
    message_rate: float = _param(
        0.5, "traffic", "real messages per second per active client (poisson workload)"
    )
    active_fraction: float = _param(
        1.0, "traffic", "fraction of clients with real messages (poisson workload)"
    )
    # adversary
    corrupt_fraction: float = _param(
        0.0,
        "adversary",
        "fraction of all mixes that are corrupt, chosen at random (rounded to the nearest count)",
    )
    corrupt_mixes: int | None = _param(
        None, "adversary", "exact number of corrupt mixes chosen at random (instead of corrupt_fraction)"
    )
    corrupt_layers: tuple[int, ...] = _param(
        (), "adversary", "layers (1 = first) whose mixes are all corrupt, on top of the random ones"
    )
    corrupt_gateways: float = _param(
        0.0, "adversary", "fraction of gateways that are corrupt, chosen at random"
    )
    node_loops: NodeLoops = _param(
        "indistinguishable",
        "adversary",
        "mix and gateway loops: 'indistinguishable' from other packets, or 'recognised' by the adversary",
    )
    # run
    duration: float | None = _param(
        None,
        "run",
        "seconds of client traffic (auto: twice the targets, and ten client-queue relaxation times, after warm-up)",
    )
    warmup: float | None = _param(
        None, "run", "seconds before targets are sampled (auto: ten mean path delays)"
    )
    targets: int = _param(1000, "run", "number of real messages whose anonymity is measured")
    seed: int = _param(0, "run", "seed of every random choice")
    # metrics
    epsilon: float = _param(1.0, "metrics", "ε (natural log) for the (ε, δ) unlinkability figure")
    mass_floor: float = _param(1e-10, "metrics", "probability mass below which a trace is cut off")

    def __post_init__(self) -> None:
        _validate(self)

    # -- derived values -------------------------------------------------------------------
    @property
    def mixes(self) -> int:
        return self.layers * self.width

    @property
    def path_hops(self) -> int:
        """Nodes that hold a forward packet: the entry gateway, one mix per layer, the exit gateway."""
        return self.layers + (2 if self.gateways > 0 else 0)

    @property
    def path_delay(self) -> float:
        """Mean time a forward packet spends in the network: every hold and every link."""
        return self.path_hops / self.mu + (self.path_hops + 1) * self.link_latency

    @property
    def utilisation(self) -> float:
        """ρ of a client's queue: real messages per payload slot (1 when saturated)."""
        if self.workload == "saturated":
            return 1.0
        return self.message_rate / self.lambda_p

    @property
    def queue_sojourn(self) -> float:
        """Mean time a real message waits in its client's queue (M/M/1: 1/(λ_P − rate)); 0 saturated."""
        if self.workload == "saturated":
            return 0.0
        return 1.0 / (self.lambda_p - self.message_rate)

    @property
    def queue_relaxation(self) -> float:
        """Relaxation time of a client's M/M/1 queue, 1/(λ_P (1 − √ρ)²): how long its latency
        samples stay correlated (Morse; Cohen, *The Single Server Queue*); 0 when saturated."""
        if self.workload == "saturated":
            return 0.0
        return 1.0 / (self.lambda_p * (1.0 - math.sqrt(self.utilisation)) ** 2)

    @property
    def random_corrupt_mixes(self) -> int:
        """How many mixes are corrupted at random, besides the corrupt layers."""
        if self.corrupt_mixes is not None:
            return self.corrupt_mixes
        return round(self.corrupt_fraction * self.mixes)

    @property
    def real_rate(self) -> float:
        """Real messages per second, over all clients."""
        if self.workload == "saturated":
            return self.clients * self.lambda_p
        return self.clients * self.active_fraction * self.message_rate

    @property
    def effective_warmup(self) -> float:
        """The warm-up used: given, or ten mean path delays (the pools start empty).

        Client queues need none: they start in their stationary state (see `traffic`).
        """
        if self.warmup is not None:
            return self.warmup
        return PATH_DELAYS * self.path_delay

    @property
    def effective_duration(self) -> float:
        """The horizon used: given, or the warm-up plus a window long enough for twice the
        targets, ten path delays, and ten relaxation times of the client queues (so that the
        latency of queued messages is averaged over many independent stretches of each queue)."""
        if self.duration is not None:
            return self.duration
        per_target = 2.0 * self.targets / self.real_rate
        window = max(per_target, PATH_DELAYS * self.path_delay, QUEUE_RELAXATIONS * self.queue_relaxation)
        return self.effective_warmup + window

    def replace(self, **changes: Any) -> SimConfig:
        """A copy with some parameters changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # -- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Flat mapping of parameter names to values (None for automatic ones)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SimConfig:
        """Build a config from a flat mapping; unknown names are an error."""
        unknown = set(values) - set(PARAMETERS)
        if unknown:
            raise ConfigError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        return cls(**{name: coerce(name, value) for name, value in values.items()})

    def to_toml(self) -> str:
        """The TOML text of this config, grouped in sections; `from_toml` reads it back."""
        lines: list[str] = []
        for section in SECTIONS:
            lines.append(f"[{section}]")
            for f in dataclasses.fields(self):
                if f.metadata["section"] != section:
                    continue
                value = getattr(self, f.name)
                if value is None:
                    lines.append(f"# {f.name} = (automatic)  # {f.metadata['help']}")
                elif isinstance(value, tuple):
                    items = ", ".join(_toml_value(v) for v in value)
                    lines.append(f"{f.name} = [{items}]  # {f.metadata['help']}")
                else:
                    lines.append(f"{f.name} = {_toml_value(value)}  # {f.metadata['help']}")
            lines.append("")
        return "\n".join(lines)

    @classmethod
    def from_toml(cls, text: str) -> SimConfig:
        """Parse TOML text: parameters in their sections, or flat at the top level."""
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"invalid TOML: {exc}") from exc
        flat: dict[str, Any] = {}
        for key, value in document.items():
            if isinstance(value, dict):
                if key not in SECTIONS:
                    raise ConfigError(f"unknown section [{key}]")
                for name, inner in value.items():
                    if name in PARAMETERS and PARAMETERS[name].metadata["section"] != key:
                        raise ConfigError(
                            f"{name} belongs in [{PARAMETERS[name].metadata['section']}], not [{key}]"
                        )
                    _put(flat, name, inner)
            else:
                _put(flat, key, value)
        return cls.from_dict(flat)

    @classmethod
    def load(cls, path: str | Path) -> SimConfig:
        return cls.from_toml(Path(path).read_text(encoding="utf-8"))


PARAMETERS: Final[dict[str, dataclasses.Field[Any]]] = {f.name: f for f in dataclasses.fields(SimConfig)}

INTEGER_PARAMETERS: Final = frozenset(
    {"clients", "layers", "width", "gateways", "targets", "seed", "corrupt_mixes"}
)
OPTIONAL_PARAMETERS: Final = frozenset({"duration", "warmup", "corrupt_mixes"})
STRING_PARAMETERS: Final = {"workload": WORKLOADS, "node_loops": NODE_LOOP_VIEWS}
LAYER_LIST_PARAMETERS: Final = frozenset({"corrupt_layers"})
_OPTIONAL = OPTIONAL_PARAMETERS
_STRINGS = frozenset(STRING_PARAMETERS)


def _put(flat: dict[str, Any], name: str, value: Any) -> None:
    if name in flat:
        raise ConfigError(f"{name} is given twice")
    flat[name] = value


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        raise ConfigError("no parameter is a boolean")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise ConfigError(f"cannot write {value!r} as TOML")


def parse_layers(value: Any) -> tuple[int, ...]:
    """A list of layer numbers from TOML (an array) or text ("1,3", "1+3", "[1, 3]", "" for none)."""
    if isinstance(value, str):
        text = value.strip().strip("[]()")
        parts = [p for p in text.replace("+", ",").replace(" ", ",").split(",") if p]
        try:
            items: list[Any] = [int(p) for p in parts]
        except ValueError as exc:
            raise ConfigError(f"corrupt_layers: {value!r} is not a list of layer numbers") from exc
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ConfigError(f"corrupt_layers: expected a list of layer numbers, got {value!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise ConfigError(f"corrupt_layers: expected a list of layer numbers, got {value!r}")
    if len(set(items)) != len(items):
        raise ConfigError(f"corrupt_layers repeats a layer: {value!r}")
    return tuple(sorted(items))


def coerce(name: str, value: Any) -> Any:
    """Convert a value from TOML or the command line to the parameter's type."""
    if name not in PARAMETERS:
        raise ConfigError(f"unknown parameter: {name}")
    if name in LAYER_LIST_PARAMETERS:
        return parse_layers(value)
    if value is None:
        if name in _OPTIONAL:
            return None
        raise ConfigError(f"{name} must be given")
    if isinstance(value, str) and name not in _STRINGS:
        text = value.strip()
        if name in _OPTIONAL and text.lower() in ("", "auto", "none"):
            return None
        try:
            value = int(text) if name in INTEGER_PARAMETERS else float(text)
        except ValueError as exc:
            raise ConfigError(f"{name}: {value!r} is not a number") from exc
    if isinstance(value, bool):
        raise ConfigError(f"{name}: expected a number, got a boolean")
    if name in INTEGER_PARAMETERS:
        if isinstance(value, float):
            if not value.is_integer():
                raise ConfigError(f"{name}: expected an integer, got {value!r}")
            value = int(value)
        if not isinstance(value, int):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        return value
    if name in _STRINGS:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        return value
    if not isinstance(value, (int, float)):
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    return float(value)


def _validate(c: SimConfig) -> None:
    for name in PARAMETERS:
        value = getattr(c, name)
        if name in LAYER_LIST_PARAMETERS:
            if not isinstance(value, tuple) or value != parse_layers(value):
                raise ConfigError(f"{name}: expected a sorted tuple of distinct layer numbers, got {value!r}")
            continue
        if value is None:
            if name not in _OPTIONAL:
                raise ConfigError(f"{name} must be given")
            continue
        if name in INTEGER_PARAMETERS and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        if name not in INTEGER_PARAMETERS and name not in _STRINGS:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{name}: expected a number, got {value!r}")
            if not math.isfinite(value):
                raise ConfigError(f"{name}: must be finite, got {value!r}")

    def at_least(name: str, low: float, strict: bool = False) -> None:
        value = getattr(c, name)
        if value is not None and (value <= low if strict else value < low):
            raise ConfigError(f"{name} must be {'>' if strict else '≥'} {low}, got {value!r}")

    for name in ("clients", "layers", "width", "targets"):
        at_least(name, 1)
    at_least("clients", 2)
    for name in ("gateways", "seed", "link_latency", "lambda_p", "lambda_l", "lambda_d", "lambda_m"):
        at_least(name, 0)
    for name in ("mu", "epsilon", "mass_floor"):
        at_least(name, 0, strict=True)
    at_least("duration", 0, strict=True)
    at_least("warmup", 0)
    for name in ("active_fraction", "corrupt_fraction", "corrupt_gateways"):
        value = getattr(c, name)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{name} must be between 0 and 1, got {value!r}")
    if c.seed >= 1 << 63:
        raise ConfigError(f"seed must fit in 63 bits (TOML integers are 64-bit), got {c.seed}")
    if c.mass_floor >= 1e-3:
        raise ConfigError(f"mass_floor must be below 1e-3, got {c.mass_floor!r}")
    for name, allowed in STRING_PARAMETERS.items():
        if getattr(c, name) not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {getattr(c, name)!r}")
    if any(not 1 <= layer <= c.layers for layer in c.corrupt_layers):
        raise ConfigError(f"corrupt_layers must name layers 1 to {c.layers}, got {list(c.corrupt_layers)}")
    if c.corrupt_mixes is not None:
        if c.corrupt_fraction > 0:
            raise ConfigError("give corrupt_mixes or corrupt_fraction, not both")
        at_least("corrupt_mixes", 0)
    others = c.mixes - len(c.corrupt_layers) * c.width
    if c.random_corrupt_mixes > others:
        raise ConfigError(
            f"{c.random_corrupt_mixes} random corrupt mixes requested, but only {others} mixes are "
            "outside the corrupt layers"
        )
    if c.lambda_p <= 0:
        raise ConfigError("lambda_p must be > 0: real messages travel on the payload stream")
    if c.lambda_m > 0 and c.layers < 2 and c.gateways == 0:
        raise ConfigError(
            "mix loops (lambda_m > 0) travel through the other layers or a gateway: "
            "they need layers ≥ 2 or gateways ≥ 1"
        )
    if c.workload == "poisson":
        if c.message_rate <= 0 or c.active_fraction <= 0:
            raise ConfigError("the poisson workload needs message_rate > 0 and active_fraction > 0")
        if c.message_rate >= c.lambda_p:
            raise ConfigError(
                f"message_rate ({c.message_rate}) must be below lambda_p ({c.lambda_p}), "
                "or client queues grow without bound; use workload = 'saturated' instead"
            )
    if c.duration is not None and c.effective_warmup >= c.duration:
        raise ConfigError(
            f"warmup ({c.effective_warmup:g} s) must be shorter than duration ({c.duration:g} s)"
        )
