"""A stream slot whose packet cannot be routed in the consensus the client holds (its gateway,
a whole layer or every gateway missing) passes empty, counted, instead of ending the client.
A client object built from a real authority-computed consensus, never opened: no network."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest

from directory.endpoints import AuthorityEndpoint
from directory.epoch import EpochClock
from mixclient import Client, ClientConfig
from mixclient.cover_streams import Emission, StreamKind
from tests.mixclient.test_routes import build_network


@pytest.mark.parametrize(
    "missing", ["own gateway", "every gateway", "a whole layer"],
)
@pytest.mark.parametrize("kind", [StreamKind.PAYLOAD, StreamKind.LOOP, StreamKind.DROP])
def test_an_unroutable_cover_slot_passes_empty_and_is_counted(
    tmp_path: Path, missing: str, kind: StreamKind
) -> None:
    network = build_network()
    consensus = network.consensus
    own = consensus.gateways[0]
    config = ClientConfig(
        state_dir=tmp_path,
        authorities=(AuthorityEndpoint(bytes(range(32)), "http://127.0.0.1:1"),),
        clock=EpochClock(origin_ms=0, length_ms=60_000),
    )
    client = Client(config, rng=random.Random(1))
    client._gateway_id = own
    client._mailbox_id = bytes(32)
    client._consensus = consensus
    routable = client._prepare(Emission(kind, 1.0))
    assert routable is not None and routable.packet
    if missing == "a whole layer":
        layers = (consensus.layers[0], (), *consensus.layers[2:])
        client._consensus = dataclasses.replace(consensus, layers=layers)
    else:  # a gateway of another epoch's consensus: not in this one
        client._gateway_id = bytes(range(32))
        if missing == "every gateway":
            client._consensus = dataclasses.replace(consensus, gateways=())
    assert client._prepare(Emission(kind, 2.0)) is None
    assert client._prepare(Emission(kind, 3.0)) is None
    assert client.stats.slots_unroutable == 2
