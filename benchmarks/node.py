"""Mix node speed: one JSON line.

One real mix node process (`trimix node run`) forwards pre-built Sphinx packets between real
Noise links on loopback: a load generator process sends to it as fast as it takes them, and a
sink process receives what it forwards. The node's consensus is a real one, signed by three
authority keys made here and placed in its consensus cache (no authority needs to run).
Each packet is a 2-hop packet (the mix, then the sink) with a per-hop delay drawn from
Exp(mean 50 ms), unique (the replay filter would refuse a copy). The sink decrypts and counts
every frame, reading what has gathered every 2 ms rather than waking for each of the node's
writes: the node's next hop would be another machine, and here every cycle the sink spends is
taken from the node's two cores.

packets_per_second            forwarded per second by the node with `workers = 1`, over the window
packets_per_second_2_workers  the same with `workers = 2`
lateness_p99_ms               p99 of how late packets left after their deadline (workers = 1),
                              the upper bound of the histogram bucket holding the p99, with the
                              load paced at 80 % of the saturated rate (`lateness_paced_rate`);
                              `lateness_p99_ms_saturated` is the same under saturation
rss_growth_mib                the node's resident memory at the end of the window minus at its
                              start (workers = 1; main process)
replayed_refused_per_second   copies of already-seen packets refused per second
window_seconds                the length of the measured window
node_cores_used[_2_workers]   CPU seconds per second of the node (workers included) in the window
generator_and_sink_cores      the same for the load generator and the sink, which share the
                              machine's two cores with the node
machine_speedup_2_processes   what two processes doing nothing but X25519 multiplications get
                              done together, against one alone, measured here before the node
                              runs (`x25519_us_1_process` / `_2_processes`: µs per
                              multiplication in each process): the most that two crypto
                              workers could gain on this machine, before any link work

Usage: python benchmarks/node.py [--duration 60] [--warmup 5]
The packets are built first, on both cores, before anything is timed (it takes a while).
"""

from __future__ import annotations

import argparse
import json
import mmap
import multiprocessing
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))  # for proc_stats (also in multiprocessing's children)
import proc_stats

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import httpx
import trio

from directory import (
    Address,
    AuthoritySignature,
    EpochClock,
    Parameters,
    Role,
    SignedConsensus,
    SigningKey,
    compute_consensus,
    sign_descriptor,
    sign_vote,
)
from directory.keyfile import write_key_file
from directory.shared_random import Reveal, reveal_for
from mixnode.key_ring import LinkKey, SphinxKeyRing, write_secret_file
from mixnode.link import (
    KEEPALIVE_FRAME,
    Frame,
    FrameKind,
    FrameReceived,
    LinkCore,
    LinkError,
)
from mixnode.link_driver import open_link
from mixnode.loop_cover import draw_delay_ms
from sphinx_packets import Geometry, NodeDelay, PathHop, Recipient, create_packet

