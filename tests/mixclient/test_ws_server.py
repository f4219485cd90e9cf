"""The WebSocket server in this process, in front of a REAL Client on a real testnet (3
authority and 8 node processes on 127.0.0.1), with real sockets: every request in msgpack,
events to every app in its own form, bad input of each kind, the limits (connections, TCP
streams, handshake deadline, requests in flight, frame size), misbehaving peers (garbage
instead of HTTP, a silent socket, an app that never reads, an app leaving mid-send), and
messages waiting durably in the client while no app is connected, and until an app
acknowledges them.

(The same protocol in JSON, through a `trimix client run` process and the JavaScript
example, is in tests/trimix/test_client_apps.py.)
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgpack
import pytest
import trio
import wsproto
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    WebSocketConnection,
    open_websocket_url,
)
from wsproto.events import AcceptConnection, Request, TextMessage

from mixclient import Client, ClientConfig
from mixclient.client_state import ClientState, StateLimits
from mixclient.ws_access import ApiToken
from mixclient.ws_protocol import MAX_REQUEST_BYTES
from mixclient.ws_server import ClientWebSocketServer
from trimix.testnet import TestnetPlan, TestnetProcesses, plan_testnet

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")



def config_of(plan: TestnetPlan, name: str, gateway: int) -> ClientConfig:
    return ClientConfig.from_toml(plan.client_config(name, gateway=plan.gateways[gateway]))


@asynccontextmanager
async def serving(client: Client, **limits: Any) -> AsyncIterator[str]:
    """The server in front of `client` on 127.0.0.1, with a fresh token: its ws:// URL with
    the token in it; stopped after."""
    token = ApiToken.generate()
    server = ClientWebSocketServer(client, token, **limits)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve, listeners)
        yield f"ws://127.0.0.1:{port}/?token={token.value}"
        nursery.cancel_scope.cancel()


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


@asynccontextmanager
async def app_and_peer(
    plan: TestnetPlan, tag: str
) -> AsyncIterator[tuple[Client, Client]]:
    """The daemon's client at gateway-1 and a library client at gateway-2, fresh states."""
    async with (
        Client(config_of(plan, f"{tag}-app", 0)) as app,
        Client(config_of(plan, f"{tag}-peer", 1)) as peer,
    ):
        yield app, peer


async def request(ws: WebSocketConnection, body: dict[str, Any], *, binary: bool) -> None:
    """One request in msgpack, or in JSON with bytes `data` in base64."""
    if binary:
        await ws.send_message(msgpack.packb(body, use_bin_type=True))
    else:
        if isinstance(body.get("data"), bytes):
            body = {**body, "data": base64.b64encode(body["data"]).decode("ascii")}
        await ws.send_message(json.dumps(body))


async def event(ws: WebSocketConnection, timeout: float = 60) -> tuple[dict[str, Any], bool]:
    """The next event and whether it came in msgpack; JSON `data` decoded from base64."""
    with trio.fail_after(timeout):
        message = await ws.get_message()
    if isinstance(message, bytes):
        return dict(msgpack.unpackb(message, raw=False)), True
    decoded = json.loads(message)
    if isinstance(decoded.get("data"), str):
        decoded["data"] = base64.b64decode(decoded["data"], validate=True)
    return decoded, False


