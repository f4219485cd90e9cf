"""`AuthorityEndpoint`: a pinned authority, as clients, nodes and other authorities know it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AuthorityEndpoint:
    """An authority's Ed25519 public key and the base URL of its HTTP API."""

    public_key: bytes
    url: str

    def route(self, path: str) -> str:
        return self.url.rstrip("/") + path
