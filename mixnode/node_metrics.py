"""A node's Prometheus metrics (prometheus-client), in a registry of the node's own.

Labels are outcomes and reasons from fixed lists, never a peer, a client, a mailbox or an
address. docs/OPERATING.md lists every metric and what to alert on.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from mixnode.packet_pipeline import DROP_REASONS

QUEUE_DROP_REASONS = (
    "cover_evicted", "cover_refused", "real_evicted", "real_refused", "link_queue_full",
    "workers_busy", "shutdown", "not_ready", "client_rate",
)


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.packets_received = Counter(
            "trimix_packets_received", "Sphinx packets received", ["link"], registry=r
        )
        self.packets_sent = Counter(
            "trimix_packets_sent", "Sphinx packets sent to the next hop", registry=r
        )
        self.packets_dropped = Counter(
            "trimix_packets_dropped", "Packets dropped, by reason", ["reason"], registry=r
        )
        self.messages_stored = Counter(
            "trimix_messages_stored", "Payloads stored in mailboxes (exit gateway)", registry=r
        )
        self.messages_refused = Counter(
            "trimix_messages_refused",
            "Payloads not stored, by reason (exit gateway)",
            ["reason"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "trimix_queue_depth", "Packets waiting for their delay", registry=r
        )
        self.lateness = Histogram(
            "trimix_scheduler_lateness_seconds",
            "How late the scheduler sent a packet after its deadline",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0),
            registry=r,
        )
        self.loops_sent = Counter("trimix_loops_sent", "Loop cover packets sent", registry=r)
        self.loops_returned = Counter(
            "trimix_loops_returned", "Loop cover packets that came back", registry=r
        )
        self.loops_missing = Counter(
            "trimix_loops_missing", "Loop cover packets overdue (n-1 alarm input)", registry=r
        )
        self.loop_missing_ratio = Gauge(
            "trimix_loop_missing_ratio",
            "Share of recent loops that did not come back; high means a possible n-1 attack",
            registry=r,
        )
        self.link_events = Counter(
            "trimix_link_events", "Link layer events, by outcome", ["outcome"], registry=r
        )
        self.control_requests = Counter(
            "trimix_gateway_requests", "Client control requests, by outcome", ["outcome"],
            registry=r,
        )
        self.surb_acks = Counter(
            "trimix_surb_acks", "SURB-ACKs answered after storing (exit gateway)", ["outcome"],
            registry=r,
        )
        self.mailboxes = Gauge("trimix_mailboxes", "Mailboxes held (gateway)", registry=r)
        self.mailbox_bytes = Gauge(
            "trimix_mailbox_payload_bytes",
            "Payload bytes held in all mailboxes (gateway; bounded by mailbox_store_max_bytes)",
            registry=r,
        )
        self.consensus_epoch = Gauge(
            "trimix_consensus_epoch", "Epoch of the consensus in force", registry=r
        )
        self.descriptor_uploads = Counter(
            "trimix_descriptor_uploads", "Descriptor uploads, by outcome", ["outcome"], registry=r
        )
        for reason in DROP_REASONS + QUEUE_DROP_REASONS:
            self.packets_dropped.labels(reason)

    def count_link_event(self, outcome: str) -> None:
        self.link_events.labels(outcome).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