async def test_every_request_in_msgpack_and_received_events_to_every_app(
    apps_testnet: tuple[TestnetPlan, TestnetProcesses],
) -> None:
    plan, _ = apps_testnet
    async with (
        app_and_peer(plan, "msgpack") as (app, peer),
        aclosing(peer.messages()) as inbox,
        serving(app) as url,
        open_websocket_url(url) as ws,
        open_websocket_url(url) as watcher,
    ):
        await request(ws, {"type": "self_address", "id": 1}, binary=True)
        assert await event(ws) == ({"type": "self_address", "id": 1,
                                    "address": app.address}, True)
        await request(watcher, {"type": "self_address", "id": "w"}, binary=False)
        assert (await event(watcher))[0]["address"] == app.address

        await request(ws, {"type": "send", "id": 2, "to": peer.address, "data": b"\x00d"},
                      binary=True)
        assert await event(ws) == ({"type": "sent", "id": 2}, True)
        got = await anext(inbox)
        assert (got.data, got.sender) == (b"\x00d", app.address)

        await request(ws, {"type": "send_anonymous", "id": 3, "to": peer.address,
                           "data": b"anon", "reply_surbs": 2}, binary=True)
        assert await event(ws) == ({"type": "sent", "id": 3}, True)
        anonymous = await anext(inbox)
        assert anonymous.sender is None and peer.reply_surbs_left(anonymous.conversation) == 2
        await anonymous.reply(b"\xffreply")
        # Both apps get it, each in the form of its last request.
        for socket, binary in ((ws, True), (watcher, False)):
            received, form = await event(socket)
            assert form is binary
            assert received == {"type": "received", "message_id": received["message_id"],
                                "kind": "reply", "sender": None,
                                "conversation": received["conversation"],
                                "data": b"\xffreply"}
        # Either app's acknowledgement takes it out of the client, once.
        await request(watcher, {"type": "ack", "id": "a1", "message_id": received["message_id"]},
                      binary=False)
        assert await event(watcher) == ({"type": "acked", "id": "a1", "known": True}, False)
        await request(ws, {"type": "ack", "id": 6, "message_id": received["message_id"]},
                      binary=True)
        assert await event(ws) == ({"type": "acked", "id": 6, "known": False}, True)

        await peer.send_anonymous(app.address, b"question", reply_surbs=1)
        received, _ = await event(ws)
        assert received["kind"] == "anonymous" and received["sender"] is None
        assert (await event(watcher))[0]["data"] == b"question"
        await request(ws, {"type": "reply", "id": 4, "conversation": received["conversation"],
                           "data": b"answer"}, binary=True)
        assert await event(ws) == ({"type": "sent", "id": 4}, True)
        assert (await anext(inbox)).data == b"answer"
        # The one SURB is spent: a second reply is refused at once, with its id.
        await request(ws, {"type": "reply", "id": 5, "conversation": received["conversation"],
                           "data": b"more"}, binary=True)
        refused, _ = await event(ws)
        assert (refused["id"], refused["code"]) == (5, "no_reply_surbs")


async def test_bad_input_gets_an_error_and_the_connection_stays_up(
    apps_testnet: tuple[TestnetPlan, TestnetProcesses],
) -> None:
    plan, _ = apps_testnet
    secret = b"payload-never-echoed"
    cap = MAX_REQUEST_BYTES + 512 * 1024
    async with (
        Client(config_of(plan, "bad-app", 0)) as app,
        serving(app, transport_cap=cap) as url,
    ):
        async with open_websocket_url(url, max_message_size=cap) as ws:
            cases: list[tuple[str | bytes, str, object]] = [
                (b"\xc1", "malformed", None),
                (msgpack.packb([1, 2]), "malformed", None),
                ("{\"type\": \"send\"", "malformed", None),
                (msgpack.packb({"type": "teleport", "id": 7}), "unknown_type", 7),
                (json.dumps({"type": "teleport", "id": "t"}), "unknown_type", "t"),
                (msgpack.packb({"type": "send", "id": 8, "to": app.address,
                                "data": secret.decode()}), "bad_request", 8),
                (msgpack.packb({"type": "send", "id": 9, "data": secret}, use_bin_type=True),
                 "bad_request", 9),
                (msgpack.packb({"type": "send", "id": 10, "to": "tmx1" + "q" * 60,
                                "data": secret}, use_bin_type=True), "bad_address", 10),
                (msgpack.packb({"type": "send_anonymous", "id": 11, "to": app.address,
                                "data": secret, "reply_surbs": -1}, use_bin_type=True),
                 "bad_request", 11),
                (bytes(MAX_REQUEST_BYTES + 1), "too_large", None),
            ]
            for message, code, request_id in cases:
                await ws.send_message(message)
                answer, _ = await event(ws)
                assert (answer["type"], answer["code"], answer["id"]) == \
                    ("error", code, request_id), answer
                assert answer["message"] and secret.decode() not in answer["message"]
            await request(ws, {"type": "self_address", "id": "up"}, binary=False)
            assert (await event(ws))[0]["address"] == app.address

            # Over the transport cap the library closes the connection (1009) unread...
            await ws.send_message(bytes(cap + 1))
            with pytest.raises(ConnectionClosed) as closed:
                await event(ws)
            assert closed.value.reason.code == 1009
        # ...and the server goes on.
        async with open_websocket_url(url) as ws:
            await request(ws, {"type": "self_address", "id": "again"}, binary=True)
            assert (await event(ws))[0]["address"] == app.address


