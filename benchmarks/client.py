"""Client speed on a real testnet: one JSON line.

A local testnet (3 authorities, 3 layers of 2 mixes, 2 gateways, each its own process) whose
consensus sets the client payload stream to λ_P = 200/s by default (`--lambda-p`; λ_L = λ_D
= 2/s), with the clients' mailbox polls set by `--fetch-count` and `--fetch-per-second`
(the library's defaults: 4 frames per poll, at least 8 frames per second). The measured
client (alice, at gateway-1) runs in this process; the receiver (bob, at gateway-2) in a
child process that prints each message's sequence number and arrival time.

e2e_overhead_ms_per_hop_median  messages of one fragment sent one at a time: bob's arrival
                                time minus the time alice's link took the packet, minus the
                                delays drawn for its five hops, divided by 5; the median. It
                                includes the mailbox poll (the client fetches on a fixed
                                schedule), the receiver's durable store, and every link.
                                Messages whose fragment was retransmitted are left out.
e2e_overhead_ms_per_hop_p90     the same, 90th percentile
machine_busy_latency_phase      the share of the machine's CPU time that was busy during the
                                latency phase (all processes; Linux only, else absent)
cores_latency_phase             CPU seconds per second of each kind of process during that
                                phase: the two clients, the two gateways, the six mixes, the
                                three authorities (Linux only, else absent). Every daemon of
                                the testnet shares this machine's cores: where they are all
                                busy, a packet waits for its process's turn at every hop
client_cpu_us_per_packet        CPU time of alice's process (threads included) per packet she
                                put on her link (real and cover), during the goodput phase
goodput_bytes_per_second        user bytes bob received per second while alice sent
                                `--goodput-mib` MiB as 1 MiB messages, all at once
delivered, duplicates           distinct messages bob received, and copies beyond the first
                                (over both phases)
sent                            messages alice sent

Usage: python benchmarks/client.py [--latency-messages 60] [--goodput-mib 4] [--lambda-p 200]
                                   [--fetch-count 4] [--fetch-per-second 8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where benchmarks/directory.py
# would shadow the `directory` package.
_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))  # for proc_stats (also in multiprocessing's children)
from proc_stats import cpu_seconds, machine_idle_seconds

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import trio

from mixclient import Client, ClientConfig, Emitted
from trimix.testnet import TestnetProcesses, plan_testnet, wait_for_consensus

RATES = (200.0, 2.0, 2.0)
HOPS = 5
_TAG = struct.Struct(">Q")


class CpuWindow:
    """CPU seconds per second of groups of processes, and the machine's busy share, between
    `__init__` and `result()`."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.started = time.monotonic()
        self.idle = machine_idle_seconds()
        self.cpu = {pid: cpu_seconds(pid) for pids in groups.values() for pid in pids}

    def result(self) -> dict[str, object]:
        elapsed = time.monotonic() - self.started
        idle = machine_idle_seconds()
        cores: dict[str, float] = {}
        for name, pids in self.groups.items():
            used = 0.0
            for pid in pids:
                before, after = self.cpu[pid], cpu_seconds(pid)
                if before is None or after is None:
                    return {}
                used += after - before
            cores[name] = round(used / elapsed, 3)
        if idle is None or self.idle is None or elapsed <= 0:
            return {}
        busy = 1 - (idle - self.idle) / elapsed / (os.cpu_count() or 1)
        return {"machine_busy_latency_phase": round(busy, 3), "cores_latency_phase": cores}


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


async def receiver(config_path: Path) -> None:
    """The child: print the address, then `seq arrival_time size` per message."""
    async with Client(ClientConfig.from_toml(config_path)) as bob:
        print("address", bob.address, flush=True)
        async for message in bob.messages():
            (seq,) = _TAG.unpack_from(message.data)
            print(seq, repr(time.time()), len(message.data), flush=True)


def fast_polls(path: Path, args: argparse.Namespace) -> Path:
    """The client configuration at `path` with the poll settings under test."""
    text = path.read_text().replace(
        "[client]\n",
        f"[client]\nfetch_count = {args.fetch_count}\nfetch_per_second = {args.fetch_per_second}\n",
    )
    path.write_text(text)
    return path


