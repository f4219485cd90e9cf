"""A complete trimix network on loopback, each daemon its own OS process.

`plan_testnet` generates keys, allowlists and TOML configurations into a directory: three
authorities (closed registration: each lists the testnet's node identity keys; loopback
addresses allowed explicitly), three layers of two mixes and two gateways, short epochs.
`TestnetProcesses` starts and stops the daemons; `wait_for_consensus` waits until a verified
consensus lists every node. The CLI (`trimix testnet`) and the end-to-end tests use these.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from directory.consensus import Consensus
from directory.endpoints import AuthorityEndpoint
from directory.epoch import EpochClock
from directory.errors import ConsensusUnavailableError
from directory.fetcher import ConsensusFetcher
from directory.keyfile import write_key_file
from directory.signatures import SigningKey, node_id
from mixclient.client_config import client_config_toml
from mixnode.key_ring import LinkKey, write_secret_file
from sphinx_packets import Geometry

if TYPE_CHECKING:
    import httpx

AUTHORITIES = 3
LAYERS = 3
MIXES_PER_LAYER = 2
GATEWAYS = 2
DEFAULT_EPOCH_SECONDS = 6.0
DEFAULT_MEAN_DELAY_MS = 50
DEFAULT_CLIENT_RATES = (2.0, 0.5, 0.5)
"""λ_P, λ_L, λ_D per second: the authorities' defaults."""


@dataclass(frozen=True, slots=True)
class PlannedNode:
    name: str
    role: str
    config: Path
    log: Path
    data_dir: Path
    identity_public_key: bytes
    link_public_key: bytes
    port: int
    client_port: int | None
    metrics_port: int

    @property
    def node_id(self) -> bytes:
        return node_id(self.identity_public_key)


@dataclass(frozen=True, slots=True)
class PlannedAuthority:
    name: str
    config: Path
    log: Path
    endpoint: AuthorityEndpoint


