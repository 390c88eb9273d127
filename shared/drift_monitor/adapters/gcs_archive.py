"""Raw batch archive in Cloud Storage (the design's optional GCS_BUCKET archive).

Uses the official ``google-cloud-storage`` client. Tests run it against gcp-storage-emulator
through ``STORAGE_EMULATOR_HOST``, which the client honours by itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud.storage import Client

from drift_monitor.adapters.archive_names import CONTENT_TYPE, object_metadata, object_name
from drift_monitor.domain.batch import BatchPart
from drift_monitor.domain.envelope import decode, encode
from drift_monitor.domain.errors import NotFound, TransientError

# Failures worth a Pub/Sub redelivery rather than a dead letter.
_TRANSIENT: tuple[type[BaseException], ...] = (
    gexc.TooManyRequests,
    gexc.InternalServerError,
    gexc.BadGateway,
    gexc.ServiceUnavailable,
    gexc.GatewayTimeout,
    gexc.RetryError,
    ConnectionError,
    TimeoutError,
)
try:  # requests is what the storage client speaks HTTP with
    import requests

    _TRANSIENT += (requests.ConnectionError, requests.Timeout)
except ImportError:  # pragma: no cover - requests is a dependency of google-cloud-storage
    pass


class GcsArchive:
    """Implements :class:`~drift_monitor.service.ports.Archive` on a Cloud Storage bucket.

    Parameters
    ----------
    client
        A ``google.cloud.storage.Client`` (production: default credentials; tests:
        ``AnonymousCredentials`` against the emulator).
    bucket
        Bucket name. It must exist (Terraform creates it); the archive never creates buckets.
    prefix
        Optional leading path of every object, e.g. ``"raw/"``.

    Each part is stored as its envelope-encoded message bytes (``docs/message-format.md``)
    under :func:`~drift_monitor.adapters.archive_names.object_name`, with the message
    attributes plus count, dimension and timestamp as object metadata. The name is a function
    of the part's identity, so a redelivered message overwrites the object with identical bytes.
    """

    def __init__(self, client: Client, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = client.bucket(bucket)
        self.prefix = prefix

    def put(self, part: BatchPart) -> None:
        """Upload ``part``; raise :class:`TransientError` when Cloud Storage is unavailable."""
        blob = self.bucket.blob(object_name(part, self.prefix))
        blob.metadata = object_metadata(part)
        try:
            blob.upload_from_string(encode(part).data, content_type=CONTENT_TYPE)
        except _TRANSIENT as exc:
            raise TransientError(f"archive upload of {blob.name} failed: {exc}") from exc

    def get(self, name: str) -> BatchPart:
        """Download and decode the part stored under ``name``."""
        blob = self.bucket.blob(name)
        try:
            data: bytes = blob.download_as_bytes()
        except gexc.NotFound as exc:
            raise NotFound(f"no archived object {name!r}") from exc
        except _TRANSIENT as exc:
            raise TransientError(f"archive download of {name} failed: {exc}") from exc
        return decode(data)

    def metadata(self, name: str) -> dict[str, Any]:
        """The object metadata written by :meth:`put`."""
        blob = self.bucket.get_blob(name)
        if blob is None:
            raise NotFound(f"no archived object {name!r}")
        return dict(blob.metadata or {})

    def names(self, model_id: str | None = None) -> Iterator[str]:
        """Archived object names (sorted), optionally only those of one model."""
        prefix = self.prefix + (f"{model_id}/" if model_id is not None else "")
        for blob in self.client.list_blobs(self.bucket, prefix=prefix):
            yield str(blob.name)
