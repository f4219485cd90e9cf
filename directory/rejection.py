"""`Rejection`: an upload or request refused, with the HTTP status and a stable short code
the authority answers with (docs/SPEC.md §2.13)."""

from __future__ import annotations

from directory.errors import (
    BadSignatureError,
    DirectoryError,
    DocumentTooLargeError,
    InvalidTimeError,
    MalformedDocumentError,
    NonCanonicalEncodingError,
    UnknownAuthorityError,
)


class Rejection(DirectoryError):
    """An upload refused: `status` is the HTTP status, `code` a stable short name."""

    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason


def rejection_for(error: DirectoryError) -> Rejection:
    """The HTTP answer to a document that failed to decode or verify."""
    if isinstance(error, Rejection):
        return error
    if isinstance(error, DocumentTooLargeError):
        return Rejection(413, "too_large", str(error))
    if isinstance(error, NonCanonicalEncodingError):
        return Rejection(400, "non_canonical", str(error))
    if isinstance(error, MalformedDocumentError):
        return Rejection(400, "malformed", str(error))
    if isinstance(error, BadSignatureError):
        return Rejection(401, "bad_signature", str(error))
    if isinstance(error, UnknownAuthorityError):
        return Rejection(403, "unknown_authority", str(error))
    if isinstance(error, InvalidTimeError):
        return Rejection(500, "internal", "internal error")
    return Rejection(400, "invalid", str(error))
