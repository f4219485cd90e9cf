"""Link layer speed: one JSON line.

frame_body_size            the default geometry's Sphinx packet size (bytes per frame body)
encrypt_us / decrypt_us    median µs per frame through `LinkCore.send` / `receive_data`
                           (framing + ChaCha20-Poly1305), timed in batches of 64 frames
encrypt_decrypt_us         their sum: one link crossing costs the sender one and the receiver one
aead_encrypt_decrypt_us    the bare ChaCha20-Poly1305 encrypt + decrypt of one padded plaintext
                           (what the core calls; the rest of encrypt_decrypt_us is framing)
noiseprotocol_encrypt_decrypt_us
                           the same plaintext through noiseprotocol's own transport
                           (`NoiseConnection.encrypt` + `.decrypt`): its per-message overhead
                           over aead_encrypt_decrypt_us is what the core avoids
handshake_ms               median ms of a whole XK handshake, both sides in one process
loopback_frames_per_second frames a receiving process takes from one Noise link over 127.0.0.1
                           (sender in another process, `send_many` batches of 64)
loopback_frames_per_second_one_process
                           the same with both ends in one process and one core: each frame is
                           encrypted and decrypted on that core, like a node's in and out links

Usage: python benchmarks/link.py [--seconds S] [--frames N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import multiprocessing.connection
import os
import platform
import statistics
import struct
import time
from typing import Any

import trio
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from mixnode.link import (
    NOISE_PROTOCOL_NAME,
    Frame,
    FrameKind,
    LinkCore,
    encode_frame,
    generate_link_keypair,
    link_prologue,
    wire_frame_size,
)
from mixnode.link_driver import LinkConnection, LinkServer, open_link
from sphinx_packets import Geometry

BATCH = 64
STOP = Frame(FrameKind.CONTROL, b"stop")
HOST = "127.0.0.1"


def _pair(body_size: int) -> tuple[LinkCore, LinkCore]:
    a, b = generate_link_keypair(), generate_link_keypair()
    initiator = LinkCore.initiator(a.private, b.public, body_size)
    responder = LinkCore.responder(b.private, body_size)
    responder.start()
    responder.receive_data(initiator.start())
    initiator.receive_data(responder.data_to_send())
    responder.receive_data(initiator.data_to_send())
    return initiator, responder


def _reference_pair(body_size: int) -> tuple[Any, Any]:
    """Two `noiseprotocol` connections with the link's handshake done (the reference transport)."""
    from noise.connection import Keypair, NoiseConnection  # type: ignore[import-untyped]

    a, b = generate_link_keypair(), generate_link_keypair()
    ends = []
    for initiator in (True, False):
        end = NoiseConnection.from_name(NOISE_PROTOCOL_NAME)
        end.set_prologue(link_prologue(body_size))
        end.set_keypair_from_private_bytes(Keypair.STATIC, (a if initiator else b).private)
        if initiator:
            end.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, b.public)
            end.set_as_initiator()
        else:
            end.set_as_responder()
        end.start_handshake()
        ends.append(end)
    initiator_end, responder_end = ends
    responder_end.read_message(initiator_end.write_message())
    initiator_end.read_message(responder_end.write_message())
    responder_end.read_message(initiator_end.write_message())
    return initiator_end, responder_end


