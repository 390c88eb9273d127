"""Errors the domain raises; entry points map them to HTTP statuses or dead-lettering."""

from __future__ import annotations


class DriftMonitorError(Exception):
    """Base class for every error this package raises on purpose."""


class ValidationError(DriftMonitorError):
    """Input that can never be accepted: a client mistake, not a transient fault.

    ``status`` is the HTTP status the ingest endpoint answers with (400, 413, 415 or 422),
    ``field`` names the offending field (``"embeddings"``, ``"model_id"``, ``"body"`` ...).
    A subscriber that meets one dead-letters the message instead of retrying it.
    """

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status

    def to_dict(self) -> dict[str, object]:
        return {"error": {"field": self.field, "message": self.message, "status": self.status}}


class TransientError(DriftMonitorError):
    """A fault that may pass (database unreachable, broker busy): retry, do not dead-letter."""


class NotFound(DriftMonitorError):
    """The named thing (model, result) does not exist."""
