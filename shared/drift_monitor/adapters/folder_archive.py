"""Raw batch archive in a local folder: the twin of :mod:`drift_monitor.adapters.gcs_archive`."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from drift_monitor.adapters.archive_names import SUFFIX, object_name
from drift_monitor.domain.batch import BatchPart
from drift_monitor.domain.envelope import decode, encode
from drift_monitor.domain.errors import NotFound, TransientError


class FolderArchive:
    """Implements :class:`~drift_monitor.service.ports.Archive` on a directory tree.

    Each part is stored as its envelope-encoded message (``docs/message-format.md``) at
    ``root / object_name(part)``. Writes go to a temporary file in the target directory and are
    renamed into place, so a reader never sees half an object and a crash leaves no torn file.
    """

    def __init__(self, root: Path | str, prefix: str = "") -> None:
        self.root = Path(root)
        self.prefix = prefix

    def path_for(self, part: BatchPart) -> Path:
        return self._path(object_name(part, self.prefix))

    def _path(self, name: str) -> Path:
        path = self.root / name
        # Names come from validated ids, but never let one escape the archive root.
        root = self.root.resolve()
        if root not in path.resolve().parents:
            raise ValueError(f"object name {name!r} escapes the archive root")
        return path

    def put(self, part: BatchPart) -> None:
        """Write ``part`` atomically; rewriting the same part replaces it with equal bytes."""
        path = self.path_for(part)
        data = encode(part).data
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=SUFFIX, dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            # A full or unavailable disk may recover; let the message be redelivered.
            raise TransientError(f"archive write to {path} failed: {exc}") from exc

    def get(self, name: str) -> BatchPart:
        """Read back the part stored under ``name`` (relative to the root)."""
        path = self._path(name)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"no archived object {name!r}") from exc
        return decode(data)

    def names(self, model_id: str | None = None) -> Iterator[str]:
        """Archived object names (sorted), optionally only those of one model."""
        base = self.root / self.prefix
        if model_id is not None:
            base = base / model_id
        if not base.is_dir():
            return
        for path in sorted(base.rglob(f"*{SUFFIX}")):
            if not path.name.startswith(".tmp-"):
                yield path.relative_to(self.root).as_posix()
