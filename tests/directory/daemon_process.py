"""`trimix authority run` as a real process, for the directory tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import trio

from directory.endpoints import AuthorityEndpoint


def trimix_authority(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "trimix", "authority", *arguments]


def start_daemon(
    config: Path,
    log_path: Path,
    processes: list[subprocess.Popen[bytes]],
    *,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.Popen[bytes]:
    """Start the daemon on `config`, its output appended to `log_path`; the caller's
    `processes` list (the `processes` fixture) makes sure it is ended."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            trimix_authority("run", "--config", str(config)),
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec_fn,  # noqa: PLW1509 - only resource limits, set before exec
        )
    processes.append(process)
    return process


async def wait_healthy(endpoint: AuthorityEndpoint, process: subprocess.Popen[bytes]) -> None:
    with trio.fail_after(30):
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                assert process.poll() is None, "the authority exited"
                try:
                    response = await client.get(endpoint.route("/v1/health"))
                    if response.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await trio.sleep(0.1)


def peak_memory_kib(process: subprocess.Popen[bytes]) -> int:
    """The process's peak resident set (VmHWM), in KiB."""
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc")


def authority_toml(public_key: bytes, port: int, extra: str = "") -> str:
    """A minimal authority configuration: `authority.key` and `data` beside it, listening on
    127.0.0.1:`port`, this authority pinned, then `extra` (more tables)."""
    return f"""
[authority]
key_file = "authority.key"
data_dir = "data"
listen = "127.0.0.1:{port}"

[[authorities]]
public_key = "{public_key.hex()}"
url = "http://127.0.0.1:{port}"
{extra}
"""