async def measure(plan_dir: Path, args: argparse.Namespace) -> dict[str, object]:
    plan = plan_testnet(plan_dir, epoch_seconds=20.0, client_rates=(args.lambda_p, 2.0, 2.0))
    processes = TestnetProcesses(plan)
    bob_process = None
    try:
        processes.start_all()
        progress("testnet starting")
        await wait_for_consensus(plan, timeout=300)
        progress("consensus in force")
        first, second = plan.gateways
        bob_config = fast_polls(plan.client_config("bob", gateway=second), args)
        alice_config = ClientConfig.from_toml(
            fast_polls(plan.client_config("alice", gateway=first), args)
        )
        bob_process = subprocess.Popen(
            [sys.executable, __file__, "--receiver", str(bob_config)],
            stdout=subprocess.PIPE, text=True,
        )
        assert bob_process.stdout is not None
        arrivals: dict[int, list[tuple[float, int]]] = {}
        address_line = await trio.to_thread.run_sync(bob_process.stdout.readline)
        bob_address = address_line.split()[1]

        async def read_arrivals() -> None:
            assert bob_process is not None and bob_process.stdout is not None
            while line := await trio.to_thread.run_sync(
                bob_process.stdout.readline, abandon_on_cancel=True
            ):
                seq, at, size = line.split()
                arrivals.setdefault(int(seq), []).append((float(at), int(size)))

        emitted: list[tuple[float, Emitted]] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_arrivals)
            async with Client(
                alice_config, on_emit=lambda e: emitted.append((time.time(), e))
            ) as alice:
                await trio.sleep(2.0)
                window = CpuWindow(process_groups(processes, bob_process.pid))
                overheads = await latency_phase(alice, bob_address, arrivals, emitted, args)
                load = window.result()
                cpu, goodput, sent_count = await goodput_phase(
                    alice, bob_address, arrivals, emitted, args, len(overheads[1])
                )
            nursery.cancel_scope.cancel()
        samples, sent_latency = overheads
        delivered = len(arrivals)
        duplicates = sum(len(v) - 1 for v in arrivals.values())
        ordered = sorted(samples)
        return {
            "e2e_overhead_ms_per_hop_median": round(statistics.median(ordered), 2),
            "e2e_overhead_ms_per_hop_p90": round(ordered[int(0.9 * (len(ordered) - 1))], 2),
            "latency_samples": len(ordered),
            **load,
            "client_cpu_us_per_packet": round(cpu, 1),
            "goodput_bytes_per_second": round(goodput),
            "delivered": delivered,
            "duplicates": duplicates,
            "sent": len(sent_latency) + sent_count,
            "lambda_p": args.lambda_p,
            "fetch_count": args.fetch_count,
            "fetch_per_second": args.fetch_per_second,
        }
    finally:
        if bob_process is not None:
            bob_process.kill()
            bob_process.wait(timeout=10)
        processes.stop_all()


def process_groups(processes: TestnetProcesses, receiver: int) -> dict[str, list[int]]:
    """The pids of the measured client (this process) and the receiver, and the daemons."""
    groups: dict[str, list[int]] = {"clients": [os.getpid(), receiver]}
    plural = {"mix": "mixes", "gateway": "gateways"}
    nodes = {node.name: plural[node.role] for node in processes.plan.nodes}
    for name, process in processes.running.items():
        kind = nodes.get(name, "authorities")
        groups.setdefault(kind, []).append(process.pid)
    return groups


async def latency_phase(
    alice: Client,
    bob_address: str,
    arrivals: dict[int, list[tuple[float, int]]],
    emitted: list[tuple[float, Emitted]],
    args: argparse.Namespace,
) -> tuple[list[float], list[int]]:
    samples: list[float] = []
    sent: list[int] = []
    for seq in range(args.latency_messages):
        mark = len(emitted)
        await alice.send(bob_address, _TAG.pack(seq) + bytes(992))
        sent.append(seq)
        if seq % 10 == 0:
            progress(f"latency: message {seq}, {len(samples)} samples")
        with trio.fail_after(30):
            while seq not in arrivals:
                await trio.sleep(0.005)
        real = [(wall, e) for wall, e in emitted[mark:] if e.real]
        if len(real) != 1:
            continue  # retransmitted: the drawn delays of the copy that arrived are unknown
        wall, emission = real[0]
        arrived = arrivals[seq][0][0]
        samples.append((arrived - wall - emission.delay_ms / 1000) * 1000 / HOPS)
    return samples, sent


async def goodput_phase(
    alice: Client,
    bob_address: str,
    arrivals: dict[int, list[tuple[float, int]]],
    emitted: list[tuple[float, Emitted]],
    args: argparse.Namespace,
    first_seq: int,
) -> tuple[float, float, int]:
    first = max(first_seq, args.latency_messages) + 1
    seqs = list(range(first, first + args.goodput_mib))
    mark = len(emitted)
    cpu_start = time.process_time()
    started = time.time()
    progress("goodput: sending")
    async with trio.open_nursery() as nursery:
        for seq in seqs:
            nursery.start_soon(alice.send, bob_address, _TAG.pack(seq) + bytes((1 << 20) - 8))
    real = sum(1 for _, e in emitted[mark:] if e.real)
    progress(
        f"goodput: {len(seqs)} MiB acknowledged in {time.time() - started:.1f} s, "
        f"{len(emitted) - mark} packets ({real} real); {alice.stats}"
    )
    with trio.move_on_after(120):
        while not all(s in arrivals for s in seqs):
            await trio.sleep(0.01)
    missing = [s for s in seqs if s not in arrivals]
    if missing:
        raise RuntimeError(f"goodput: {len(missing)} messages never arrived; {alice.stats}")
    cpu = time.process_time() - cpu_start
    packets = len(emitted) - mark
    last = max(arrivals[s][0][0] for s in seqs)
    received = sum(arrivals[s][0][1] for s in seqs)
    return cpu / max(packets, 1) * 1e6, received / (last - started), len(seqs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-messages", type=int, default=60)
    parser.add_argument("--goodput-mib", type=int, default=4)
    parser.add_argument("--lambda-p", type=float, default=RATES[0],
                        help="the consensus's λ_P (the issue's goodput figure is at 200)")
    parser.add_argument("--fetch-count", type=int, default=4, help="frames per mailbox poll")
    parser.add_argument("--fetch-per-second", type=float, default=8.0,
                        help="the least mailbox frames fetched per second")
    parser.add_argument("--receiver", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver is not None:
        trio.run(receiver, args.receiver)
        return
    with tempfile.TemporaryDirectory(prefix="trimix-bench-client-") as directory:
        result = trio.run(measure, Path(directory), args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
