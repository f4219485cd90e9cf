"""trimix: the front door — the `trimix` CLI and the local testnet launcher."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("trimix")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
