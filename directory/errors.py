"""The exceptions of the directory. Every rejection of a document raises a `DirectoryError`
subclass whose message says what was wrong; decoders never raise anything else."""

from __future__ import annotations


class DirectoryError(Exception):
    """Base of every error the directory raises."""


class MalformedDocumentError(DirectoryError):
    """The bytes are not a well-formed document of the expected type."""


class NonCanonicalEncodingError(MalformedDocumentError):
    """The bytes decode, but are not the canonical encoding of what they decode to."""


class DocumentTooLargeError(MalformedDocumentError):
    """The document is larger than the limit for its type."""


class SignatureError(DirectoryError):
    """Base of the errors about signatures."""


class BadSignatureError(SignatureError):
    """A signature does not verify over the signed bytes."""


class UnknownAuthorityError(SignatureError):
    """A signature or request comes from a key that is not a pinned authority."""


class DuplicateSignatureError(SignatureError):
    """A document carries more than one signature by the same key."""


class InsufficientSignaturesError(SignatureError):
    """Fewer valid signatures from distinct pinned authorities than the threshold."""


class WrongEpochError(DirectoryError):
    """The document is for another epoch than the one asked for."""


class ExpiredDocumentError(DirectoryError):
    """The document's validity has ended."""


class GeometryMismatchError(DirectoryError):
    """The consensus carries another geometry hash than the expected one."""


class ConsensusComputationError(DirectoryError):
    """No consensus can be computed from the given votes."""


class ConsensusUnavailableError(DirectoryError):
    """No authority could provide a valid consensus for the epoch."""


class ConfigError(DirectoryError):
    """An authority or fetcher configuration, or a key file, is invalid."""


class StorageError(DirectoryError):
    """The authority's database cannot be opened or used."""


class UnsafeParametersError(DirectoryError):
    """Parameters outside the documented safe bounds, or outside an authority's configured
    acceptable ranges."""


class InvalidTimeError(DirectoryError):
    """A time (`now`) that is not a finite number of seconds."""
