"""Sphinx packet speed: one JSON line.

unwrap_us        median µs per `unwrap` of a default-geometry packet at a forwarding hop
create_us        median µs per 5-hop `create_packet`
floor_us         median µs of the unavoidable primitive calls of one such unwrap, timed as
                 one sequence on the same packets: two X25519 scalar multiplications, the
                 KDF, the header MAC, the header stream and the payload SPRP (LIONESS with
                 its key derivation)
floor_parts_us   the median of each of those calls alone
ratio            unwrap_us / floor_us

Usage: python benchmarks/sphinx.py [--packets N]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

from sphinx_packets import (
    Geometry,
    NodeDelay,
    PathHop,
    Recipient,
    create_packet,
    lioness,
    unwrap,
)
from sphinx_packets.geometry import (
    AD_SIZE,
    GROUP_ELEMENT_SIZE,
    MAC_SIZE,
    PER_HOP_ROUTING_INFO_SIZE,
)
from sphinx_packets.primitives import (
    derive_packet_keys,
    generate_keypair,
    header_mac,
    header_stream,
    x25519,
)


def _median_us(samples: list[int]) -> float:
    return round(statistics.median(samples) / 1000, 2)


def _time_each(items: list, call: Callable) -> list[int]:
    samples = []
    clock = time.perf_counter_ns
    for item in items:
        start = clock()
        call(item)
        samples.append(clock() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=2000)
    count = parser.parse_args().packets

    geometry = Geometry.default()
    keys = [generate_keypair(os.urandom) for _ in range(geometry.hops)]
    ids = [os.urandom(32) for _ in range(geometry.hops)]
    path = [PathHop(ids[i], keys[i][1], (NodeDelay(100),)) for i in range(geometry.hops - 1)]
    path.append(PathHop(ids[-1], keys[-1][1], (Recipient(os.urandom(32)),)))
    payloads = [os.urandom(geometry.user_payload_size) for _ in range(count)]
    private_key = keys[0][0]

    gc.collect()
    gc.disable()
    packets: list[bytes] = []
    create_samples = _time_each(payloads, lambda p: packets.append(create_packet(geometry, path, p)))
    unwrap_samples = _time_each(packets, lambda p: unwrap(geometry, private_key, p))

    header_end = geometry.header_size
    mac_start = header_end - MAC_SIZE
    alpha_end = AD_SIZE + GROUP_ELEMENT_SIZE
    zeros = bytes(PER_HOP_ROUTING_INFO_SIZE)
    prepared = []
    for packet in packets:
        k = derive_packet_keys(x25519(private_key, packet[AD_SIZE:alpha_end]))
        prepared.append((packet, k))
    blinding = os.urandom(32)

    def floor(item: tuple) -> None:
        packet, _ = item
        alpha = packet[AD_SIZE:alpha_end]
        k = derive_packet_keys(x25519(private_key, alpha))
        header_mac(k.header_mac, packet[:mac_start])
        header_stream(k, packet[alpha_end:mac_start] + zeros)
        x25519(blinding, alpha)
        lioness.decrypt(lioness.lioness_key(k.payload_encryption), packet[header_end:])

    floor_samples = _time_each(prepared, floor)
    parts = {
        "x25519_x2": _time_each(prepared, lambda i: (x25519(private_key, i[0][2:34]), x25519(blinding, i[0][2:34]))),
        "kdf": _time_each(prepared, lambda i: derive_packet_keys(i[1].header_mac)),
        "mac": _time_each(prepared, lambda i: header_mac(i[1].header_mac, i[0][:mac_start])),
        "header_stream": _time_each(prepared, lambda i: header_stream(i[1], i[0][alpha_end:mac_start] + zeros)),
        "payload_sprp": _time_each(
            prepared,
            lambda i: lioness.decrypt(lioness.lioness_key(i[1].payload_encryption), i[0][header_end:]),
        ),
    }
    gc.enable()

    unwrap_us = _median_us(unwrap_samples)
    floor_us = _median_us(floor_samples)
    print(
        json.dumps(
            {
                "benchmark": "sphinx",
                "packets": count,
                "packet_size": geometry.packet_size,
                "user_payload_size": geometry.user_payload_size,
                "unwrap_us": unwrap_us,
                "create_us": _median_us(create_samples),
                "floor_us": floor_us,
                "ratio": round(unwrap_us / floor_us, 3),
                "floor_parts_us": {name: _median_us(s) for name, s in parts.items()},
                "targets": {"unwrap_us": 120, "ratio": 1.3, "create_us": 1200},
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