def _core_costs(body_size: int, frames: int) -> dict[str, float]:
    """Per-frame costs, the variants timed in alternating rounds so that load on a shared
    machine hits them alike; medians over the rounds."""
    sender, receiver = _pair(body_size)
    frame = Frame(FrameKind.PACKET, os.urandom(body_size))
    batch = [frame] * BATCH
    plaintext = encode_frame(frame, body_size)
    noise_sender, noise_receiver = _reference_pair(body_size)
    aead = ChaCha20Poly1305(os.urandom(32))
    nonce = struct.Struct("<4xQ")
    clock = time.perf_counter_ns
    samples: dict[str, list[float]] = {"encrypt": [], "decrypt": [], "noise": [], "aead": []}
    for round_ in range(max(1, frames // BATCH)):
        start = clock()
        data = sender.send_many(batch)
        middle = clock()
        receiver.receive_data(data)
        samples["encrypt"].append((middle - start) / BATCH)
        samples["decrypt"].append((clock() - middle) / BATCH)
        start = clock()
        for _ in range(BATCH):
            noise_receiver.decrypt(noise_sender.encrypt(plaintext))
        samples["noise"].append((clock() - start) / BATCH)
        start = clock()
        for index in range(round_ * BATCH, (round_ + 1) * BATCH):
            packed = nonce.pack(index)
            aead.decrypt(packed, aead.encrypt(packed, plaintext, None), None)
        samples["aead"].append((clock() - start) / BATCH)
    median = {name: statistics.median(values) / 1000 for name, values in samples.items()}
    handshakes = []
    for _ in range(50):
        start = clock()
        _pair(body_size)
        handshakes.append(clock() - start)
    return {
        "encrypt_us": round(median["encrypt"], 2),
        "decrypt_us": round(median["decrypt"], 2),
        "encrypt_decrypt_us": round(median["encrypt"] + median["decrypt"], 2),
        "aead_encrypt_decrypt_us": round(median["aead"], 2),
        "noiseprotocol_encrypt_decrypt_us": round(median["noise"], 2),
        "handshake_ms": round(statistics.median(handshakes) / 1e6, 3),
    }


class _Sink:
    """Counts PACKET frames from the first one until the STOP frame."""

    def __init__(self) -> None:
        self.frames = 0
        self.first = 0.0
        self.last = 0.0
        self.done = trio.Event()

    async def handle(self, connection: LinkConnection) -> None:
        async for frame in connection:
            if frame.kind is FrameKind.CONTROL:
                self.last = time.perf_counter()
                self.done.set()
                return
            if not self.frames:
                self.first = time.perf_counter()
            self.frames += 1

    def rate(self) -> float:
        return (self.frames - 1) / (self.last - self.first) if self.frames > 1 else 0.0


async def _send_for(connection: LinkConnection, body_size: int, seconds: float) -> None:
    batch = [Frame(FrameKind.PACKET, os.urandom(body_size))] * BATCH
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        await connection.send_many(batch)
    await connection.send(STOP)


async def _one_process(body_size: int, seconds: float) -> float:
    server_keys, client_keys = generate_link_keypair(), generate_link_keypair()
    sink = _Sink()
    server = LinkServer(server_keys.private, body_size, sink.handle, authorize=lambda key: True)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, HOST, 0)
        connection = await open_link(HOST, port, client_keys.private, server_keys.public, body_size)
        await _send_for(connection, body_size, seconds)
        await sink.done.wait()
        await connection.aclose()
        nursery.cancel_scope.cancel()
    return sink.rate()


def _sink_process(
    private: bytes, body_size: int, pipe: multiprocessing.connection.Connection
) -> None:
    async def main() -> None:
        sink = _Sink()
        server = LinkServer(private, body_size, sink.handle, authorize=lambda key: True)
        async with trio.open_nursery() as nursery:
            pipe.send(await nursery.start(server.serve, HOST, 0))
            await sink.done.wait()
            nursery.cancel_scope.cancel()
        pipe.send(sink.rate())

    trio.run(main)


def _two_processes(body_size: int, seconds: float) -> float:
    server_keys, client_keys = generate_link_keypair(), generate_link_keypair()
    parent_end, child_end = multiprocessing.Pipe()
    context = multiprocessing.get_context("spawn")
    child = context.Process(target=_sink_process, args=(server_keys.private, body_size, child_end))
    child.start()
    try:
        port = parent_end.recv()

        async def send() -> None:
            connection = await open_link(
                HOST, port, client_keys.private, server_keys.public, body_size
            )
            await _send_for(connection, body_size, seconds)
            await trio.sleep(0.5)  # let the sink read the tail before the socket closes
            await connection.aclose()

        trio.run(send)
        if not parent_end.poll(30):
            raise RuntimeError("the sink process did not report")
        rate: float = parent_end.recv()
        return rate
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
            child.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each loopback run")
    parser.add_argument("--frames", type=int, default=20_000, help="frames for the core timings")
    arguments = parser.parse_args()
    body_size = Geometry.default().packet_size
    figures: dict[str, object] = {
        "benchmark": "link",
        "frame_body_size": body_size,
        "wire_frame_size": wire_frame_size(body_size),
    }
    figures.update(_core_costs(body_size, arguments.frames))
    two = _two_processes(body_size, arguments.seconds)
    one = trio.run(_one_process, body_size, arguments.seconds)
    figures["loopback_frames_per_second"] = round(two)
    figures["loopback_mib_per_second"] = round(two * wire_frame_size(body_size) / 2**20, 1)
    figures["loopback_frames_per_second_one_process"] = round(one)
    figures["targets"] = {"encrypt_decrypt_us": 20}
    figures["python"] = platform.python_version()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
