"""A running testnet for a test module: start every daemon, wait for a consensus, and stop
them all at the end, checking that each exited cleanly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import trio

from trimix.testnet import (
    PlannedNode,
    TestnetPlan,
    TestnetProcesses,
    wait_for_consensus,
)


@contextmanager
def running_testnet(plan: TestnetPlan) -> Iterator[TestnetProcesses]:
    processes = TestnetProcesses(plan)
    epoch_seconds = plan.clock.length_ms / 1000
    try:
        processes.start_all()

        def progress(_listed: int, _total: int) -> None:
            assert not processes.exited(), f"daemons exited: {processes.exited()}"

        trio.run(
            lambda: wait_for_consensus(plan, timeout=12 * epoch_seconds + 30, progress=progress)
        )
        yield processes
    finally:
        codes = processes.stop_all()
    assert all(code == 0 for code in codes.values()), f"unclean exits: {codes}"


async def restart_node(processes: TestnetProcesses, node: PlannedNode) -> None:
    """Start `node` again and wait until it has a consensus in force."""
    processes.start(node.name)
    with trio.fail_after(60):
        while True:
            try:
                async with httpx.AsyncClient(timeout=2.0) as client:
                    text = (
                        await client.get(f"http://127.0.0.1:{node.metrics_port}/metrics")
                    ).text
            except httpx.HTTPError:
                text = ""
            for line in text.splitlines():
                if line.startswith("trimix_consensus_epoch ") and float(line.split()[1]) >= 1:
                    return
            await trio.sleep(0.2)