GEOMETRY = Geometry.default()
EPOCH_SECONDS = 1200
MEAN_DELAY_MS = 50
SINK_READ_INTERVAL = 0.002


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Network:
    """Keys, a signed consensus and the mix's data directory, all under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        now_ms = int(time.time() * 1000)
        self.clock = EpochClock(origin_ms=now_ms - 5 * EPOCH_SECONDS * 1000 - 60_000,
                                length_ms=EPOCH_SECONDS * 1000)
        self.epoch = self.clock.epoch_at(time.time())
        self.authorities = [SigningKey.generate() for _ in range(3)]
        self.mix_identity = SigningKey.generate()
        self.mix_link = LinkKey.generate()
        self.source_identity, self.sink_identity = SigningKey.generate(), SigningKey.generate()
        self.source_link, self.sink_link = LinkKey.generate(), LinkKey.generate()
        self.mix_port, self.sink_port = _free_port(), _free_port()
        self.mix_data = root / "mix"
        self.mix_data.mkdir(mode=0o700)
        write_key_file(self.mix_data / "identity.key", self.mix_identity)
        write_secret_file(self.mix_data / "link.key", self.mix_link.private_key)
        self.ring = SphinxKeyRing(self.mix_data / "sphinx-keys")
        self.ring.ensure(self.epoch, 4)
        descriptors = [
            self._descriptor(self.mix_identity, self.mix_link, Role.MIX, self.mix_port,
                             self.ring.public_keys(self.epoch)),
            self._descriptor(self.source_identity, self.source_link, Role.GATEWAY, 9,
                             tuple(os.urandom(32) for _ in range(3))),
            self._descriptor(self.sink_identity, self.sink_link, Role.GATEWAY, self.sink_port,
                             tuple(os.urandom(32) for _ in range(3))),
        ]
        parameters = Parameters.default()
        reveals = [Reveal(self.epoch, k.public_key, reveal_for(k, self.epoch))
                   for k in self.authorities]
        votes = [
            sign_vote(key, epoch=self.epoch, parameters=parameters,
                      geometry_hash=GEOMETRY.hash(), commitment=reveal.commitment(),
                      descriptors=descriptors)
            for key, reveal in zip(self.authorities, reveals, strict=True)
        ]
        self.consensus = compute_consensus(
            votes, epoch=self.epoch, authorities=[k.public_key for k in self.authorities],
            clock=self.clock, reveals=reveals,
        )
        body = self.consensus.to_bytes()
        document = SignedConsensus(
            body, tuple(AuthoritySignature(k.public_key, k.sign(body)) for k in self.authorities)
        ).to_bytes()
        cache = self.mix_data / "consensus"
        cache.mkdir()
        (cache / f"consensus-{self.epoch}.bin").write_bytes(document)

    def _descriptor(self, identity: SigningKey, link: LinkKey, role: Role, port: int,
                    sphinx_keys: tuple[bytes, ...]) -> bytes:
        return sign_descriptor(
            identity, epoch=self.epoch, name=f"bench-{role.name.lower()}-{port}", role=role,
            link_key=link.public_key, sphinx_keys=sphinx_keys,
            addresses=(Address("127.0.0.1", port),), version="0.1.0",
        )

    def mix_config(self, workers: int, metrics_port: int) -> Path:
        dead = _free_port()  # authorities that do not run: uploads fail fast, as counted
        authorities = "".join(
            f'\n[[authorities]]\npublic_key = "{k.public_key.hex()}"\n'
            f'url = "http://127.0.0.1:{dead}"\n'
            for k in self.authorities
        )
        path = self.root / f"mix-{workers}.toml"
        path.write_text(
            f'[node]\nname = "bench-mix"\nrole = "mix"\ndata_dir = "{self.mix_data}"\n'
            f'listen = "127.0.0.1:{self.mix_port}"\npublic_address = "127.0.0.1:{self.mix_port}"\n'
            f"workers = {workers}\n\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\n"
            f"[epoch]\norigin = {self.clock.origin_ms / 1000}\nlength_seconds = {EPOCH_SECONDS}\n\n"
            "[limits]\nshutdown_grace = 1.0\n"
            + authorities
        )
        return path

    def fresh_replay_state(self) -> None:
        shutil.rmtree(self.mix_data / "replay", ignore_errors=True)


# --- building packets (both cores, before anything is timed) ----------------------------

def _build_chunk(arguments: tuple[bytes, bytes, bytes, bytes, int, int, Path]) -> int:
    mix_id, mix_key, sink_id, sink_key, count, seed, path = arguments
    rng = random.Random(seed)
    recipient = bytes(32)
    payload = bytes(GEOMETRY.user_payload_size)
    with path.open("wb") as out:
        for _ in range(count):
            delay = draw_delay_ms(rng, MEAN_DELAY_MS, 20 * MEAN_DELAY_MS)
            hops = [PathHop(mix_id, mix_key, (NodeDelay(delay),)),
                    PathHop(sink_id, sink_key, (Recipient(recipient),))]
            out.write(create_packet(GEOMETRY, hops, payload))
    return count


def build_packets(network: Network, count: int, path: Path) -> None:
    consensus = network.consensus
    mix = consensus.descriptor(_id(network.mix_identity))
    sink = consensus.descriptor(_id(network.sink_identity))
    chunks = 8
    per = -(-count // chunks)
    parts = [network.root / f"packets-{i}.bin" for i in range(chunks)]
    jobs = [(mix.node_id, mix.sphinx_key(network.epoch), sink.node_id,
             sink.sphinx_key(network.epoch), per, i, parts[i]) for i in range(chunks)]
    with multiprocessing.get_context("spawn").Pool(os.cpu_count() or 2) as pool:
        pool.map(_build_chunk, jobs)
    with path.open("wb") as out:
        for part in parts:
            with part.open("rb") as piece:
                shutil.copyfileobj(piece, out)
            part.unlink()


def _id(key: SigningKey) -> bytes:
    from directory.signatures import node_id

    return node_id(key.public_key)


# --- what the machine's cores give two processes -----------------------------------------

def _x25519_loop(seconds: float) -> float:
    """µs per X25519 multiplication over `seconds` of nothing else."""
    from nacl.bindings import crypto_scalarmult

    scalar, element = os.urandom(32), crypto_scalarmult(os.urandom(32), (9).to_bytes(32, "little"))
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            crypto_scalarmult(scalar, element)
        done += 100
    return elapsed / done * 1e6


def machine_scaling(seconds: float = 3.0) -> dict[str, float]:
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(_x25519_loop, [0.2, 0.2])  # both workers started and warm
        alone = pool.apply(_x25519_loop, (seconds,))
        together = pool.map(_x25519_loop, [seconds, seconds])
    rate_alone = 1 / alone
    rate_together = sum(1 / each for each in together)
    return {
        "x25519_us_1_process": round(alone, 1),
        "x25519_us_2_processes": round(statistics.mean(together), 1),
        "machine_speedup_2_processes": round(rate_together / rate_alone, 2),
    }


# --- the generator and the sink (their own processes) ---------------------------------

async def _generate(args: argparse.Namespace) -> None:
    size = GEOMETRY.packet_size
    with open(args.packets, "rb") as file:
        packets = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    total = len(packets) // size
    first, last = args.first, min(total, args.last) if args.last else total
    link = await open_link("127.0.0.1", args.port, bytes.fromhex(args.key),
                           bytes.fromhex(args.peer), size, handshake_timeout=10)
    sent = 0
    start = trio.current_time()
    deadline = start + args.seconds
    index = first
    while trio.current_time() < deadline:
        step = 64
        if args.rate:  # paced: keep to `rate` packets per second, in 10 ms steps
            await trio.sleep_until(start + sent / args.rate)
            step = max(1, round(args.rate / 100))
        batch = [Frame(FrameKind.PACKET, packets[i * size:(i + 1) * size])
                 for i in range(index, min(index + step, last))]
        if not batch:
            if not args.cycle:
                break
            index = first
            continue
        await link.send_many(batch)
        index += len(batch)
        sent += len(batch)
    await link.aclose()
    print(json.dumps({"sent": sent}), flush=True)


def _sink(args: argparse.Namespace) -> None:
    """Accept the node's link, decrypt and count every packet frame it sends, until SIGTERM.

    Plain blocking sockets around the link's sans-I/O core, reading what has gathered every
    `SINK_READ_INTERVAL` seconds (the socket buffer holds it meanwhile): on two cores every
    CPU cycle the sink spends is taken from the node it measures, and a sink woken for each
    of the node's small writes cost about twice as much per packet (17 against 9 µs)."""
    received = 0
    allowed = bytes.fromhex(args.peer)
    key = bytes.fromhex(args.key)

    def serve(connection: socket.socket) -> None:
        nonlocal received
        connection.settimeout(10)
        core = LinkCore.responder(key, GEOMETRY.packet_size)
        core.start()
        try:
            while not core.established:
                data = connection.recv(4096)
                if not data:
                    return
                core.receive_data(data)
                if reply := core.data_to_send():
                    connection.sendall(reply)
            if core.remote_static_key != allowed:
                return
            connection.settimeout(None)  # the node may be silent between the passes
            buffer = bytearray(1 << 20)
            view = memoryview(buffer)
            last_sent = time.monotonic()
            events = core.receive_data(b"")
            while True:
                received += sum(isinstance(e, FrameReceived) and e.frame.kind is FrameKind.PACKET
                                for e in events)
                if time.monotonic() - last_sent > 10:  # the node closes a link silent for 60 s
                    connection.sendall(core.send(KEEPALIVE_FRAME))
                    last_sent = time.monotonic()
                time.sleep(SINK_READ_INTERVAL)
                size = connection.recv_into(buffer)
                if not size:
                    return
                events = core.receive_data(view[:size])
        except (OSError, LinkError):
            return
        finally:
            connection.close()

    def stop(*_: object) -> None:
        print(json.dumps({"received": received}), flush=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    with socket.create_server(("127.0.0.1", args.port)) as server:
        while True:
            connection, _ = server.accept()
            threading.Thread(target=serve, args=(connection,), daemon=True).start()


# --- measuring --------------------------------------------------------------------------

_SAMPLE = re.compile(r'^(\w+)(?:\{([^}]*)\})? ([0-9.e+-]+|NaN|\+Inf)$')


def scrape(port: int) -> dict[tuple[str, str], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    values = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            values[(match[1], match[2] or "")] = float(match[3])
    return values


def lateness_p99_ms(before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]) -> float:
    name = "trimix_scheduler_lateness_seconds_bucket"
    buckets = sorted(
        (float("inf") if le == "+Inf" else float(le), after[(n, labels)] - before.get((n, labels), 0))
        for (n, labels) in after if n == name
        for le in [labels.split('"')[1]]
    )
    total = buckets[-1][1] if buckets else 0
    for bound, count in buckets:
        if total and count >= 0.99 * total:
            return bound * 1000
    return float("nan")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children (the crypto workers)."""
    return proc_stats.cpu_seconds(pid, with_children=True) or 0.0


def _wait_for_metrics(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if process.poll() is not None:
            raise SystemExit(f"the mix node exited with {process.returncode}")
        try:
            if scrape(port).get(("trimix_consensus_epoch", ""), 0) > 0:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("the mix node did not come up")


def _helper(role: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, role, *extra], stdout=subprocess.PIPE,
                            text=True)


def run_mix(network: Network, packets: Path, workers: int, args: argparse.Namespace) -> dict[str, float]:
    network.fresh_replay_state()
    metrics_port = _free_port()
    config = network.mix_config(workers, metrics_port)
    log = (network.root / f"mix-{workers}.log").open("wb")
    mix = subprocess.Popen([sys.executable, "-m", "trimix", "node", "run", "--config", str(config),
                            "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT)
    sink = _helper("--sink", "--port", str(network.sink_port), "--key",
                   network.sink_link.private_key.hex(), "--peer", network.mix_link.public_key.hex())
    source = ("--port", str(network.mix_port), "--key", network.source_link.private_key.hex(),
              "--peer", network.mix_link.public_key.hex(), "--packets", str(packets))
    try:
        _wait_for_metrics(metrics_port, mix)
        # 1. Saturation: the generator sends as fast as the node takes packets.
        generator = _helper("--generate", *source, "--seconds", str(args.warmup + args.duration + 2))
        time.sleep(args.warmup)
        before, rss_before, start = scrape(metrics_port), rss_mib(mix.pid), time.monotonic()
        cpu_before = {name: cpu_seconds(pid) for name, pid in
                      (("node", mix.pid), ("generator", generator.pid), ("sink", sink.pid))}
        time.sleep(args.duration)
        after, rss_after, end = scrape(metrics_port), rss_mib(mix.pid), time.monotonic()
        cpu = {name: (cpu_seconds(pid) - cpu_before[name]) / (end - start) for name, pid in
               (("node", mix.pid), ("generator", generator.pid), ("sink", sink.pid))}
        used = json.loads(generator.communicate(timeout=120)[0])["sent"]
        sent = after[("trimix_packets_sent_total", "")] - before[("trimix_packets_sent_total", "")]
        result = {
            "pps": sent / (end - start),
            "lateness_p99_ms_saturated": lateness_p99_ms(before, after),
            "rss_growth_mib": rss_after - rss_before,
            "window": end - start,
            "node_cores": cpu["node"],
            "load_cores": cpu["generator"] + cpu["sink"],
        }
        if workers != 1:
            return result
        # 2. Lateness at a load the node sustains: paced at 80 % of what it just forwarded,
        #    with packets it has not seen.
        rate = 0.8 * result["pps"]
        time.sleep(2)
        paced = _helper("--generate", *source, "--first", str(used), "--rate", str(rate),
                        "--seconds", str(args.paced_seconds + 3))
        time.sleep(1.5)
        first = scrape(metrics_port)
        time.sleep(args.paced_seconds)
        second = scrape(metrics_port)
        paced.communicate(timeout=60)
        result["lateness_p99_ms"] = lateness_p99_ms(first, second)
        result["paced_rate"] = rate
        # 3. Replays: copies of the first 20,000 packets, which the node has seen.
        replayer = _helper("--generate", *source, "--last", "20000", "--cycle",
                           "--seconds", str(args.replay_seconds + 3))
        time.sleep(1.5)
        first, t0 = scrape(metrics_port), time.monotonic()
        time.sleep(args.replay_seconds)
        second, t1 = scrape(metrics_port), time.monotonic()
        replayer.communicate(timeout=60)
        key = ("trimix_packets_dropped_total", 'reason="replay"')
        result["replay_pps"] = (second[key] - first[key]) / (t1 - t0)
        return result
    finally:
        mix.send_signal(signal.SIGTERM)
        try:
            mix.wait(timeout=20)
        except subprocess.TimeoutExpired:
            mix.kill()
        sink.send_signal(signal.SIGTERM)
        sink.communicate(timeout=20)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--replay-seconds", type=float, default=5.0)
    parser.add_argument("--paced-seconds", type=float, default=20.0)
    parser.add_argument("--max-rate", type=float, default=9000.0,
                        help="packets per second to build for (the generator stops when it runs out)")
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    parser.add_argument("--packets", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--last", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--cycle", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        trio.run(_generate, args)
        return
    if args.sink:
        _sink(args)
        return

    root = Path(tempfile.mkdtemp(prefix="trimix-bench-node-"))
    try:
        network = Network(root)
        count = int(args.max_rate * (args.duration + args.warmup + 2 + 0.8 * (args.paced_seconds + 3)))
        packets = root / "packets.bin"
        built = time.monotonic()
        build_packets(network, count, packets)
        build_seconds = time.monotonic() - built
        scaling = machine_scaling()
        one = run_mix(network, packets, 1, args)
        two = run_mix(network, packets, 2, args)
        print(json.dumps({
            "packets_per_second": round(one["pps"]),
            "packets_per_second_2_workers": round(two["pps"]),
            "speedup_2_workers": round(two["pps"] / one["pps"], 2),
            "lateness_p99_ms": one["lateness_p99_ms"],
            "lateness_paced_rate": round(one["paced_rate"]),
            "lateness_p99_ms_saturated": one["lateness_p99_ms_saturated"],
            "lateness_p99_ms_saturated_2_workers": two["lateness_p99_ms_saturated"],
            "rss_growth_mib": round(one["rss_growth_mib"], 1),
            "node_cores_used": round(one["node_cores"], 2),
            "node_cores_used_2_workers": round(two["node_cores"], 2),
            "generator_and_sink_cores": round(one["load_cores"], 2),
            "generator_and_sink_cores_2_workers": round(two["load_cores"], 2),
            "replayed_refused_per_second": round(one["replay_pps"]),
            "window_seconds": round(one["window"], 1),
            "packets_built": count,
            "build_seconds": round(build_seconds, 1),
            "cpus": os.cpu_count(),
            **scaling,
        }))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
