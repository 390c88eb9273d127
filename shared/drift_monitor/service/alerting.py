"""Alerting: decide, per model and channel, whether to trigger, resolve or stay quiet, and do it.

The decision (:func:`decide`) is a pure function of the detection status, the stored alert state
and the cooldown. :func:`process_outcome` carries it out through :class:`Notifier` objects
(PagerDuty, webhook; :class:`RecordingNotifier` in tests) and an :class:`AlertStateStore`
(``SqlMonitorRepository`` in production; :class:`MemoryAlertStateStore` in tests), whose
compare-and-set ``transition_alert`` makes sure two concurrent detection runs never both page.

Rules (``docs/alerting.md`` has the table):

* ``insufficient_data`` and ``error`` never trigger and never resolve;
* drift on a channel with no open alert → **trigger** (one incident, ``dedup_key`` stable per
  model), unless the last notification on that channel is younger than the cooldown (a model
  flapping drift/ok/drift is paged at most once per cooldown);
* drift while the alert is open → nothing inside the cooldown, then a **reminder** trigger with
  the same ``dedup_key`` (PagerDuty folds it into the open alert; no new incident);
* back to ``ok`` while the alert is open → **resolve** with the stored ``dedup_key`` at once.

Claim, then send. The state is moved with compare-and-set *before* the notification goes out;
only the run whose CAS succeeded sends. If the send fails, the claim is rolled back (second CAS)
with ``last_sent_at`` set to :data:`NEVER`, so the next run retries regardless of the cooldown.
If the process dies between the CAS and the send, the state says "sent" although nothing went
out: the trigger is then re-sent as a reminder once the cooldown has passed (a delayed page),
and a resolve for an alert PagerDuty never opened is dropped by PagerDuty. We prefer that
bounded delay to the alternative (send, then record), under which two concurrent runs both
send: PagerDuty would fold duplicate triggers, but webhooks would post twice.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, Literal, Protocol

from drift_monitor.domain.errors import DriftMonitorError

_log = logging.getLogger(__name__)

TRIGGERED = "triggered"
RESOLVED = "resolved"
# ``last_sent_at`` written when a claimed notification could not be delivered: "never sent".
NEVER = datetime(1970, 1, 1, tzinfo=UTC)

Status = Literal["ok", "drift", "insufficient_data", "error"]
Severity = Literal["critical", "error", "warning", "info"]
SEVERITIES: tuple[str, ...] = ("critical", "error", "warning", "info")
DEDUP_PREFIX = "drift-monitor/"


class Decision(Enum):
    TRIGGER = "trigger"
    REMIND = "remind"  # a repeat trigger for an alert that is already open
    RESOLVE = "resolve"
    NOTHING = "nothing"

    @property
    def action(self) -> str | None:
        """The PagerDuty ``event_action`` this decision sends, or None."""
        return {"trigger": "trigger", "remind": "trigger", "resolve": "resolve"}.get(self.value)


class AlertStateRecord(Protocol):
    """What :meth:`AlertStateStore.get_alert_state` returns (any object with these attributes)."""

    @property
    def state(self) -> str: ...  # "triggered" | "resolved"

    @property
    def dedup_key(self) -> str: ...

    @property
    def last_sent_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class AlertState:
    """The stored alert state of one model on one channel."""

    model_id: str
    channel: str
    state: str
    dedup_key: str
    last_sent_at: datetime | None
    updated_at: datetime | None = None


class AlertStateStore(Protocol):
    """Durable alert state, one row per ``(model_id, channel)``; survives restarts."""

    def get_alert_state(self, model_id: str, channel: str) -> AlertStateRecord | None:
        """The stored state, or None when this model never alerted on this channel."""
        ...

    def transition_alert(
        self,
        model_id: str,
        channel: str,
        expected_state: str | None,
        new_state: str,
        dedup_key: str,
        now: datetime,
        *,
        sent_before: datetime | None = None,
    ) -> bool:
        """Compare-and-set: if the stored state equals ``expected_state`` (None: no row yet)
        and, when ``sent_before`` is given, ``last_sent_at`` is missing or earlier than it, set
        ``state=new_state``, ``dedup_key``, ``last_sent_at=now``, ``updated_at`` and return
        True; otherwise change nothing and return False. Atomic across processes, so the
        cooldown check (``sent_before = now - cooldown``) is part of the claim."""
        ...


@dataclass(frozen=True)
class Alert:
    """One notification, channel-independent. Notifiers render it for their destination."""

    action: Literal["trigger", "resolve"]
    model_id: str
    dedup_key: str
    summary: str
    severity: Severity
    timestamp: datetime
    details: Mapping[str, Any] = field(default_factory=dict)
    reminder: bool = False


class DeliveryFailed(DriftMonitorError):
    """A notifier could not deliver an alert (the twin raises it)."""


class Notifier(Protocol):
    """An alert destination. ``send`` raises ``DeliveryError`` (or any
    :class:`~drift_monitor.domain.errors.DriftMonitorError`) when the alert did not get through.
    """

    @property
    def channel(self) -> str:
        """Stable channel name used as the alert-state key (``pagerduty``, ``webhook``)."""
        ...

    def send(self, alert: Alert) -> None: ...


class AlertCounter(Protocol):
    """Receives one call per notification that got through (the metrics adapter implements it)."""

    def alert_sent(self, model_id: str, channel: str, action: str) -> None: ...


@dataclass(frozen=True)
class DetectionOutcome:
    """What detection concluded for one model, as alerting needs it.

    ``report`` is ``DriftReport.to_dict()`` (or None when there was no decision); windows are
    ``(start, end)`` pairs.
    """

    model_id: str
    status: Status
    checked_at: datetime
    report: Mapping[str, Any] | None = None
    baseline_window: tuple[datetime, datetime] | None = None
    current_window: tuple[datetime, datetime] | None = None
    n_baseline: int | None = None
    n_current: int | None = None
    threshold: float | None = None
    result_id: int | str | None = None


@dataclass(frozen=True)
class ChannelResult:
    """What happened on one channel for one outcome."""

    channel: str
    decision: Decision
    sent: bool
    dedup_key: str | None = None
    error: str | None = None
    reason: str = ""


def dedup_key_for(model_id: str) -> str:
    """The PagerDuty ``dedup_key`` of a model: stable, so resolve finds the trigger's alert.

    Model ids are at most 128 characters, well inside PagerDuty's 255.
    """
    return f"{DEDUP_PREFIX}{model_id}"


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything this package stores is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def decide(
    status: str,
    state: AlertStateRecord | None,
    now: datetime,
    cooldown: timedelta,
) -> tuple[Decision, str]:
    """The pure alerting decision for one channel; returns ``(decision, reason)``.

    Parameters
    ----------
    status
        ``ok``, ``drift``, ``insufficient_data`` or ``error``.
    state
        The stored alert state of this model and channel, or None.
    now
        The time of the decision (tz-aware).
    cooldown
        ``ALERT_COOLDOWN_MINUTES``: minimum time between two triggers on one channel, and
        between a resolve and the next trigger.
    """
    if status in ("insufficient_data", "error"):
        return Decision.NOTHING, f"status {status}: neither trigger nor resolve"
    if status not in ("ok", "drift"):
        raise ValueError(f"unknown detection status {status!r}")
    current = state.state if state is not None else None
    last = _aware(state.last_sent_at) if state is not None else None
    in_cooldown = last is not None and now - last < cooldown
    if status == "ok":
        if current == TRIGGERED:
            return Decision.RESOLVE, "back to normal"
        return Decision.NOTHING, "no drift and no open alert"
    if current == TRIGGERED:
        if in_cooldown:
            return Decision.NOTHING, "alert already open, inside the cooldown"
        return Decision.REMIND, "drift persists past the cooldown"
    if current == RESOLVED and in_cooldown:
        return Decision.NOTHING, "resolved less than a cooldown ago (flapping guard)"
    return Decision.TRIGGER, "drift started"


def _num(value: Any) -> Any:
    """JSON-safe numbers: numpy scalars to Python, NaN/inf to None."""
    if isinstance(value, bool) or value is None:
        return value
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _clean(value: Any, depth: int = 0) -> Any:
    if depth > 6:
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v, depth + 1) for v in value]
    if isinstance(value, datetime):
        return (_aware(value) or value).isoformat()
    if hasattr(value, "tolist") and callable(value.tolist):
        return _clean(value.tolist(), depth + 1)
    return _num(value)


def _window(window: tuple[datetime, datetime] | None, n: int | None) -> dict[str, Any] | None:
    if window is None and n is None:
        return None
    out: dict[str, Any] = {"samples": n}
    if window is not None:
        out["start"] = _clean(window[0])
        out["end"] = _clean(window[1])
    return out


def _test_summaries(report: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    tests = report.get("tests")
    if not isinstance(tests, Mapping):
        return {}
    out: dict[str, dict[str, Any]] = {}
    for name, result in tests.items():
        if not isinstance(result, Mapping):
            continue
        out[str(name)] = {
            key: _clean(result.get(key))
            for key in ("statistic", "p_value", "drift", "effect_size", "threshold")
            if key in result
        }
    return out


def alert_details(outcome: DetectionOutcome, max_dimensions: int = 10) -> dict[str, Any]:
    """The ``custom_details`` of an alert: scores, p-values, windows, top drifted dimensions."""
    report = outcome.report or {}
    details: dict[str, Any] = {
        "model_id": outcome.model_id,
        "status": outcome.status,
        "checked_at": _clean(outcome.checked_at),
        "drift_detected": bool(report.get("drift_detected", outcome.status == "drift")),
        "tests": _test_summaries(report),
        "windows": {
            "baseline": _window(outcome.baseline_window, outcome.n_baseline),
            "current": _window(outcome.current_window, outcome.n_current),
        },
    }
    for key in ("kl_divergence", "confidence_interval", "alpha"):
        if key in report:
            details[key] = _clean(report[key])
    if outcome.threshold is not None:
        details["threshold"] = _clean(outcome.threshold)
    top = _clean(report.get("top_dimensions"))
    if isinstance(top, list):
        details["top_dimensions"] = top[:max_dimensions]
    if outcome.result_id is not None:
        details["result_id"] = _clean(outcome.result_id)
    return details


def alert_summary(outcome: DetectionOutcome, action: str) -> str:
    """One line for a pager screen: which model, how many tests flagged it, the strongest one."""
    if action == "resolve":
        return f"Embedding drift resolved for model {outcome.model_id}"
    tests = _test_summaries(outcome.report or {})
    drifted = [name for name, t in tests.items() if t.get("drift")]
    text = f"Embedding drift detected for model {outcome.model_id}"
    if tests:
        text += f": {len(drifted)}/{len(tests)} tests flag drift"
        p_values = [
            (t["p_value"], name)
            for name, t in tests.items()
            if isinstance(t.get("p_value"), int | float)
        ]
        if p_values:
            p, name = min(p_values)
            text += f" (lowest p-value {name}={p:.3g})"
    kl = (outcome.report or {}).get("kl_divergence")
    if isinstance(kl, int | float) and math.isfinite(kl):
        text += f", KL divergence {kl:.4g}"
    return text[:1024]


def build_alert(
    outcome: DetectionOutcome,
    decision: Decision,
    dedup_key: str,
    severity: Severity = "warning",
) -> Alert:
    """The channel-independent alert for a TRIGGER, REMIND or RESOLVE decision."""
    action = decision.action
    if action is None:
        raise ValueError(f"{decision} sends nothing")
    assert action in ("trigger", "resolve")
    return Alert(
        action="trigger" if action == "trigger" else "resolve",
        model_id=outcome.model_id,
        dedup_key=dedup_key,
        summary=alert_summary(outcome, action),
        severity=severity,
        timestamp=_aware(outcome.checked_at) or outcome.checked_at,
        details=alert_details(outcome),
        reminder=decision is Decision.REMIND,
    )


def process_outcome(
    outcome: DetectionOutcome,
    *,
    notifiers: Sequence[Notifier],
    store: AlertStateStore,
    cooldown: timedelta,
    now: datetime | None = None,
    severity: Severity = "warning",
    counter: AlertCounter | None = None,
) -> list[ChannelResult]:
    """Decide and act on every channel for one model's detection outcome.

    One channel failing (PagerDuty down, webhook refused) never stops the others, and never
    raises: the failure is logged and reported in the returned :class:`ChannelResult`. Errors of
    the state store (``TransientError``) do propagate: without state we cannot avoid duplicates.

    Parameters
    ----------
    outcome
        The detection result of one model.
    notifiers
        The channels of this model (PagerDuty when configured; its webhook when it has one).
    store
        Alert state with compare-and-set.
    cooldown
        ``timedelta(minutes=settings.alert_cooldown_minutes)``.
    now
        Decision time; defaults to the current UTC time.
    severity
        PagerDuty severity of triggers.
    counter
        Told about every notification that got through (``alerts_sent_total``).
    """
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}")
    now = now or datetime.now(UTC)
    results: list[ChannelResult] = []
    for notifier in notifiers:
        results.append(_process_channel(outcome, notifier, store, cooldown, now, severity, counter))
    return results


def _process_channel(
    outcome: DetectionOutcome,
    notifier: Notifier,
    store: AlertStateStore,
    cooldown: timedelta,
    now: datetime,
    severity: Severity,
    counter: AlertCounter | None,
) -> ChannelResult:
    channel = notifier.channel
    model_id = outcome.model_id
    state = store.get_alert_state(model_id, channel)
    decision, reason = decide(outcome.status, state, now, cooldown)
    if decision is Decision.NOTHING:
        return ChannelResult(
            channel, decision, False, state.dedup_key if state else None, reason=reason
        )
    expected = state.state if state is not None else None
    # Resolve with the key the trigger used, even if the naming scheme changed since.
    dedup_key = state.dedup_key if state is not None and state.dedup_key else None
    dedup_key = dedup_key or dedup_key_for(model_id)
    new_state = RESOLVED if decision is Decision.RESOLVE else TRIGGERED
    # Where the decision depended on the cooldown, make that check part of the atomic claim,
    # so two overlapping runs cannot both send a reminder. The store compares strictly
    # (last_sent_at < sent_before) while decide() treats "exactly one cooldown ago" as over:
    # add the one-microsecond resolution of datetime (and of PostgreSQL timestamps).
    sent_before = None
    if expected is not None and decision is not Decision.RESOLVE:
        sent_before = now - cooldown + timedelta(microseconds=1)
    if not store.transition_alert(
        model_id, channel, expected, new_state, dedup_key, now, sent_before=sent_before
    ):
        # Another run moved the state first; it sends, we must not.
        _log.info(
            "alert claimed by a concurrent run",
            extra={
                "fields": {"model_id": model_id, "channel": channel, "decision": decision.value}
            },
        )
        return ChannelResult(
            channel, Decision.NOTHING, False, dedup_key, reason="claimed by a concurrent run"
        )
    alert = build_alert(outcome, decision, dedup_key, severity)
    try:
        notifier.send(alert)
    except Exception as exc:  # a bug in a notifier must not leave a claimed, unsent alert
        # Undo the claim and mark it unsent (NEVER) so the next run retries at once: a failed
        # trigger goes back to "resolved", a failed reminder or resolve to "triggered".
        rolled_back_to = RESOLVED if decision is Decision.TRIGGER else TRIGGERED
        undone = store.transition_alert(
            model_id, channel, new_state, rolled_back_to, dedup_key, NEVER
        )
        _log.error(
            "alert not delivered",
            extra={
                "fields": {
                    "model_id": model_id,
                    "channel": channel,
                    "action": alert.action,
                    "dedup_key": dedup_key,
                    "error": str(exc),
                    "claim_undone": undone,
                    "delivery_failure": isinstance(exc, DriftMonitorError),
                }
            },
        )
        return ChannelResult(channel, decision, False, dedup_key, error=str(exc), reason=reason)
    _log.info(
        "alert sent",
        extra={
            "fields": {
                "model_id": model_id,
                "channel": channel,
                "action": alert.action,
                "dedup_key": dedup_key,
                "reminder": alert.reminder,
            }
        },
    )
    if counter is not None:
        counter.alert_sent(model_id, channel, alert.action)
    return ChannelResult(channel, decision, True, dedup_key, reason=reason)


class MemoryAlertStateStore:
    """In-process :class:`AlertStateStore` with the same compare-and-set semantics as SQL."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], AlertState] = {}
        self._lock = threading.Lock()
        self.transitions: list[tuple[str, str, str | None, str, bool]] = []

    def get_alert_state(self, model_id: str, channel: str) -> AlertState | None:
        with self._lock:
            return self._rows.get((model_id, channel))

    def transition_alert(
        self,
        model_id: str,
        channel: str,
        expected_state: str | None,
        new_state: str,
        dedup_key: str,
        now: datetime,
        *,
        sent_before: datetime | None = None,
    ) -> bool:
        if new_state not in (TRIGGERED, RESOLVED):
            raise ValueError(f"unknown alert state {new_state!r}")
        with self._lock:
            row = self._rows.get((model_id, channel))
            ok = (row.state if row is not None else None) == expected_state
            if ok and row is not None and sent_before is not None:
                last = _aware(row.last_sent_at)
                ok = last is None or last < sent_before
            if ok:
                self._rows[(model_id, channel)] = AlertState(
                    model_id, channel, new_state, dedup_key, now, datetime.now(UTC)
                )
            self.transitions.append((model_id, channel, expected_state, new_state, ok))
            return ok

    def set(self, state: AlertState) -> None:
        """Seed a row (tests)."""
        with self._lock:
            self._rows[(state.model_id, state.channel)] = replace(state)


class RecordingNotifier:
    """In-process :class:`Notifier`: records alerts; can be told to fail the next N sends."""

    def __init__(self, channel: str = "pagerduty") -> None:
        self._channel = channel
        self.sent: list[Alert] = []
        self.failures_left = 0

    @property
    def channel(self) -> str:
        return self._channel

    def fail_next(self, n: int = 1) -> None:
        self.failures_left = n

    def send(self, alert: Alert) -> None:
        if self.failures_left > 0:
            self.failures_left -= 1
            raise DeliveryFailed(f"{self._channel}: simulated delivery failure")
        self.sent.append(alert)

    @property
    def actions(self) -> list[str]:
        return [a.action for a in self.sent]
