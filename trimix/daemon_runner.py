"""What `trimix authority run` and `trimix node run` share: logging without metadata, and
running a daemon until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal
from typing import Any, Protocol

import click


class Daemon(Protocol):
    async def run(self, *, task_status: Any = ...) -> None: ...

    def stop(self) -> None: ...


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request with its URL at INFO: peer addresses stay out of the logs.
    for noisy in ("httpx", "httpcore", "hpack"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def run_until_signal(daemon: Daemon) -> None:
    """Run `daemon` until SIGTERM or SIGINT asks it to stop; a socket error (a port in use) is
    one clean line, not a traceback."""
    import trio

    try:
        trio.run(_serve_until_signal, daemon)
    except OSError as error:
        raise click.ClickException(f"cannot serve: {error.strerror or error}") from None
    except BaseExceptionGroup as group:
        socket_errors, others = group.split(OSError)
        if socket_errors is None or others is not None:
            raise
        raise click.ClickException(f"cannot serve: {_first_leaf(socket_errors)}") from None


def _first_leaf(group: BaseExceptionGroup[OSError]) -> BaseException:
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


async def _serve_until_signal(daemon: Daemon) -> None:
    import trio

    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)

            async def stop_on_signal() -> None:
                async for _ in signals:
                    daemon.stop()
                    return

            nursery.start_soon(stop_on_signal)
