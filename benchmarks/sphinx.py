"""Sphinx packet speed: one JSON line.

unwrap_us             median µs per `unwrap` of a default-geometry packet at a forwarding hop
create_us             median µs per 5-hop `create_packet`
floor_us              median µs of the unavoidable primitive calls of one such unwrap, timed as
                      one sequence on the same packets: two X25519 scalar multiplications, the
                      KDF, the header MAC, the header stream and the payload SPRP (LIONESS with
                      its key derivation)
floor_parts_us        the median of each of those calls alone
other_primitives_us   primitive calls unwrap also makes that the floor leaves out: the
                      blinding factor's ChaCha20 keystream and the replay tag's SHA-512/256
ratio                 unwrap_us / floor_us
replay_refused_us     median µs per `unwrap` of a packet its `is_replay` recognises (a set of
                      tags seen), refused with `ReplayError` right after the header MAC
replay_refused_ratio  replay_refused_us / unwrap_us
unwrap_third_key_us   median µs per `unwrap` with three `SphinxKey`s when the third matches
                      (two misses: what a packet under the least-used key costs)
create_surb_reply_us  median µs per `create_surb_reply` on a 5-hop `SURB`

unwrap, floor, replay-refused and third-key samples are taken interleaved, packet by packet,
so that the load of a shared machine weighs on them alike.

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
    NodeKeys,
    PathHop,
    Recipient,
    ReplayError,
    SphinxKey,
    create_packet,
    create_surb_reply,
    lioness,
    new_surb,
    unwrap,
)
from sphinx_packets.geometry import (
    AD_SIZE,
    GROUP_ELEMENT_SIZE,
    MAC_SIZE,
    PER_HOP_ROUTING_INFO_SIZE,
)
from sphinx_packets.primitives import (
    blinding_factor,
    derive_packet_keys,
    header_mac,
    header_stream,
    replay_tag,
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


def _time_interleaved(items: list, calls: dict[str, Callable]) -> dict[str, list[int]]:
    """Time every call on every item, the calls in turn for each item."""
    samples: dict[str, list[int]] = {name: [] for name in calls}
    clock = time.perf_counter_ns
    for item in items:
        for name, call in calls.items():
            start = clock()
            call(item)
            samples[name].append(clock() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=2000)
    count = parser.parse_args().packets

    geometry = Geometry.default()
    keys = [SphinxKey.generate(1) for _ in range(geometry.hops)]
    ids = [os.urandom(32) for _ in range(geometry.hops)]
    path = [
        PathHop(ids[i], keys[i].public_key, (NodeDelay(100),)) for i in range(geometry.hops - 1)
    ]
    path.append(PathHop(ids[-1], keys[-1].public_key, (Recipient(os.urandom(32)),)))
    payloads = [os.urandom(geometry.user_payload_size) for _ in range(count)]
    private_key = keys[0].private_key
    three_keys = NodeKeys((SphinxKey.generate(0), SphinxKey.generate(2), keys[0]))
    surbs = [new_surb(geometry, path)[0] for _ in range(min(count, 200))]

    gc.collect()
    gc.disable()
    packets: list[bytes] = []
    create_samples = _time_each(
        payloads, lambda p: packets.append(create_packet(geometry, path, p))
    )
    seen = {replay_tag(p[AD_SIZE : AD_SIZE + GROUP_ELEMENT_SIZE]) for p in packets}

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

    def refused(item: tuple) -> None:
        try:
            unwrap(geometry, private_key, item[0], is_replay=seen.__contains__)
        except ReplayError:
            return
        raise AssertionError("a replayed packet was not refused")

    timed = _time_interleaved(
        prepared,
        {
            "unwrap": lambda i: unwrap(geometry, private_key, i[0]),
            "floor": floor,
            "refused": refused,
            "third_key": lambda i: unwrap(geometry, three_keys, i[0]),
        },
    )
    parts = {
        "x25519_x2": _time_each(
            prepared,
            lambda i: (x25519(private_key, i[0][2:34]), x25519(blinding, i[0][2:34])),
        ),
        "kdf": _time_each(prepared, lambda i: derive_packet_keys(i[1].header_mac)),
        "mac": _time_each(prepared, lambda i: header_mac(i[1].header_mac, i[0][:mac_start])),
        "header_stream": _time_each(
            prepared, lambda i: header_stream(i[1], i[0][alpha_end:mac_start] + zeros)
        ),
        "payload_sprp": _time_each(
            prepared,
            lambda i: lioness.decrypt(
                lioness.lioness_key(i[1].payload_encryption), i[0][header_end:]
            ),
        ),
    }
    others = {
        "blinding_keystream": _time_each(
            prepared, lambda i: blinding_factor(i[1].blinding_factor_seed)
        ),
        "replay_tag": _time_each(prepared, lambda i: replay_tag(i[0][2:34])),
    }
    payload = payloads[0]
    surb_reply_samples = _time_each(
        surbs * max(1, count // len(surbs)), lambda s: create_surb_reply(geometry, s, payload)
    )
    gc.enable()

    unwrap_us = _median_us(timed["unwrap"])
    floor_us = _median_us(timed["floor"])
    refused_us = _median_us(timed["refused"])
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
                "other_primitives_us": {name: _median_us(s) for name, s in others.items()},
                "replay_refused_us": refused_us,
                "replay_refused_ratio": round(refused_us / unwrap_us, 3),
                "unwrap_third_key_us": _median_us(timed["third_key"]),
                "create_surb_reply_us": _median_us(surb_reply_samples),
                "targets": {
                    "unwrap_us": 120,
                    "ratio": 1.2,
                    "create_us": 1200,
                    "replay_refused_ratio": 0.5,
                },
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
