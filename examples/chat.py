"""A two-person terminal chat over trimix, using only the public client API.

Against a local testnet, in three terminals:

    .venv/bin/trimix testnet --dir /tmp/tn --clients 2
        (writes /tmp/tn/clients/client-1/client.toml and client-2/client.toml, one client at
        each gateway, prints their paths, and runs until Ctrl-C; wait for "consensus of epoch")
    .venv/bin/python examples/chat.py --config /tmp/tn/clients/client-1/client.toml
        (prints "your address: tmx1…"; copy it to the other terminal)
    .venv/bin/python examples/chat.py --config /tmp/tn/clients/client-2/client.toml --peer tmx1…

Type a line and press Enter to send it: "(delivered)" follows once the peer's gateway has
acknowledged it, and the peer's lines show as "peer: …". The side started without --peer
learns its peer from the first message it receives (a direct message names its sender).
A message from anyone else shows with its sender's address. Ctrl-D (end of input) quits once
what you typed is acknowledged; Ctrl-C quits at once.

`TestnetPlan.client_config(name, gateway=...)` (trimix.testnet) writes such a client.toml
for a testnet started from Python; any client.toml of a real network works the same way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import trio

from mixclient import Client, ClientConfig, ClientConfigError, ClientError


async def chat(config: ClientConfig, peer: str | None) -> None:
    async with Client(config) as client:
        print(f"your address: {client.address}", flush=True)
        known = trio.Event()
        state = {"peer": peer}
        if peer is not None:
            known.set()

        async def show_incoming() -> None:
            async for message in client.messages():
                if state["peer"] is None and message.sender is not None:
                    state["peer"] = message.sender
                    known.set()
                text = message.data.decode("utf-8", errors="replace")
                if message.sender is not None and message.sender == state["peer"]:
                    print(f"peer: {text}", flush=True)
                else:
                    print(f"{message.sender or 'anonymous'}: {text}", flush=True)

        async def send_typed() -> None:
            while True:
                line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
                if not line:
                    return
                text = line.rstrip("\n")
                if not text:
                    continue
                if not known.is_set():
                    print("(waiting for the peer's first message to learn its address)",
                          flush=True)
                    await known.wait()
                try:
                    await client.send(state["peer"], text.encode("utf-8"))
                except (ClientError, ValueError) as error:
                    print(f"(not delivered: {error})", flush=True)
                    continue
                print("(delivered)", flush=True)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(show_incoming)
            await send_typed()
            nursery.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description="A two-person chat over trimix.")
    parser.add_argument("--config", type=Path, required=True, help="the client's client.toml")
    parser.add_argument("--peer", default=None, help="the other person's address")
    args = parser.parse_args()
    try:
        config = ClientConfig.from_toml(args.config)
        trio.run(chat, config, args.peer)
    except (ClientConfigError, ClientError) as error:
        sys.exit(f"chat: {error}")
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
