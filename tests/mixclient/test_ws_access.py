"""The WebSocket API's access rules without sockets: the token file and the decision on a
handshake's path and headers (the same rules over a real server are in test_ws_server.py)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mixclient.ws_access import (
    ApiAccessError,
    ApiToken,
    Refusal,
    allowed_origin,
    handshake_refusal,
    load_or_create_token,
)

TOKEN = ApiToken("ab" * 32)
PAGE = "http://localhost:3000"


def refusal(path: str, *headers: tuple[bytes, bytes]) -> Refusal | None:
    return handshake_refusal(TOKEN, frozenset({PAGE}), path, list(headers))


def test_a_token_file_is_made_once_for_its_owner_only_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "ws.token"
    first = load_or_create_token(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == first.value + "\n"
    assert load_or_create_token(path) == first
    assert ApiToken.generate() != first


def test_a_token_file_that_cannot_be_trusted_is_refused(tmp_path: Path) -> None:
    for name, content, mode, error in [
        ("loose", b"cd" * 32, 0o644, "chmod 600"),
        ("garbage", b"\xff" * 100, 0o600, "holds no token"),
        ("short", b"cd" * 8, 0o600, "holds no token"),
        ("huge", b"cd" * 32 + b" " * 10_000, 0o600, "holds no token"),
    ]:
        path = tmp_path / name
        path.write_bytes(content)
        path.chmod(mode)
        with pytest.raises(ApiAccessError, match=error):
            load_or_create_token(path)

    # A link planted where the token goes is neither followed nor written through.
    target = tmp_path / "elsewhere"
    target.write_text("cd" * 32)
    target.chmod(0o600)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(ApiAccessError):
        load_or_create_token(link)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "not-yet")
    with pytest.raises(ApiAccessError):
        load_or_create_token(dangling)
    assert not (tmp_path / "not-yet").exists()

    with pytest.raises(ApiAccessError, match="cannot create"):
        load_or_create_token(tmp_path / "no-such-dir" / "ws.token")


def test_the_token_is_in_no_repr_and_in_no_error() -> None:
    assert TOKEN.value not in repr(TOKEN)
    with pytest.raises(ApiAccessError) as error:
        ApiToken("AB" * 32)  # upper case: not a token, and not echoed
    assert "AB" * 32 not in str(error.value)


def test_the_handshake_needs_the_token_in_the_query_or_a_bearer_header() -> None:
    ok = f"/?token={TOKEN.value}"
    assert refusal(ok) is None
    assert refusal(f"/some/path?x=1&token={TOKEN.value}") is None
    assert refusal("/", (b"Authorization", f"Bearer {TOKEN.value}".encode())) is None
    assert refusal("/", (b"authorization", f"bearer  {TOKEN.value} ".encode())) is None
    assert refusal(ok, (b"Origin", PAGE.encode())) is None

    for path, headers in [
        ("/", []),
        ("/?token=", []),
        (f"/?token={TOKEN.value[:-1]}", []),
        (f"/?token={TOKEN.value}0", []),
        (f"/?token={TOKEN.value.upper()}", []),
        (f"/?token={TOKEN.value}&token=00", []),
        (f"/?tok={TOKEN.value}", []),
        ("/", [(b"Authorization", f"Basic {TOKEN.value}".encode())]),
        ("/", [(b"Authorization", TOKEN.value.encode())]),
        ("/?" + "&".join(f"k{i}=v" for i in range(20)) + f"&token={TOKEN.value}", []),
    ]:
        result = refusal(path, *headers)
        assert result is not None and result.status == 401, (path, headers)


def test_a_web_page_of_an_origin_not_allowed_is_refused_even_with_the_token() -> None:
    ok = f"/?token={TOKEN.value}"
    for origin in [b"https://evil.example", b"null", b"http://localhost:3001",
                   b"http://127.0.0.1:8765", b""]:
        result = refusal(ok, (b"Origin", origin))
        assert result is not None and result.status == 403
    # Two Origin headers, one allowed: refused.
    result = refusal(ok, (b"Origin", PAGE.encode()), (b"Origin", b"https://evil.example"))
    assert result is not None and result.status == 403


def test_allowed_origins_are_checked_as_browsers_send_them() -> None:
    assert allowed_origin(" https://app.example:8443 ") == "https://app.example:8443"
    for bad in ["app.example", "https://app.example/", "https://app.example/path", "", "*"]:
        with pytest.raises(ApiAccessError):
            allowed_origin(bad)


@given(
    path=st.text(max_size=300),
    headers=st.lists(st.tuples(st.binary(max_size=40), st.binary(max_size=200)), max_size=8),
)
def test_any_handshake_gets_a_decision_never_an_exception(
    path: str, headers: list[tuple[bytes, bytes]]
) -> None:
    result = handshake_refusal(TOKEN, frozenset({PAGE}), path, headers)
    assert result is None or result.status in (401, 403)
    if result is None:  # only ever with the token
        assert TOKEN.value in path or any(TOKEN.value.encode() in v for _, v in headers)

