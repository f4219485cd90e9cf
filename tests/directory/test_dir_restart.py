"""`trimix authority keygen` and `trimix authority run` as real processes: a restarted
authority (after SIGTERM or SIGKILL) serves what it published and rejoins the next epoch."""

from __future__ import annotations

import os
import random
import signal
import stat
import subprocess
import time
from pathlib import Path

import httpx
import trio
from daemon_process import authority_toml, start_daemon, trimix_authority, wait_healthy
from dir_helpers import GEOMETRY, free_port, make_network

from directory.endpoints import AuthorityEndpoint
from directory.epoch import EpochClock, to_ms
from directory.verify import verify_consensus

EPOCH_SECONDS = 3


def _keygen(key_file: Path) -> bytes:
    result = subprocess.run(
        trimix_authority("keygen", "--key-file", str(key_file)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    line = next(x for x in result.stdout.splitlines() if x.startswith("public_key"))
    return bytes.fromhex(line.split('"')[1])


def _open_epoch(clock: EpochClock) -> int:
    """The first epoch whose descriptor uploads are still open now, with a margin."""
    now = time.time() + 0.3
    current = clock.epoch_at(now)
    if to_ms(now) < clock.schedule(current + 1).vote_at:
        return current + 1
    return current + 2


async def _upload_and_get(
    endpoint: AuthorityEndpoint, clock: EpochClock, rng: random.Random
) -> tuple[int, bytes]:
    epoch = _open_epoch(clock)
    async with httpx.AsyncClient(timeout=5) as client:
        for node in make_network(rng, epoch, 3, 1):
            response = await client.post(endpoint.route("/v1/descriptor"), content=node.to_bytes())
            assert response.status_code == 200, response.text
        await trio.sleep(max(0.0, clock.schedule(epoch).publish_at / 1000 + 0.5 - time.time()))
        with trio.fail_after(10):
            while True:
                response = await client.get(endpoint.route(f"/v1/consensus/{epoch}"))
                if response.status_code == 200:
                    return epoch, response.content
                await trio.sleep(0.2)


async def _get(endpoint: AuthorityEndpoint, epoch: int) -> bytes:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(endpoint.route(f"/v1/consensus/{epoch}"))
    assert response.status_code == 200, response.text
    return response.content


async def test_restarted_authority_keeps_its_published_documents(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    rng = random.Random(51)
    key = _keygen(tmp_path / "authority.key")
    port = free_port()
    endpoint = AuthorityEndpoint(key, f"http://127.0.0.1:{port}")
    origin = time.time() - EPOCH_SECONDS - 0.1
    clock = EpochClock(origin_ms=round(origin * 1000), length_ms=EPOCH_SECONDS * 1000)
    config = tmp_path / "authority.toml"
    config.write_text(
        authority_toml(
            key,
            port,
            f"""
[epoch]
origin = {origin!r}
length_seconds = {EPOCH_SECONDS}

[registration]
open = true
""",
        )
    )
    log_path = tmp_path / "authority.log"

    def start() -> subprocess.Popen[bytes]:
        return start_daemon(config, log_path, processes)

    process = start()
    await wait_healthy(endpoint, process)
    first_epoch, first = await _upload_and_get(endpoint, clock, rng)
    pinned = [key]
    verify_consensus(first, pinned, first_epoch, GEOMETRY, now=time.time())

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0  # a clean exit

    process = start()
    await wait_healthy(endpoint, process)
    assert await _get(endpoint, first_epoch) == first
    second_epoch, second = await _upload_and_get(endpoint, clock, rng)
    assert second_epoch > first_epoch
    verify_consensus(second, pinned, second_epoch, GEOMETRY, now=time.time())

    process.send_signal(signal.SIGKILL)
    process.wait(timeout=15)
    process = start()
    await wait_healthy(endpoint, process)
    assert await _get(endpoint, first_epoch) == first
    assert await _get(endpoint, second_epoch) == second
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0

    log = log_path.read_text()
    assert "Traceback" not in log
    assert "127.0.0.1" not in log
    assert "consensus published" in log
    assert os.stat(tmp_path / "authority.key").st_mode & 0o077 == 0