@dataclass(frozen=True, slots=True)
class TestnetPlan:
    __test__ = False  # not a pytest test class
    directory: Path
    clock: EpochClock
    geometry: Geometry
    authorities: tuple[PlannedAuthority, ...]
    nodes: tuple[PlannedNode, ...]

    @property
    def endpoints(self) -> tuple[AuthorityEndpoint, ...]:
        return tuple(a.endpoint for a in self.authorities)

    def node(self, name: str) -> PlannedNode:
        return next(n for n in self.nodes if n.name == name)

    @property
    def gateways(self) -> tuple[PlannedNode, ...]:
        return tuple(n for n in self.nodes if n.role == "gateway")

    def client_config(
        self, name: str, *, gateway: PlannedNode | None = None, suite: str = "x25519"
    ) -> Path:
        """Write `clients/<name>/client.toml` for a client of this testnet (state in
        `clients/<name>/state`), registering at `gateway` (default: drawn at first start)."""
        home = self.directory / "clients" / name
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = home / "client.toml"
        path.write_text(
            client_config_toml(
                state_dir=home / "state",
                clock=self.clock,
                geometry=self.geometry,
                authorities=self.endpoints,
                gateway=gateway.node_id if gateway is not None else None,
                suite=suite,
            )
        )
        return path

    def summary(self) -> dict[str, object]:
        return {
            "directory": str(self.directory),
            "epoch_seconds": self.clock.length_ms / 1000,
            "authorities": [
                {"name": a.name, "url": a.endpoint.url, "config": str(a.config), "log": str(a.log)}
                for a in self.authorities
            ],
            "nodes": [
                {
                    "name": n.name,
                    "role": n.role,
                    "port": n.port,
                    "client_port": n.client_port,
                    "metrics": f"http://127.0.0.1:{n.metrics_port}/metrics",
                    "config": str(n.config),
                    "log": str(n.log),
                }
                for n in self.nodes
            ],
        }


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (bound at once, then released)."""
    sockets = []
    try:
        for _ in range(count):
            probe = socket.socket()
            probe.bind(("127.0.0.1", 0))
            sockets.append(probe)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for probe in sockets:
            probe.close()


def plan_testnet(
    directory: Path,
    *,
    epoch_seconds: float = DEFAULT_EPOCH_SECONDS,
    mean_delay_ms: int = DEFAULT_MEAN_DELAY_MS,
    lambda_m: float = 1.0,
    client_rates: tuple[float, float, float] = DEFAULT_CLIENT_RATES,
    registrations_per_hour: int = 100_000,
    queue_capacity: int | None = None,
    now: Callable[[], float] = time.time,
) -> TestnetPlan:
    """Write keys and configurations for a whole network into `directory`. Every client of
    a local testnet comes from 127.0.0.1, so the gateways' budget of new mailboxes per
    address is raised to `registrations_per_hour`. `queue_capacity`, if given, bounds each
    node's delay queue (the nodes' default otherwise)."""
    directory.mkdir(parents=True, exist_ok=True)
    length_ms = round(epoch_seconds * 1000)
    # Epoch 1 began a moment ago, so that the first consensus (epoch 2) is built right away.
    clock = EpochClock(origin_ms=int(now() * 1000) - length_ms - 200, length_ms=length_ms)
    geometry = Geometry.default()
    node_names = [f"mix-{layer + 1}{chr(ord('a') + i)}" for layer in range(LAYERS)
                  for i in range(MIXES_PER_LAYER)] + [f"gateway-{i + 1}" for i in range(GATEWAYS)]
    ports = iter(free_ports(AUTHORITIES + len(node_names) * 3))

    authority_keys = [SigningKey.generate() for _ in range(AUTHORITIES)]
    authorities = []
    for index, key in enumerate(authority_keys):
        name = f"authority-{index + 1}"
        home = directory / name
        home.mkdir(exist_ok=True)
        endpoint = AuthorityEndpoint(key.public_key, f"http://127.0.0.1:{next(ports)}")
        write_key_file(home / "authority.key", key, overwrite=True)
        authorities.append(PlannedAuthority(name, home / "authority.toml", home / "log.txt", endpoint))

    nodes = []
    for name in node_names:
        role = "gateway" if name.startswith("gateway") else "mix"
        home = directory / name
        data = home / "data"
        data.mkdir(parents=True, exist_ok=True, mode=0o700)
        identity = SigningKey.generate()
        link = LinkKey.generate()
        write_key_file(data / "identity.key", identity, overwrite=True)
        write_secret_file(data / "link.key", link.private_key, overwrite=True)
        port = next(ports)
        client_port = next(ports) if role == "gateway" else None
        metrics_port = next(ports)
        nodes.append(
            PlannedNode(
                name, role, home / "node.toml", home / "log.txt", data,
                identity.public_key, link.public_key, port, client_port, metrics_port,
            )
        )

    shared = _shared_toml(clock, geometry, [a.endpoint for a in authorities])
    allowlist = "".join(
        f'\n[[nodes]]\nidentity_key = "{n.identity_public_key.hex()}"\nrole = "{n.role}"\n'
        for n in nodes
    )
    for authority in authorities:
        port = authority.endpoint.url.rsplit(":", 1)[1]
        authority.config.write_text(
            "[authority]\n"
            'key_file = "authority.key"\n'
            'data_dir = "data"\n'
            f'listen = "127.0.0.1:{port}"\n\n'
            "[registration]\n"
            "allow_loopback_addresses = true   # a testnet on 127.0.0.1, still closed\n\n"
            "[parameters]\n"
            f"mean_delay_ms = {mean_delay_ms}\n"
            f"lambda_m = {lambda_m}\n"
            f"lambda_p = {client_rates[0]}\n"
            f"lambda_l = {client_rates[1]}\n"
            f"lambda_d = {client_rates[2]}\n"
            f"layers = {LAYERS}\n\n" + shared + allowlist
        )
    for planned in nodes:
        client = (
            f'client_listen = "127.0.0.1:{planned.client_port}"\n'
            if planned.client_port is not None
            else ""
        )
        planned.config.write_text(
            "[node]\n"
            f'name = "{planned.name}"\n'
            f'role = "{planned.role}"\n'
            'data_dir = "data"\n'
            f'listen = "127.0.0.1:{planned.port}"\n'
            f'public_address = "127.0.0.1:{planned.port}"\n'
            + client
            + "\n[metrics]\n"
            f'listen = "127.0.0.1:{planned.metrics_port}"\n\n'
            "[limits]\n"
            "shutdown_grace = 2.0\n"
            f"registrations_per_address_per_hour = {registrations_per_hour}\n"
            + ("" if queue_capacity is None else f"queue_capacity = {queue_capacity}\n")
            + "\n"
            + shared
        )
    plan = TestnetPlan(directory, clock, geometry, tuple(authorities), tuple(nodes))
    (directory / "testnet.json").write_text(json.dumps(plan.summary(), indent=2) + "\n")
    return plan


def _shared_toml(
    clock: EpochClock, geometry: Geometry, endpoints: list[AuthorityEndpoint]
) -> str:
    text = (
        "[epoch]\n"
        f"origin = {clock.origin_ms / 1000}\n"
        f"length_seconds = {clock.length_ms / 1000}\n\n"
        "[geometry]\n"
        f"hops = {geometry.hops}\n"
        f"user_payload_size = {geometry.user_payload_size}\n"
    )
    for endpoint in endpoints:
        text += (
            f'\n[[authorities]]\npublic_key = "{endpoint.public_key.hex()}"\n'
            f'url = "{endpoint.url}"\n'
        )
    return text


@dataclass
class TestnetProcesses:
    """The daemons of a plan, each a `python -m trimix` process logging to its own file."""

    __test__ = False  # not a pytest test class

    plan: TestnetPlan
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start_all(self) -> None:
        for authority in self.plan.authorities:
            self.start(authority.name)
        for node in self.plan.nodes:
            self.start(node.name)

    def start(self, name: str) -> subprocess.Popen[bytes]:
        authority = next((a for a in self.plan.authorities if a.name == name), None)
        if authority is not None:
            command, config, log = "authority", authority.config, authority.log
        else:
            planned = self.plan.node(name)
            command, config, log = "node", planned.config, planned.log
        with log.open("ab") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "trimix", command, "run", "--config", str(config)],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.running[name] = process
        return process

    def exited(self) -> dict[str, int]:
        """The daemons that have exited on their own, with their exit codes."""
        return {
            name: code
            for name, process in self.running.items()
            if (code := process.poll()) is not None
        }

    def kill(self, name: str) -> None:
        process = self.running.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def terminate(self, name: str, *, timeout: float = 15.0) -> int:
        """SIGTERM one daemon and wait for it; SIGKILL if it does not stop in time."""
        process = self.running.pop(name)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            return -9

    def stop_all(self, *, timeout: float = 15.0) -> dict[str, int]:
        """SIGTERM every daemon, nodes first; their exit codes."""
        codes = {}
        names = [n.name for n in self.plan.nodes] + [a.name for a in self.plan.authorities]
        live = [name for name in names if name in self.running]
        for name in live:
            process = self.running[name]
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name in live:
            process = self.running.pop(name)
            try:
                codes[name] = process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
                codes[name] = -9
        return codes


async def wait_for_consensus(
    plan: TestnetPlan,
    *,
    timeout: float,
    progress: Callable[[int, int], None] | None = None,
    require_all: bool = True,
) -> Consensus:
    """A verified consensus listing every node of the plan (or, without `require_all`, a
    complete route: every layer and two gateways)."""
    import httpx
    import trio

    # One HTTP client for the whole wait: making one loads the CA bundle (about 40 ms of CPU),
    # which every 0.25 s would slow the daemons starting up beside us.
    async with httpx.AsyncClient(timeout=2.0) as http:
        fetcher = ConsensusFetcher(
            plan.endpoints, plan.geometry, plan.clock, rng=random.Random(), request_timeout=2.0,
            http_client=http,
        )
        wanted = {n.node_id for n in plan.nodes}
        with trio.fail_after(timeout):
            while True:
                epoch = max(1, plan.clock.epoch_at(time.time()))
                try:
                    consensus = await fetcher.fetch(epoch)
                except ConsensusUnavailableError:
                    consensus = None
                if consensus is not None:
                    listed = wanted & set(consensus.descriptor_ids)
                    if progress is not None:
                        progress(len(listed), len(wanted))
                    complete = all(consensus.layers) and len(consensus.gateways) >= 2
                    if (listed == wanted or (complete and not require_all)) and await _in_service(
                        plan, http
                    ):
                        return consensus
                await trio.sleep(0.25)


async def _in_service(plan: TestnetPlan, client: httpx.AsyncClient) -> bool:
    """Every node has a consensus in force (its metrics say so): until then a node refuses
    links from nodes it does not know yet and cannot unwrap packets."""
    import httpx

    for node in plan.nodes:
        try:
            text = (await client.get(f"http://127.0.0.1:{node.metrics_port}/metrics")).text
        except httpx.HTTPError:
            return False
        epoch = next(
            (line.rsplit(" ", 1)[1] for line in text.splitlines()
             if line.startswith("trimix_consensus_epoch ")),
            "0",
        )
        if float(epoch) < 1:
            return False
    return True


async def network_drops(plan: TestnetPlan) -> dict[str, int]:
    """Packets dropped across the testnet's nodes, by reason (from their metrics)."""
    import httpx

    totals: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=2.0) as client:
        for node in plan.nodes:
            try:
                response = await client.get(f"http://127.0.0.1:{node.metrics_port}/metrics")
            except httpx.HTTPError:
                continue
            for line in response.text.splitlines():
                if line.startswith(
                    ("trimix_packets_dropped_total{", 'trimix_link_events_total{outcome="frames_lost"')
                ):
                    labels, value = line.rsplit(" ", 1)
                    reason = labels.split('"')[1]
                    if float(value):
                        totals[reason] = totals.get(reason, 0) + int(float(value))
    return totals
