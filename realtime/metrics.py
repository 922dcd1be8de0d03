"""Prometheus metrics of one hub process (own registry, served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge("unidesk_ws_connections", "Open websocket connections", registry=r)
        self.messages_in = Counter(
            "unidesk_ws_messages_in", "Frames received, by type", ["type"], registry=r
        )
        self.messages_out = Counter("unidesk_ws_messages_out", "Frames sent", registry=r)
        self.state_changes = Counter(
            "unidesk_agent_state_changes", "Agent-state transitions committed, by source", ["source"], registry=r
        )
        self.errors = Counter("unidesk_errors", "Error replies and failures, by code", ["code"], registry=r)
        self.logins = Counter("unidesk_logins", "Login attempts, by outcome", ["outcome"], registry=r)
        # Read from the live store when scraped (shared by all hubs): what leaks shows here.
        self.media_links = Gauge(
            "unidesk_media_links", "Audio links between media workers open now, by kind (link, join)", ["kind"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
