"""The exit gateway's delivery task (`NodeDaemon._store_deliveries`) when the mailbox store
fails: a real daemon object built from a generated testnet configuration (no process, no
network), its real SQLite store made to refuse writes as a failing disk would."""

from __future__ import annotations

from pathlib import Path

import trio

from directory.keyfile import read_key_file
from mixnode.gateway_protocol import Delivery, MessageKind
from mixnode.key_ring import LinkKey, read_secret_file
from mixnode.mailbox import MailboxStore
from mixnode.node_config import load_node_config
from mixnode.node_daemon import NodeDaemon
from mixnode.packet_pipeline import StoreMessage
from trimix.testnet import plan_testnet

OWNER = bytes(range(32))


def _delivery(mailbox_id: bytes, n: int) -> StoreMessage:
    return StoreMessage(mailbox_id, Delivery(MessageKind.FORWARD, bytes(16), b"mail %d" % n))


def _metric(daemon: NodeDaemon, name: str, **labels: str) -> float:
    return daemon.metrics.registry.get_sample_value(name, labels) or 0.0


def _gateway(directory: Path, limits: str = "") -> NodeDaemon:
    """A gateway's daemon object from a generated configuration, with `limits` added to its
    [limits] table."""
    path = plan_testnet(directory).gateways[0].config
    path.write_text(path.read_text().replace("[limits]\n", f"[limits]\n{limits}"))
    config = load_node_config(path)
    return NodeDaemon(
        config, read_key_file(config.identity_key_file),
        LinkKey(read_secret_file(config.link_key_file)),
    )



def _gateway_with_a_mailbox(
    directory: Path, limits: str = ""
) -> tuple[NodeDaemon, MailboxStore, bytes]:
    """`_gateway`, its mailbox store, and OWNER's mailbox there."""
    daemon = _gateway(directory, limits)
    store = daemon.mailboxes
    assert store is not None
    return daemon, store, store.register(OWNER, now=0.0)

async def test_a_failing_store_drops_the_batch_counted_and_the_gateway_goes_on(
    tmp_path: Path,
) -> None:
    daemon, store, mailbox = _gateway_with_a_mailbox(tmp_path)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(daemon._store_deliveries)
        store._db.execute("PRAGMA query_only = ON")  # the test's stand-in for a failing disk
        for n in range(3):
            daemon._deliveries_in.send_nowait(_delivery(mailbox, n))
        with trio.fail_after(10):
            while _metric(daemon, "trimix_messages_refused_total", reason="store_failed") < 3:
                await trio.sleep(0.01)
        store._db.execute("PRAGMA query_only = OFF")
        daemon._deliveries_in.send_nowait(_delivery(mailbox, 3))  # the task is still there
        with trio.fail_after(10):
            while not store.fetch(OWNER, limit=4):
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert [Delivery.from_bytes(m.payload).payload for m in store.fetch(OWNER, limit=4)] == [
        b"mail 3"
    ]
    assert _metric(daemon, "trimix_messages_stored_total") == 1
    await daemon.http.aclose()
    store.close()


async def test_the_configured_bound_on_all_mailboxes_refuses_what_passes_it(
    tmp_path: Path,
) -> None:
    daemon, store, mailbox = _gateway_with_a_mailbox(tmp_path, "mailbox_store_max_bytes = 40\n")
    assert store.limits.max_total_bytes == 40
    async with trio.open_nursery() as nursery:
        nursery.start_soon(daemon._store_deliveries)
        for n in range(3):  # 23 bytes stored each (kind, SURB id, "mail n")
            daemon._deliveries_in.send_nowait(_delivery(mailbox, n))
        with trio.fail_after(10):
            while _metric(daemon, "trimix_messages_refused_total", reason="store_full") < 2:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert len(store.fetch(OWNER, limit=4)) == 1
    assert _metric(daemon, "trimix_messages_stored_total") == 1
    await daemon.http.aclose()
    store.close()


async def test_deliveries_to_unknown_mailboxes_are_refused_without_the_store(
    tmp_path: Path,
) -> None:
    """Drop cover exits at a gateway addressed to mailboxes nobody has: the delivery task
    refuses it from memory, counted, and does not open a transaction for it. The store is
    made read-only, so any write attempted for those deliveries would count `store_failed`."""
    daemon, store, mailbox = _gateway_with_a_mailbox(tmp_path)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(daemon._store_deliveries)
        store._db.execute("PRAGMA query_only = ON")
        for n in range(50):
            daemon._deliveries_in.send_nowait(_delivery(bytes([n]) * 32, n))
        with trio.fail_after(10):
            while _metric(daemon, "trimix_messages_refused_total", reason="unknown_mailbox") < 50:
                await trio.sleep(0.01)
        assert _metric(daemon, "trimix_messages_refused_total", reason="store_failed") == 0
        store._db.execute("PRAGMA query_only = OFF")
        daemon._deliveries_in.send_nowait(_delivery(bytes(32), 50))
        daemon._deliveries_in.send_nowait(_delivery(mailbox, 51))  # a real one is stored
        with trio.fail_after(10):
            while not store.fetch(OWNER, limit=4):
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert _metric(daemon, "trimix_messages_refused_total", reason="unknown_mailbox") == 51
    assert _metric(daemon, "trimix_messages_stored_total") == 1
    await daemon.http.aclose()
    store.close()