async def test_limits_on_connections_streams_handshakes_and_requests_in_flight(
    apps_testnet: tuple[TestnetPlan, TestnetProcesses],
) -> None:
    plan, _ = apps_testnet
    limits = {"max_connections": 1, "max_streams": 2, "max_in_flight": 1,
              "handshake_timeout": 2.0}
    async with app_and_peer(plan, "limits") as (app, peer), serving(app, **limits) as url:
        port = port_of(url)
        async with open_websocket_url(url) as ws:
            # Garbage instead of an HTTP request: the socket is closed, nothing else.
            garbage = await trio.open_tcp_stream("127.0.0.1", port)
            await garbage.send_all(b"\x16\x03\x01 not http at all\r\n\r\n")
            assert await read_to_end(garbage, 15) is not None
            await garbage.aclose()

            # The second app is refused (503) only after the silent socket that holds
            # the last TCP slot is dropped at the handshake deadline.
            order: list[str] = []
            silent = await trio.open_tcp_stream("127.0.0.1", port)

            async def second_app() -> None:
                with pytest.raises(ConnectionRejected) as rejected:
                    async with open_websocket_url(url):
                        pass
                assert rejected.value.status_code == 503
                order.append("second app refused")

            with trio.fail_after(30):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(second_app)
                    await trio.sleep(0.5)
                    assert await read_to_end(silent, 30) == b""
                    order.append("silent socket closed")
            await silent.aclose()
            assert order == ["silent socket closed", "second app refused"]

            # One request in flight: the next is `busy`, the first still completes.
            await request(ws, {"type": "send", "id": 1, "to": peer.address, "data": b"a"},
                          binary=True)
            await request(ws, {"type": "send", "id": 2, "to": peer.address, "data": b"b"},
                          binary=True)
            answers = [(await event(ws))[0] for _ in range(2)]
            assert {"type": "sent", "id": 1} in answers
            assert [a["code"] for a in answers if a["type"] == "error"] == ["busy"]
            assert [a["id"] for a in answers if a["type"] == "error"] == [2]


async def test_only_an_app_with_the_token_and_no_foreign_origin_gets_in(
    apps_testnet: tuple[TestnetPlan, TestnetProcesses],
) -> None:
    """What a local process without the token, or a web page in the user's browser, gets
    from the daemon: an HTTP refusal naming nothing, never an address or a message."""
    plan, _ = apps_testnet
    token = ApiToken.generate()
    wrong = ApiToken.generate().value
    trusted = "http://localhost:3000"
    async with Client(config_of(plan, "guarded-app", 0)) as app:
        server = ClientWebSocketServer(app, token, allowed_origins=frozenset({trusted}))
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        base = f"ws://127.0.0.1:{listeners[0].socket.getsockname()[1]}/"
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, listeners)
            refused = [
                (base, [], 401),
                (f"{base}?token={wrong}", [], 401),
                (f"{base}?token={token.value}&token={wrong}", [], 401),
                (base, [(b"Authorization", f"Bearer {wrong}".encode())], 401),
                (base, [(b"Authorization", f"Basic {token.value}".encode())], 401),
                # A page of another origin, even one that somehow had the token (and a
                # DNS-rebinding page, whose origin is its own name, not the loopback's).
                (f"{base}?token={token.value}", [(b"Origin", b"https://evil.example")], 403),
                (f"{base}?token={token.value}", [(b"Origin", b"http://127.0.0.1:8765")], 403),
                (base, [(b"Origin", trusted.encode())], 401),
            ]
            for url, headers, status in refused:
                with pytest.raises(ConnectionRejected) as rejected:
                    async with open_websocket_url(url, extra_headers=headers):
                        pass
                assert rejected.value.status_code == status, (url, headers)
                body = rejected.value.body or b""
                assert token.value.encode() not in body and app.address.encode() not in body
            assert server.refused == len(refused)

            admitted = [
                (f"{base}?token={token.value}", []),
                (base, [(b"Authorization", f"Bearer {token.value}".encode())]),
                (f"{base}?token={token.value}", [(b"Origin", trusted.encode())]),
            ]
            for n, (url, headers) in enumerate(admitted):
                async with open_websocket_url(url, extra_headers=headers) as ws:
                    await request(ws, {"type": "self_address", "id": n}, binary=False)
                    assert (await event(ws))[0] == {
                        "type": "self_address", "id": n, "address": app.address
                    }
            assert server.refused == len(refused)
            nursery.cancel_scope.cancel()


