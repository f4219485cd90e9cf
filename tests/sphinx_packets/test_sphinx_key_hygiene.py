"""Key hygiene: every public type is built from known keys, and no repr, str or error text
holds any of those keys, raw, escaped, as hex or base64, whole or in part."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable

import pytest

from sphinx_packets import (
    SURB,
    Deliver,
    DeliverSurbReply,
    Forward,
    Geometry,
    NodeDelay,
    NodeKeys,
    PathHop,
    SphinxError,
    SphinxKey,
    SURBKeys,
    create_packet,
    create_surb_reply,
    decrypt_surb_payload,
    lioness,
    new_surb,
    unwrap,
    unwrap_header,
)
from sphinx_packets.commands import classify_commands
from sphinx_packets.header import verify_header
from sphinx_packets.keys import key_candidates
from sphinx_packets.primitives import derive_packet_keys, x25519
from tests.sphinx_packets.helpers import (
    SMALL_GEOMETRY,
    Node,
    forward_path,
    seeded_rng,
    walk,
)

GEOMETRY = SMALL_GEOMETRY
WINDOW = 6  # no 6-byte piece of a secret may show


def _pattern_key(seed: int, size: int) -> bytes:
    return seeded_rng(seed)(size)


PRIVATE_KEYS = [_pattern_key(100 + i, 32) for i in range(5)]
KEYS = [SphinxKey.from_private_key(7, k) for k in PRIVATE_KEYS[:3]]
NODES_IDS = [bytes([i + 1]) * 32 for i in range(3)]
NODES = [Node(NODES_IDS[i], KEYS[i]) for i in range(3)]
NODE0_KEYS = NodeKeys(
    (
        SphinxKey.from_private_key(6, PRIVATE_KEYS[3]),
        KEYS[0],
        SphinxKey.from_private_key(8, PRIVATE_KEYS[4]),
    )
)


def _forms(secret: bytes) -> set[str]:
    """Ways a secret, or a piece of it, could show up in text."""
    forms = set()
    for start in range(len(secret) - WINDOW + 1):
        piece = secret[start : start + WINDOW]
        forms.update({piece.hex(), piece.hex().upper(), repr(piece)[2:-1], piece.decode("latin-1")})
    forms.add(base64.b64encode(secret).decode()[:8])
    return forms


def _assert_clean(texts: Iterable[str], secrets: Iterable[bytes]) -> None:
    forms = set().union(*(_forms(s) for s in secrets))
    for text in texts:
        leaked = [f for f in forms if f in text]
        assert not leaked, f"a secret shows in {text[:80]!r}"


def _texts(value: object) -> list[str]:
    return [repr(value), str(value)]


def _error_texts(call: Callable[[], object], index: int) -> list[str]:
    try:
        call()
    except SphinxError as error:
        return [str(error), repr(error), *(str(a) for a in error.args)]
    raise AssertionError(f"call {index} raised no SphinxError")


@pytest.fixture(scope="module")
def built() -> dict[str, object]:
    """One of every public type, from the known keys, and every secret they hold."""
    path = [
        PathHop(NODES_IDS[0], KEYS[0].public_key, (NodeDelay(3),)),
        PathHop(NODES_IDS[1], KEYS[1].public_key, (NodeDelay(4),)),
        *forward_path([NODES[2]], b"\x33" * 32),
    ]
    payload = bytes(range(256))[: GEOMETRY.user_payload_size]
    packet = create_packet(GEOMETRY, path, payload, rng=seeded_rng(1))
    node_keys = NODE0_KEYS
    forward = unwrap(GEOMETRY, node_keys, packet)
    surb, surb_keys = new_surb(GEOMETRY, path, rng=seeded_rng(2))
    _, reply = create_surb_reply(GEOMETRY, surb, payload)
    header = unwrap_header(GEOMETRY, node_keys, packet[: GEOMETRY.header_size])
    verified = verify_header(GEOMETRY, key_candidates(node_keys), packet)
    packet_keys = derive_packet_keys(x25519(PRIVATE_KEYS[0], packet[2:34]))
    secrets = [
        *PRIVATE_KEYS,
        surb_keys.replier_key,
        *surb_keys.hop_keys,
        header.payload_key,
        packet_keys.header_mac,
        packet_keys.header_encryption,
        packet_keys.header_encryption_iv,
        packet_keys.payload_encryption,
        packet_keys.blinding_factor_seed,
        lioness.lioness_key(header.payload_key),
    ]
    return {
        "path": path,
        "packet": packet,
        "reply": reply,
        "payload": payload,
        "node_keys": node_keys,
        "surb": surb,
        "surb_keys": surb_keys,
        "values": [
            Geometry.default(),
            *KEYS,
            node_keys,
            *path,
            forward,
            walk(GEOMETRY, NODES, packet),
            walk(GEOMETRY, NODES, reply),
            surb,
            surb_keys,
            header,
            verified,
            packet_keys,
            classify_commands(header.commands),
        ],
        "secrets": secrets,
    }


def test_every_type_was_built(built: dict) -> None:
    kinds = {type(v) for v in built["values"]}
    for kind in (Forward, Deliver, DeliverSurbReply, SURB, SURBKeys, SphinxKey, NodeKeys):
        assert kind in kinds


def test_no_repr_or_str_holds_a_secret(built: dict) -> None:
    texts = [t for value in built["values"] for t in _texts(value)]
    _assert_clean(texts, built["secrets"])
    # The secrets are really in those objects: the check is not vacuous.
    assert built["surb"].replier_key in built["secrets"]
    assert repr(built["surb"]).startswith("SURB(")
    assert "<3148 bytes>" not in repr(built["values"][0])


def test_results_have_short_reprs_without_ids_or_payloads(built: dict) -> None:
    checked = 0
    for value in built["values"]:
        if isinstance(value, Forward | Deliver | DeliverSurbReply | SURB):
            assert len(repr(value)) < 160
            shown = [
                getattr(value, name)
                for name in ("next_node_id", "recipient_id", "surb_id", "replay_tag", "first_hop")
                if hasattr(value, name)
            ]
            _assert_clean(_texts(value), [*shown, built["payload"]])
            checked += 1
    assert checked == 4


def test_no_error_text_holds_a_secret(built: dict) -> None:
    packet, payload, surb, surb_keys = (
        built["packet"],
        built["payload"],
        built["surb"],
        built["surb_keys"],
    )
    private = PRIVATE_KEYS[0]
    other = KEYS[2]
    tampered = packet[:-1] + bytes([packet[-1] ^ 1])
    calls: list[Callable[[], object]] = [
        lambda: unwrap(GEOMETRY, PRIVATE_KEYS[1], packet),  # wrong key: MAC
        lambda: unwrap(GEOMETRY, NodeKeys((other,)), packet),
        lambda: unwrap(GEOMETRY, NODE0_KEYS, packet[:40] + bytes([packet[40] ^ 1]) + packet[41:]),
        lambda: unwrap(GEOMETRY, private.hex(), packet),  # type: ignore[arg-type]
        lambda: unwrap(GEOMETRY, private[:31], packet),
        lambda: unwrap(GEOMETRY, private, private),  # a key as the packet
        lambda: unwrap(GEOMETRY, private, packet, is_replay=lambda tag: True),
        lambda: SphinxKey(7, private, KEYS[1].public_key),  # mismatched pair
        lambda: SphinxKey(private, private, KEYS[0].public_key),  # type: ignore[arg-type]
        lambda: NodeKeys((KEYS[0], KEYS[1])),
        lambda: Geometry(hops=private, user_payload_size=10),  # type: ignore[arg-type]
        lambda: Geometry(hops=5, user_payload_size=10, nike=private.hex()),
        lambda: NodeDelay(private),  # type: ignore[arg-type]
        lambda: lioness.encrypt(private, payload),
        lambda: lioness.lioness_key(private),
        lambda: SURBKeys.from_bytes(surb_keys.to_bytes()[:-1]),
        lambda: SURB.from_bytes(GEOMETRY, surb.to_bytes()[:-1]),
        lambda: create_surb_reply(GEOMETRY, surb, surb_keys.replier_key),
        lambda: decrypt_surb_payload(
            GEOMETRY, surb_keys, bytes(16), packet[GEOMETRY.header_size :]
        ),
        lambda: decrypt_surb_payload(
            GEOMETRY, surb_keys, surb_keys.surb_id, tampered[GEOMETRY.header_size :]
        ),
        lambda: new_surb(GEOMETRY, [PathHop(NODES_IDS[0], private, ())]),
        lambda: PathHop(NODES_IDS[0], private + b"x", ()),
    ]
    texts = [t for i, call in enumerate(calls) for t in _error_texts(call, i)]
    _assert_clean(texts, built["secrets"])
