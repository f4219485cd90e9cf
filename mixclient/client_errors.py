"""The errors the client library raises. None of their messages holds an address, a node or
mailbox id, a key or payload bytes."""

from __future__ import annotations


class ClientError(Exception):
    """Something the client could not do."""


class NotConnectedError(ClientError):
    """The client is not running (use `async with Client(config) as client:`)."""


class SendFailedError(ClientError):
    """A message was not acknowledged after the bounded number of tries."""


class NoReplySurbsError(ClientError):
    """Too few reply SURBs are left in a conversation for the reply's fragments."""


class MessageTooLargeError(ClientError, ValueError):
    """A message is larger than the client sends."""


class GatewayUnavailableError(ClientError):
    """The gateway is not in the consensus, or cannot be reached."""


class RegistrationRefusedError(GatewayUnavailableError):
    """The gateway takes no new mailbox for this client: its registry is full, or new
    mailboxes from this network address are past their budget for now."""


class DirectoryUnavailableError(ClientError):
    """No verified consensus came from the authorities (or the cache) in time."""
