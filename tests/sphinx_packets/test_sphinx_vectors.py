"""The published vectors: Katzenpost NIKE-Sphinx headers, KDF, routing commands; LIONESS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sphinx_packets import Geometry, lioness, unwrap_header
from sphinx_packets.commands import (
    NextNodeHop,
    NodeDelay,
    Recipient,
    SurbReply,
    decode_commands,
    encode_commands,
)
from sphinx_packets.primitives import derive_packet_keys
from tests.conftest import VECTORS_DIR

# The geometry the Katzenpost vectors were made with: 5 hops, 103-byte forward payload.
KATZENPOST_GEOMETRY = Geometry(hops=5, user_payload_size=103)


def _load(*parts: str) -> Any:
    return json.loads(Path(VECTORS_DIR, *parts).read_text())


def _sphinx_cases() -> list[Any]:
    if not (VECTORS_DIR / "katzenpost" / "sphinx_vectors.json").exists():
        return [pytest.param(None, id="vectors-missing")]
    entries = _load("katzenpost", "sphinx_vectors.json")
    return [
        pytest.param(e, id=f"{len(e['Nodes'])}hops-{'surb' if e['Surb'] else 'forward'}")
        for e in entries
    ]


def test_katzenpost_geometry_sizes(vectors_dir: Path) -> None:
    assert KATZENPOST_GEOMETRY.header_size == 476
    assert KATZENPOST_GEOMETRY.packet_size == 611
    for entry in _load("katzenpost", "sphinx_vectors.json"):
        assert all(len(p) // 2 == 611 for p in entry["Packets"][:-1])


@pytest.mark.parametrize("entry", _sphinx_cases())
def test_header_transforms_match_vectors(vectors_dir: Path, entry: Any) -> None:
    assert entry is not None, "sphinx_vectors.json is missing"
    size = KATZENPOST_GEOMETRY.header_size
    hops = len(entry["Nodes"])
    for i in range(hops):
        private_key = bytes.fromhex(entry["Nodes"][i]["PrivateKey"])
        packet = bytes.fromhex(entry["Packets"][i])
        result = unwrap_header(KATZENPOST_GEOMETRY, private_key, packet[:size])
        own = [bytes.fromhex(c) for c in entry["Path"][i]["Commands"]]
        got = [c.to_bytes() for c in result.commands]
        if i < hops - 1:
            next_id = bytes.fromhex(entry["Path"][i + 1]["ID"])
            assert got[:-1] == own
            assert isinstance(result.commands[-1], NextNodeHop)
            assert result.commands[-1].node_id == next_id
            assert result.next_header == bytes.fromhex(entry["Packets"][i + 1])[:size]
        else:
            assert got == own
            assert result.next_header is None


def test_kdf_vectors(vectors_dir: Path) -> None:
    data = _load("katzenpost", "kdf_sphinx.json")
    assert data["vectors"]
    for vector in data["vectors"]:
        keys = derive_packet_keys(bytes.fromhex(vector["ikm_hex"]))
        assert keys.header_mac.hex() == vector["header_mac_hex"]
        assert keys.header_encryption.hex() == vector["header_encryption_hex"]
        assert keys.header_encryption_iv.hex() == vector["header_encryption_iv_hex"]
        assert keys.payload_encryption.hex() == vector["payload_encryption_hex"]
        assert keys.blinding_factor_seed.hex() == vector["blinding_factor_seed_hex"]


def test_routing_command_vectors(vectors_dir: Path) -> None:
    v = _load("katzenpost", "sphinx_commands_vectors.json")
    cases = [
        (NextNodeHop(bytes.fromhex(v["NextHopID"]), bytes.fromhex(v["NextHopMAC"])), "NextHopCmdWant"),
        (Recipient(bytes.fromhex(v["RecipientID"])), "RecipientCmdWant"),
        (SurbReply(bytes.fromhex(v["SURBReplyID"])), "SURBReplyCmdWant"),
        (NodeDelay(v["NodeDelay"]), "NodeDelayCmdWant"),
    ]
    for command, key in cases:
        wanted = bytes.fromhex(v[key])
        assert command.to_bytes() == wanted
        assert decode_commands(encode_commands([command], 82)) == (command,)


def test_lioness_vectors(vectors_dir: Path) -> None:
    data = _load("lioness.json")
    assert data["vectors"]
    for vector in data["vectors"]:
        key = bytes.fromhex(vector["key_hex"])
        plaintext = bytes.fromhex(vector["plaintext_hex"])
        ciphertext = bytes.fromhex(vector["ciphertext_hex"])
        assert lioness.encrypt(key, plaintext) == ciphertext
        assert lioness.decrypt(key, ciphertext) == plaintext
