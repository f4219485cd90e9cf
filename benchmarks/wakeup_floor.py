"""What waking up costs on this machine, without any trimix code: one JSON line.

A relay process takes 2 KiB messages from one loopback TCP connection and writes them to
another, in three forms: a plain blocking loop, a Trio task, and a Trio relay that holds each
message for an exponential delay (mean 50 ms) first, as a mix does. A load generator (this
process) sends them as a Poisson stream at `--rate` a second; a thread drains the far end.
The figure is the relay's CPU time per message, from its first connection to its end
(`time.process_time` in the relay: its start-up is left out).

At a mix's load in the local testnet (about 230 packets a second) every packet wakes its
process from idle; this is the price of those wake-ups alone, which a mix pays on top of
its cryptography (compare `benchmarks/node.py`, where a saturated mix, woken once per batch,
spends about 180 µs per packet in all).

blocking_relay_us_per_message   recv/sendall in a loop
trio_relay_us_per_message       the same under Trio
trio_delayed_relay_us_per_message  Trio, each message held for its drawn delay first

Usage: python benchmarks/wakeup_floor.py [--rate 230] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time

import trio

SIZE = 2048
MEAN_DELAY = 0.05


def blocking_relay(connection: socket.socket, out: socket.socket) -> None:
    while data := connection.recv(1 << 16):
        out.sendall(data)


async def trio_relay(connection: socket.socket, out: socket.socket, delayed: bool) -> None:
    rng = random.Random(1)
    outgoing = trio.SocketStream(trio.socket.from_stdlib_socket(out))
    send, receive = trio.open_memory_channel[bytes](100_000)
    incoming = trio.SocketStream(trio.socket.from_stdlib_socket(connection))

    async def hold(message: bytes) -> None:
        await trio.sleep(rng.expovariate(1 / MEAN_DELAY))
        send.send_nowait(message)

    async def writer() -> None:
        async for message in receive:
            await outgoing.send_all(message)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        buffer = b""
        while data := await incoming.receive_some(1 << 16):
            buffer += data
            while len(buffer) >= SIZE:
                message, buffer = buffer[:SIZE], buffer[SIZE:]
                if delayed:
                    nursery.start_soon(hold, message)
                else:
                    send.send_nowait(message)
        await trio.sleep(10 * MEAN_DELAY)  # let the held ones go
        nursery.cancel_scope.cancel()


def relay_main(mode: str, listen_port: int, sink_port: int) -> None:
    listener = socket.create_server(("127.0.0.1", listen_port))
    out = socket.create_connection(("127.0.0.1", sink_port))
    connection, _ = listener.accept()
    started = time.process_time()
    if mode == "blocking":
        blocking_relay(connection, out)
    else:
        trio.run(trio_relay, connection, out, mode == "trio_delayed")
    print(time.process_time() - started, flush=True)


def measure(mode: str, rate: float, seconds: float) -> float:
    """The relay's CPU microseconds per message."""
    sink = socket.create_server(("127.0.0.1", 0))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        relay_port = probe.getsockname()[1]
    relay = subprocess.Popen(
        [sys.executable, __file__, "--relay", mode, str(relay_port), str(sink.getsockname()[1])],
        stdout=subprocess.PIPE, text=True,
    )
    far_end, _ = sink.accept()
    received = [0]

    def drain() -> None:
        while data := far_end.recv(1 << 20):
            received[0] += len(data)

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    deadline = time.monotonic() + 10
    while True:
        try:
            source = socket.create_connection(("127.0.0.1", relay_port))
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    rng = random.Random(2)
    message = os.urandom(SIZE)
    sent = 0
    started = time.monotonic()
    next_at = started
    while next_at - started < seconds:
        next_at += rng.expovariate(rate)
        time.sleep(max(0.0, next_at - time.monotonic()))
        source.sendall(message)
        sent += 1
    source.close()
    cpu, _ = relay.communicate(timeout=30)
    drainer.join(timeout=10)
    sink.close()
    if received[0] != sent * SIZE:
        raise RuntimeError(f"{mode}: {received[0] // SIZE} of {sent} messages came through")
    return float(cpu) / sent * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=230.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--relay", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.relay:
        mode, listen_port, sink_port = args.relay
        relay_main(mode, int(listen_port), int(sink_port))
        return
    result: dict[str, object] = {"rate": args.rate, "message_bytes": SIZE}
    for mode in ("blocking", "trio", "trio_delayed"):
        result[f"{mode}_relay_us_per_message"] = round(measure(mode, args.rate, args.seconds))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
