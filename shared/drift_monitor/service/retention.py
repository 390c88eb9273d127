"""Batch retention: delete stored batches older than ``BATCH_RETENTION_DAYS``.

Runs after every scheduled detection run (``POST /drift/check`` for all models, and the
embedded schedule) inside a small time budget, and on demand as ``drift-monitor prune``. The
deletion itself (chunked, baseline windows kept) is
:func:`drift_monitor.adapters.sql.retention.prune_batches`; ``docs/schema.md`` explains the rules.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Protocol

from drift_monitor.config import Settings

logger = logging.getLogger(__name__)

# After a scheduled run the prune gets this long, then stops at the next chunk boundary; what
# is left is deleted by the following runs. Small next to the detection budget (240 s) and the
# detect function's timeout, so retention never delays detection noticeably.
PRUNE_AFTER_RUN_SECONDS = 30.0


class Prunable(Protocol):
    """The retention method of :class:`~drift_monitor.adapters.sql.SqlRepository`."""

    def prune_report(
        self,
        before: datetime,
        *,
        batch_size: int = ...,
        time_budget_seconds: float | None = ...,
        dry_run: bool = ...,
    ) -> Any: ...


def retention_cutoff(settings: Settings, now: datetime) -> datetime | None:
    """``now - BATCH_RETENTION_DAYS``, or None when retention is disabled (0)."""
    if settings.batch_retention_days <= 0:
        return None
    return now - timedelta(days=settings.batch_retention_days)


def prune_expired(
    repository: Prunable,
    settings: Settings,
    now: datetime,
    *,
    before: datetime | None = None,
    batch_size: int | None = None,
    time_budget_seconds: float | None = PRUNE_AFTER_RUN_SECONDS,
    dry_run: bool = False,
) -> Any:
    """Delete the batches older than the retention period; log and return the counts.

    Parameters
    ----------
    repository:
        The SQL batch repository.
    settings:
        ``BATCH_RETENTION_DAYS`` (0 disables pruning unless ``before`` is given).
    now:
        Current time (tz-aware); the cut-off is ``now - BATCH_RETENTION_DAYS``.
    before:
        An explicit cut-off instead (``drift-monitor prune --before``).
    batch_size:
        Parts deleted per transaction (``None``: the repository's default).
    time_budget_seconds:
        Stop starting new delete chunks after this long (``None``: no limit).
    dry_run:
        Count what would be deleted; delete nothing.

    Returns
    -------
    PruneResult or None
        None when retention is disabled and no cut-off was given (nothing is touched).
    """
    cutoff = before if before is not None else retention_cutoff(settings, now)
    if cutoff is None:
        return None
    chunking = {} if batch_size is None else {"batch_size": batch_size}
    result = repository.prune_report(
        cutoff, time_budget_seconds=time_budget_seconds, dry_run=dry_run, **chunking
    )
    fields = dict(result.to_dict(), retention_days=settings.batch_retention_days)
    message = "batch retention: would delete" if dry_run else "batch retention: deleted"
    logger.info(message, extra={"fields": fields})
    return result
