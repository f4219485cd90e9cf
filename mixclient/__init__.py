"""The trimix client for messenger apps: `async with Client(config) as client:`.

See docs/CLIENT_API.md. The sans-I/O cores (addresses, end-to-end encryption, framing,
fragments, cover streams, routes, reliability, state) are in the modules beside this one;
`mixclient.client` is the Trio driver that joins them to a gateway link.
"""

from mixclient.address import AddressError, ClientAddress
from mixclient.client import Client, ClientStats, Emitted, ReceivedMessage
from mixclient.client_config import ClientConfig, ClientConfigError
from mixclient.client_errors import (
    ClientError,
    DirectoryUnavailableError,
    GatewayUnavailableError,
    MessageTooLargeError,
    NoReplySurbsError,
    NotConnectedError,
    RegistrationRefusedError,
    SendFailedError,
)
from mixclient.e2e import E2ESuite

__all__ = [
    "AddressError",
    "Client",
    "ClientAddress",
    "ClientConfig",
    "ClientConfigError",
    "ClientError",
    "ClientStats",
    "DirectoryUnavailableError",
    "E2ESuite",
    "Emitted",
    "GatewayUnavailableError",
    "MessageTooLargeError",
    "NoReplySurbsError",
    "NotConnectedError",
    "ReceivedMessage",
    "RegistrationRefusedError",
    "SendFailedError",
]
