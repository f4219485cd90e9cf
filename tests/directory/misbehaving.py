"""Misbehaving HTTP peers on loopback for the directory tests: raw Trio TCP servers that
answer every request the same bad way, and count what they sent."""

from __future__ import annotations

from dataclasses import dataclass

import trio


@dataclass
class Misbehaving:
    """`slow`: a 200 head, then the body one byte every `interval` seconds.
    `huge`: a 200 head with no length, then zeros as fast as the peer reads them."""

    mode: str
    interval: float = 0.2
    sent: int = 0
    """Body bytes sent so far, over all connections."""

    async def serve(
        self, port: int, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            try:
                with trio.move_on_after(60):
                    await stream.receive_some(65536)  # the request head (and maybe more)
                    if self.mode == "slow":
                        await stream.send_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 60\r\n\r\n"
                        )
                        while True:
                            await stream.send_all(b"\x00")
                            self.sent += 1
                            await trio.sleep(self.interval)
                    else:
                        await stream.send_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
                        chunk = bytes(65536)
                        while True:
                            await stream.send_all(chunk)
                            self.sent += len(chunk)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