async def test_an_app_that_never_reads_is_dropped_and_holds_up_no_other(
    apps_testnet: tuple[TestnetPlan, TestnetProcesses],
) -> None:
    plan, _ = apps_testnet
    async with (
        Client(config_of(plan, "stuck-app", 0)) as app,
        serving(app, send_timeout=1.0, handshake_timeout=2.0) as url,
    ):
        stuck = await websocket_by_hand(url)  # sends requests, never reads an answer
        sent_frames = 0
        broken = trio.Event()

        async def flood() -> None:
            nonlocal sent_frames
            data = stuck.connection.send(TextMessage(
                data=json.dumps({"type": "self_address", "id": "x" * 60})))
            try:
                for _ in range(200_000):
                    await stuck.stream.send_all(data)
                    sent_frames += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                broken.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(flood)
            async with open_websocket_url(url) as ws:
                # While the stuck app's events pile up, another app is answered.
                for n in range(3):
                    await request(ws, {"type": "self_address", "id": n}, binary=False)
                    assert (await event(ws, timeout=30))[0]["id"] == n
                with trio.fail_after(60):
                    await broken.wait()  # the server dropped the stuck app
                await request(ws, {"type": "self_address", "id": "after"}, binary=True)
                assert (await event(ws, timeout=30))[0]["id"] == "after"
        assert sent_frames < 200_000
        await stuck.stream.aclose()


async def test_an_app_leaving_mid_send_and_messages_waiting_while_no_app_is_connected(
    apps_testnet: tuple[TestnetPlan, TestnetProcesses],
) -> None:
    plan, _ = apps_testnet
    app_config = config_of(plan, "waiting-app", 0)
    async with Client(app_config) as app, Client(config_of(plan, "waiting-peer", 1)) as peer:
        async with aclosing(peer.messages()) as inbox, serving(app) as url:
            # The app leaves before `sent`: the send is cancelled, the delivery is not.
            async with open_websocket_url(url) as ws:
                await request(ws, {"type": "send", "id": 1, "to": peer.address,
                                   "data": b"left early"}, binary=False)
                with trio.fail_after(30):
                    while app.outbox_size == 0:  # accepted: in the client's outbox
                        await trio.sleep(0.01)
            with trio.fail_after(60):
                assert (await anext(inbox)).data == b"left early"

            # No app: a message stays in the client's durable inbox, untaken...
            await peer.send(app.address, b"first")
            assert await in_inbox(app_config, count=1)
            await trio.sleep(1.0)
            assert await in_inbox(app_config, count=1, timeout=0)
            # ...until an app connects; and there until an app acknowledges it. An app that
            # goes without acknowledging gets it again when it comes back.
            async with open_websocket_url(url) as ws:
                received, _ = await event(ws)
                assert (received["data"], received["sender"]) == (b"first", peer.address)
            assert await in_inbox(app_config, count=1, timeout=0)
            async with open_websocket_url(url) as ws:
                again, _ = await event(ws)
                assert again == received
                await request(ws, {"type": "ack", "id": 1, "message_id": again["message_id"]},
                              binary=False)
                assert (await event(ws))[0] == {"type": "acked", "id": 1, "known": True}
                assert await in_inbox(app_config, count=0)
            # The last app has gone again; this one waits through the server's end.
            await peer.send(app.address, b"second")
            assert await in_inbox(app_config, count=1)
        # The library alike: without auto_ack a message is handed out again by the next
        # messages() until acknowledged; by default it is handed out once.
        async with aclosing(app.messages(auto_ack=False)) as app_inbox:
            with trio.fail_after(10):
                second = await anext(app_inbox)
            assert second.data == b"second" and len(second.message_id) == 32
        async with aclosing(app.messages(auto_ack=False)) as app_inbox:
            with trio.fail_after(10):
                again = await anext(app_inbox)
            assert (again.data, again.message_id) == (b"second", second.message_id)
            assert await again.ack() is True
            assert await again.ack() is False
        with pytest.raises(ValueError, match="hex digits"):
            await app.ack("not an id")
        await peer.send(app.address, b"third")
        async with aclosing(app.messages()) as app_inbox:
            with trio.fail_after(60):
                third = await anext(app_inbox)
            assert third.data == b"third"
            assert await third.ack() is False  # auto_ack: gone already


