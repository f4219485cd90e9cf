"""Who may use the client daemon's WebSocket API: a bearer token, and no web page.

Listening on 127.0.0.1 keeps other machines out, but not everything on this one. Every
process of every user can open a TCP connection to a loopback port, and so can every web
page the user's browser shows: browsers let a page open a WebSocket to any address,
127.0.0.1 included (cross-site WebSocket hijacking). A page that could talk to the daemon
would learn the user's trimix address, read their messages and send as them. So the
daemon serves a WebSocket handshake only when both hold:

- it presents the daemon's token, as `Authorization: Bearer TOKEN` or as the URL's query
  parameter `token` (browsers cannot set headers on a WebSocket). The token is 32 random
  bytes in hex, kept in a file readable by its owner only (by default `ws.token` in the
  client's state directory, which is itself the owner's only); whoever can read that file
  can read the client's keys too.
- it carries no `Origin` header, or one of the origins configured as allowed. Browsers
  always send one; apps outside a browser do not. A page whose origin is not allowed is
  refused even if it somehow had the token.

This module is the sans-I/O part: the token file and the decision on a handshake's path and
headers. `mixclient.ws_server` carries the decision out.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

TOKEN_BYTES = 32
_TOKEN_TEXT = re.compile(r"[0-9a-f]{64}")
MAX_TOKEN_FILE_BYTES = 4096


class ApiAccessError(ValueError):
    """The token file cannot be used, or an allowed origin is malformed (the message never
    holds the token)."""


@dataclass(frozen=True)
class ApiToken:
    """The secret an app must present. Its repr never shows it."""

    value: str = field(repr=False)

    def __post_init__(self) -> None:
        if not _TOKEN_TEXT.fullmatch(self.value):
            raise ApiAccessError(f"a token is {2 * TOKEN_BYTES} lowercase hex digits")

    @classmethod
    def generate(cls) -> ApiToken:
        return cls(secrets.token_hex(TOKEN_BYTES))

    def matches(self, presented: str) -> bool:
        """In constant time, over digests (so not even the length of a guess tells)."""
        return hmac.compare_digest(
            hashlib.sha256(presented.encode("utf-8", "replace")).digest(),
            hashlib.sha256(self.value.encode()).digest(),
        )


def load_or_create_token(path: Path) -> ApiToken:
    """The token kept at `path`, created (mode 0600, never following a link) if there is
    none. A file that other users may read, that is not a regular file, or that holds
    anything but a token is refused: the daemon does not start with a token it cannot trust."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return _read_token(path)
    except OSError as error:
        raise ApiAccessError(f"cannot create the token file: {error.strerror}") from None
    token = ApiToken.generate()
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(token.value + "\n")
            file.flush()
            os.fsync(file.fileno())
    except OSError as error:
        path.unlink(missing_ok=True)
        raise ApiAccessError(f"cannot write the token file: {error.strerror}") from None
    return token


def _read_token(path: Path) -> ApiToken:
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as error:
        raise ApiAccessError(f"cannot open the token file: {error.strerror}") from None
    with os.fdopen(descriptor, "rb") as file:
        mode = os.fstat(file.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise ApiAccessError("the token file is not a regular file")
        if stat.S_IMODE(mode) & 0o077:
            raise ApiAccessError("the token file is open to other users: chmod 600 it")
        text = file.read(MAX_TOKEN_FILE_BYTES + 1)
    try:
        if len(text) > MAX_TOKEN_FILE_BYTES:
            raise ApiAccessError("too long")
        return ApiToken(text.decode("ascii").strip())
    except (UnicodeDecodeError, ApiAccessError):
        raise ApiAccessError(
            "the token file holds no token: delete it and a new one is made"
        ) from None


_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#\s]+")


def allowed_origin(text: str) -> str:
    """`text` as browsers send it in `Origin` (scheme://host[:port], no path), or an error."""
    origin = text.strip()
    if not _ORIGIN.fullmatch(origin):
        raise ApiAccessError(
            f"an allowed origin is scheme://host[:port] as a browser sends it, not {text!r}"
        )
    return origin


@dataclass(frozen=True)
class Refusal:
    """Why a handshake is refused, as the HTTP answer says it (naming nothing of the app)."""

    status: int
    reason: str


def handshake_refusal(
    token: ApiToken,
    allowed_origins: frozenset[str],
    path: str,
    headers: Iterable[tuple[bytes, bytes]],
) -> Refusal | None:
    """None if a handshake for `path` with `headers` may go on, else why not. The origin is
    checked first, so a page learns nothing about tokens."""
    origins: list[str] = []
    credentials: list[str] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"origin":
            origins.append(value.decode("latin-1").strip())
        elif lowered == b"authorization":
            scheme, _, rest = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer":
                credentials.append(rest.strip())
    if any(origin not in allowed_origins for origin in origins):
        return Refusal(403, "this origin may not use the API")
    try:
        query = parse_qs(urlsplit(path).query, max_num_fields=8)
    except ValueError:
        query = {}
    credentials.extend(query.get("token", ()))
    if not credentials or not all(token.matches(presented) for presented in credentials):
        return Refusal(401, "a valid token is needed (Authorization: Bearer, or ?token=)")
    return None
