"""A client in its own process, for the tests that SIGKILL one mid-send.

    python -m tests.mixclient.client_process send CONFIG ADDRESS SIZE SEED
        prints "address <addr>", then "sending" just before `send`, then "acked" after it
    python -m tests.mixclient.client_process drain CONFIG
        reopens the state directory, prints "outbox <n>", waits until every message accepted
        before is acknowledged, prints "drained" and exits 0
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import trio

from mixclient import Client, ClientConfig


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


async def main(argv: list[str]) -> None:
    mode, config_path = argv[0], Path(argv[1])
    config = ClientConfig.from_toml(config_path)
    async with Client(config) as client:
        print("address", client.address, flush=True)
        if mode == "send":
            address, size, seed = argv[2], int(argv[3]), int(argv[4])
            print("sending", flush=True)
            await client.send(address, payload(size, seed))
            print("acked", flush=True)
        else:
            print("outbox", client.outbox_size, flush=True)
            with trio.fail_after(120):
                while client.outbox_size:
                    await trio.sleep(0.2)
            print("drained", flush=True)


if __name__ == "__main__":
    trio.run(main, sys.argv[1:])
