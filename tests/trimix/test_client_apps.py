"""What apps and people use, over one real testnet: the client daemon's WebSocket API (a real
`trimix client run` process), the JavaScript example, `trimix send/receive`, the demo and
examples/chat.py."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

import msgpack
import pytest
import trio
from trio_websocket import ConnectionRejected, WebSocketConnection, open_websocket_url

from mixclient import Client, ClientConfig
from trimix.demo import demo_run
from trimix.testnet import TestnetPlan, TestnetProcesses

REPO = Path(__file__).resolve().parents[2]
TRIMIX = [sys.executable, "-m", "trimix"]
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")



@pytest.fixture(scope="module")
def daemon(apps_testnet: tuple[TestnetPlan, TestnetProcesses]) -> Iterator[tuple[str, str]]:
    """A real `trimix client run` for "app" at gateway-1: its (WebSocket URL, address)."""
    plan, _ = apps_testnet
    config = plan.client_config("app", gateway=plan.gateways[0])
    process = subprocess.Popen(
        [*TRIMIX, "client", "run", "--config", str(config), "--listen", "127.0.0.1:0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert process.stdout is not None
        address = url = token_file = ""
        for _ in range(3):
            line = process.stdout.readline()
            if line.startswith("address"):
                address = line.split()[1]
            elif line.startswith("websocket"):
                url = line.split()[1]
            elif line.startswith("token"):
                token_file = line.split(maxsplit=1)[1].strip()
        assert address and url and token_file, "the daemon did not start"
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
        yield f"{url}?token={Path(token_file).read_text().strip()}", address
        assert process.poll() is None, "the daemon died"
    finally:
        process.terminate()
        code = process.wait(timeout=20)
    assert code == 0


@asynccontextmanager
async def peer(plan: TestnetPlan, name: str) -> AsyncIterator[Client]:
    config = ClientConfig.from_toml(plan.client_config(name, gateway=plan.gateways[1]))
    async with Client(config) as client:
        yield client


async def request(ws: WebSocketConnection, body: dict[str, Any], *, binary: bool = False) -> None:
    if binary:
        await ws.send_message(msgpack.packb(body, use_bin_type=True))
    else:
        await ws.send_message(json.dumps(body))


async def event(ws: WebSocketConnection, timeout: float = 60) -> dict[str, Any]:
    with trio.fail_after(timeout):
        message = await ws.get_message()
    if isinstance(message, bytes):
        return dict(msgpack.unpackb(message, raw=False))
    decoded = json.loads(message)
    if isinstance(decoded.get("data"), str):
        decoded["data"] = base64.b64decode(decoded["data"])
    return decoded


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


async def test_websocket_api_answers_every_request_type(
    apps_testnet: tuple[TestnetPlan, TestnetProcesses], daemon: tuple[str, str]
) -> None:
    plan, _ = apps_testnet
    url, app_address = daemon
    # Without the daemon's token, or from a web page, nothing: an HTTP refusal.
    for refused_url, headers, status in [
        (url.split("?", 1)[0], [], 401),
        (url, [(b"Origin", b"https://evil.example")], 403),
    ]:
        with pytest.raises(ConnectionRejected) as rejected:
            async with open_websocket_url(refused_url, extra_headers=headers):
                pass
        assert rejected.value.status_code == status
    async with peer(plan, "ws-peer") as bob, aclosing(bob.messages()) as inbox:
        async with open_websocket_url(url) as ws:
            await request(ws, {"type": "self_address", "id": 1})
            assert await event(ws) == {"type": "self_address", "id": 1, "address": app_address}

            await request(ws, {"type": "send", "id": "j", "to": bob.address, "data": b64(b"json")})
            assert await event(ws) == {"type": "sent", "id": "j"}
            got = await anext(inbox)
            assert got.data == b"json" and got.sender == app_address

            await request(ws, {"type": "send", "id": "b", "to": bob.address, "data": b"binary"},
                          binary=True)
            assert await event(ws) == {"type": "sent", "id": "b"}
            assert (await anext(inbox)).data == b"binary"

            # The app sends anonymously; bob answers through its SURBs.
            await request(ws, {"type": "send_anonymous", "id": "a", "to": bob.address,
                               "data": b64(b"anon"), "reply_surbs": 1})
            assert await event(ws) == {"type": "sent", "id": "a"}
            anonymous = await anext(inbox)
            assert anonymous.sender is None
            await anonymous.reply(b"answer")
            received = await event(ws)
            assert received["type"] == "received" and received["kind"] == "reply"
            assert received["data"] == b"answer" and received["sender"] is None
            await request(ws, {"type": "ack", "id": "k", "message_id": received["message_id"]})
            assert await event(ws) == {"type": "acked", "id": "k", "known": True}

            # Bob writes anonymously; the app answers with a reply request.
            await bob.send_anonymous(app_address, b"question", reply_surbs=1)
            received = await event(ws)
            assert received["kind"] == "anonymous" and received["data"] == b"question"
            await request(ws, {"type": "reply", "id": "r", "conversation": received["conversation"],
                               "data": b64(b"reply!")})
            assert await event(ws) == {"type": "sent", "id": "r"}
            assert (await anext(inbox)).data == b"reply!"
            await request(ws, {"type": "ack", "id": "q", "message_id": received["message_id"]},
                          binary=True)
            assert await event(ws) == {"type": "acked", "id": "q", "known": True}


async def test_websocket_bad_input_gets_an_error_and_the_connection_stays_up(
    apps_testnet: tuple[TestnetPlan, TestnetProcesses], daemon: tuple[str, str]
) -> None:
    url, app_address = daemon
    async with open_websocket_url(url, message_queue_size=4) as ws:
        cases: list[tuple[str | bytes, str]] = [
            ("{not json", "malformed"),
            (b"\xc1", "malformed"),
            ("[1, 2]", "malformed"),
            (json.dumps({"type": "teleport", "id": 1}), "unknown_type"),
            (json.dumps({"type": "send", "id": 2, "to": "x"}), "bad_request"),
            (json.dumps({"type": "send", "id": 3, "to": "x", "data": "!!"}), "bad_request"),
            (json.dumps({"type": "send", "id": 4, "to": "tmx1abc", "data": b64(b"x")}),
             "bad_address"),
            (json.dumps({"type": "reply", "id": 5, "conversation": "00" * 16,
                         "data": b64(b"x")}), "no_reply_surbs"),
            ("x" * (3 * 1024 * 1024), "too_large"),
        ]
        for message, code in cases:
            await ws.send_message(message)
            answer = await event(ws)
            assert answer["type"] == "error" and answer["code"] == code, (message[:40], answer)
            assert answer["message"]
        await request(ws, {"type": "self_address", "id": "still-up"})
        assert (await event(ws))["address"] == app_address


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
async def test_the_javascript_example_sends_through_the_daemon(
    apps_testnet: tuple[TestnetPlan, TestnetProcesses], daemon: tuple[str, str]
) -> None:
    plan, _ = apps_testnet
    url, app_address = daemon
    version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout
    major = int(re.match(r"v(\d+)", version).group(1))  # type: ignore[union-attr]
    flags = [] if major >= 22 else ["--experimental-websocket"]
    async with peer(plan, "js-peer") as bob, aclosing(bob.messages()) as inbox:
        result = await trio.to_thread.run_sync(
            lambda: subprocess.run(
                ["node", *flags, str(REPO / "examples" / "ws-client.mjs"), url, bob.address,
                 "hello from js"],
                capture_output=True, text=True, timeout=90,
            )
        )
        assert result.returncode == 0, result.stderr
        assert f"address {app_address}" in result.stdout and "sent msg-1" in result.stdout
        with trio.fail_after(30):
            got = await anext(inbox)
        assert got.data == b"hello from js"
        # The other way: it prints what it receives, acknowledges it, and stops once the
        # daemon has confirmed.
        await got.reply(b"hello js")
        result = await trio.to_thread.run_sync(
            lambda: subprocess.run(
                ["node", *flags, str(REPO / "examples" / "ws-client.mjs"), url, "--receive", "1"],
                capture_output=True, text=True, timeout=90,
            )
        )
        assert result.returncode == 0, result.stderr
        assert f"received direct from {bob.address}: hello js" in result.stdout


async def test_send_and_receive_commands(apps_testnet: tuple[TestnetPlan, TestnetProcesses]) -> None:
    plan, _ = apps_testnet
    sender = plan.client_config("cli-sender", gateway=plan.gateways[0])
    receiver = plan.client_config("cli-receiver", gateway=plan.gateways[1])
    receiving = subprocess.Popen(
        [*TRIMIX, "receive", "--config", str(receiver), "--count", "2", "--timeout", "90"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert receiving.stdout is not None
        first = await trio.to_thread.run_sync(receiving.stdout.readline)
        address = first.split()[1]
        for data in (b"hello from the shell", b"\xff\x00binary"):
            result = await trio.to_thread.run_sync(
                lambda data=data: subprocess.run(
                    [*TRIMIX, "send", address, "--config", str(sender)],
                    input=data, capture_output=True, timeout=90, cwd=REPO,
                )
            )
            assert result.returncode == 0, result.stderr
            assert b"acknowledged" in result.stderr
        output, _ = await trio.to_thread.run_sync(lambda: receiving.communicate(timeout=90))
    finally:
        receiving.kill()
        receiving.wait(timeout=10)
    assert "text: hello from the shell" in output
    assert "base64: " + b64(b"\xff\x00binary") in output
    bad = subprocess.run([*TRIMIX, "send", "tmx1nope", "--config", str(sender)], input="x",
                         capture_output=True, text=True, timeout=90, cwd=REPO)
    assert bad.returncode != 0 and "address" in bad.stderr and "Traceback" not in bad.stderr


async def test_the_demo_delivers_everything_and_counts_its_packets(
    apps_testnet: tuple[TestnetPlan, TestnetProcesses],
) -> None:
    plan, _ = apps_testnet
    lines: list[str] = []
    report = await demo_run(plan, lines.append)
    assert report.ok, lines
    for counts in report.links.values():
        assert counts["packets_on_link"] > counts["real"]  # cover went out as well
    assert report.links["alice"]["real"] >= 129 + 33  # 256 KiB and 64 KiB at least
    assert any("anonymous" in line and "None" in line for line in lines)


async def test_the_chat_example_carries_a_line_each_way(
    apps_testnet: tuple[TestnetPlan, TestnetProcesses],
) -> None:
    plan, _ = apps_testnet
    script = str(REPO / "examples" / "chat.py")
    configs = [plan.client_config(f"chat-{n}", gateway=g) for n, g in enumerate(plan.gateways)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.Popen(
        [sys.executable, script, "--config", str(configs[0])], env=env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    second = None
    try:
        assert first.stdout is not None and first.stdin is not None
        address = (await trio.to_thread.run_sync(first.stdout.readline)).split()[-1]
        second = subprocess.Popen(
            [sys.executable, script, "--config", str(configs[1]), "--peer", address], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert second.stdout is not None and second.stdin is not None
        await trio.to_thread.run_sync(second.stdout.readline)  # its address
        second.stdin.write("hi, it's me\n")
        second.stdin.flush()

        async def wait_for(process: subprocess.Popen[str], text: str) -> None:
            assert process.stdout is not None
            with trio.fail_after(60):
                while text not in await trio.to_thread.run_sync(
                    process.stdout.readline, abandon_on_cancel=True
                ):
                    pass

        await wait_for(first, "peer: hi, it's me")
        first.stdin.write("hello back\n")
        first.stdin.flush()
        await wait_for(second, "peer: hello back")
    finally:
        for process in (first, second):
            if process is not None:
                process.kill()
                process.wait(timeout=10)