async def test_a_full_inbox_loses_nothing_and_takes_more_as_messages_are_acknowledged(
    apps_testnet: tuple[TestnetPlan, TestnetProcesses],
) -> None:
    plan, _ = apps_testnet
    one = StateLimits(max_inbox_messages=1)
    async with (
        Client(config_of(plan, "full-app", 0), state_limits=one) as app,
        Client(config_of(plan, "full-peer", 1)) as peer,
    ):
        sent = [f"message {n}".encode() for n in range(3)]
        for data in sent:  # acknowledged by app's gateway: stored there
            await peer.send(app.address, data)
        received = []
        async with aclosing(app.messages(auto_ack=False)) as inbox:
            with trio.fail_after(120):
                while len(received) < len(sent):
                    message = await anext(inbox)
                    received.append(message.data)
                    # The inbox holds one: the others are whole and kept, waiting for room.
                    await trio.sleep(1.0)
                    assert await message.ack() is True
        assert sorted(received) == sorted(sent)


async def in_inbox(config: ClientConfig, *, count: int, timeout: float = 60) -> bool:
    """Whether the client's durable inbox holds `count` (0 or 1) messages within `timeout`;
    read by a second, read-only user of its SQLite state."""
    with ClientState(config.state_dir) as state, trio.move_on_after(timeout):
        while (state.next_inbox() is not None) != bool(count):
            await trio.sleep(0.1)
        return True
    return False


async def read_to_end(stream: trio.SocketStream, timeout: float) -> bytes | None:
    """Everything the server sends until it closes the socket (None: not closed in time)."""
    received = b""
    with trio.move_on_after(timeout):
        while True:
            try:
                chunk = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                return received
            if not chunk:
                return received
            received += chunk
    return None


class _HandMadeWebSocket:
    def __init__(self, stream: trio.SocketStream, connection: wsproto.WSConnection) -> None:
        self.stream = stream
        self.connection = connection


async def websocket_by_hand(url: str) -> _HandMadeWebSocket:
    """A WebSocket opened with wsproto over a raw socket, so that the test decides when (never)
    it reads."""
    parts = urlsplit(url)
    stream = await trio.open_tcp_stream("127.0.0.1", port_of(url))
    connection = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    target = f"{parts.path}?{parts.query}"
    await stream.send_all(connection.send(Request(host=parts.netloc, target=target)))
    with trio.fail_after(10):
        while True:
            connection.receive_data(await stream.receive_some(65536))
            if any(isinstance(e, AcceptConnection) for e in connection.events()):
                return _HandMadeWebSocket(stream, connection)


def test_client_run_reports_a_port_in_use_in_one_line(tmp_path: Path) -> None:
    """It listens before it connects: a busy port fails at once (no network needed)."""
    config = plan_testnet(tmp_path / "net", epoch_seconds=10.0).client_config("busy")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "trimix", "client", "run", "--config", str(config),
             "--listen", f"127.0.0.1:{port}"],
            check=False, capture_output=True, text=True, timeout=60, cwd=REPO,
        )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot serve" in result.stderr and "in use" in result.stderr


def test_client_run_refuses_a_token_file_others_may_read_and_a_malformed_origin(
    tmp_path: Path,
) -> None:
    """Checked before anything starts (no network needed); the token is in no message."""
    config = plan_testnet(tmp_path / "net", epoch_seconds=10.0).client_config("loose")
    state_dir = ClientConfig.from_toml(config).state_dir
    state_dir.mkdir(mode=0o700, parents=True)
    token = ApiToken.generate().value
    (state_dir / "ws.token").write_text(token)
    (state_dir / "ws.token").chmod(0o644)
    command = [sys.executable, "-m", "trimix", "client", "run", "--config", str(config),
               "--listen", "127.0.0.1:0"]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60,
                            cwd=REPO)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "chmod 600" in result.stderr and token not in result.stderr + result.stdout

    (state_dir / "ws.token").chmod(0o600)
    result = subprocess.run([*command, "--allow-origin", "https://app.example/"], check=False,
                            capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "scheme://host[:port]" in result.stderr
