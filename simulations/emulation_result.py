"""What an emulation returns: a `Result` of the same schema as the model's, plus the field
``produced_by`` and the emulation's own counts (`EmulationStats`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from simulations.result import Result

Producer = Literal["model", "emulation"]
PRODUCERS: Final = ("model", "emulation")


@dataclass(frozen=True, slots=True)
class EmulationStats:
    """How the emulation went: work done, wall time, and anything lost or refused."""

    variant: str
    surb_acks: bool
    wall_seconds: float
    virtual_seconds: float  # the horizon plus the drain that followed it
    packets_emitted: int  # packets the wiretap traced (client packets and node loops)
    packets_built: int  # Sphinx packets made: traced ones and SURB-ACK replies
    unwraps: int  # Sphinx packets processed by nodes
    packets_per_second: float  # packets built per wall-clock second
    unwraps_per_second: float
    lost: int  # traced packets that never reached their destination
    dropped: dict[str, int] = field(default_factory=dict)  # by reason, over nodes, links and clients
    real_sent: int = 0  # real packets put on the wire (retransmissions included)
    delivered_messages: int = 0  # opened by their recipients
    acks_sent: int = 0
    acks_received: int = 0
    retransmissions: int = 0
    failed_messages: int = 0
    drops_discarded: int = 0  # drop packets the exit gateways discarded (a mailbox nobody has)


@dataclass(frozen=True, slots=True, eq=False)
class EmulationResult(Result):
    """A `Result` made by `simulations.emulate`: same fields, plus how it was made."""

    emulation: EmulationStats | None = None
    produced_by: Producer = "emulation"

    def row(self) -> dict[str, Any]:
        return {"produced_by": self.produced_by} | Result.row(self)

    def to_json(self, *, arrays: bool = False) -> dict[str, Any]:
        document = {"produced_by": self.produced_by} | Result.to_json(self, arrays=arrays)
        if self.emulation is not None:
            document["emulation"] = dataclasses.asdict(self.emulation)
        return document


def produced_by(result: Result) -> Producer:
    """Which produced `result`: the emulation, or else the model."""
    return result.produced_by if isinstance(result, EmulationResult) else "model"


def result_document(result: Result, *, arrays: bool = False) -> dict[str, Any]:
    """The JSON document of a result of either kind, with its ``produced_by`` field."""
    return {"produced_by": produced_by(result)} | result.to_json(arrays=arrays)
