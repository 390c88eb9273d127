"""Reliable JSON POST for alert destinations: timeouts, retries with backoff, circuit breakers.

One :class:`HttpDelivery` is shared by every notifier of a process. It

* checks the URL and the addresses it resolves to (:mod:`drift_monitor.adapters.url_safety`)
  before each attempt and connects to the checked address, never following redirects;
* retries connection errors, 429 and 5xx with exponential backoff and jitter, honouring
  ``Retry-After`` (seconds or an HTTP date) up to a cap, within a total time budget;
* never retries another 4xx (the request itself is wrong: retrying cannot help);
* keeps a circuit breaker per endpoint (``scheme://host:port``), so when PagerDuty is down the
  first few models pay the timeouts and every later model fails fast instead of stalling the
  whole detection run.

Sleeping, clocks, randomness, name resolution and the transport are injectable so unit tests
run instantly and deterministically.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from drift_monitor.adapters.url_safety import (
    ResolvedTarget,
    Resolver,
    UnsafeURLError,
    UrlPolicy,
    resolve_target,
)
from drift_monitor.domain.errors import DriftMonitorError

_log = logging.getLogger(__name__)

USER_AGENT = "drift-monitor/0.1 (+https://github.com/drift-monitor)"
MAX_RESPONSE_BYTES = 64 * 1024


class DeliveryError(DriftMonitorError):
    """A POST did not succeed. The message never contains the request body (it may hold secrets).

    Attributes
    ----------
    endpoint
        ``scheme://host:port`` of the destination.
    status
        The last HTTP status received, or None when no response came back.
    attempts
        How many requests were made (0 when the circuit was open or the URL refused).
    retryable
        Whether a later attempt could succeed (connection error, 429, 5xx, open circuit).
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        status: int | None = None,
        attempts: int = 0,
        retryable: bool = True,
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status
        self.attempts = attempts
        self.retryable = retryable


class CircuitOpenError(DeliveryError):
    """The endpoint's circuit breaker is open: no request was made."""


@dataclass(frozen=True)
class DeliveryResponse:
    """A 2xx answer."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    attempts: int

    def json(self) -> Any:
        """The body parsed as JSON (None when it is empty or not JSON)."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


@dataclass(frozen=True)
class RawResponse:
    """What a :class:`Transport` returns: status, headers (lower-case names) and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class Transport(Protocol):
    def __call__(
        self, target: ResolvedTarget, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> RawResponse:
        """Send one POST to ``target.ip``; raise ``OSError`` on connection failure or timeout."""
        ...


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Plain HTTP to a pre-checked address; the Host header still names the host."""

    def __init__(self, target: ResolvedTarget, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._ip = target.ip

    def connect(self) -> None:
        self.sock = socket.create_connection((self._ip, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to a pre-checked address, with SNI and certificate verification for the host name."""

    def __init__(self, target: ResolvedTarget, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=context)
        self._ip = target.ip
        self._pinned_context = context

    def connect(self) -> None:
        sock = socket.create_connection((self._ip, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self._pinned_context.wrap_socket(sock, server_hostname=self.host)


def http_client_transport(
    target: ResolvedTarget, body: bytes, headers: Mapping[str, str], timeout: float
) -> RawResponse:
    """The real :class:`Transport`: ``http.client`` connected to ``target.ip``; no redirects."""
    conn: http.client.HTTPConnection
    if target.scheme == "https":
        conn = _PinnedHTTPSConnection(target, timeout, ssl.create_default_context())
    else:
        conn = _PinnedHTTPConnection(target, timeout)
    try:
        conn.request("POST", target.path, body=body, headers=dict(headers))
        response = conn.getresponse()
        data = response.read(MAX_RESPONSE_BYTES)
        return RawResponse(
            status=response.status,
            headers={k.lower(): v for k, v in response.getheaders()},
            body=data,
        )
    except http.client.HTTPException as exc:  # malformed answer: treat like a dropped connection
        raise ConnectionError(f"bad HTTP response: {exc!r}") from exc
    finally:
        conn.close()


def _endpoint_of(url: str) -> str:
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"
    except ValueError:
        return "<invalid url>"


class CircuitBreaker:
    """Closed → open after ``failure_threshold`` consecutive failures → half-open after
    ``reset_timeout`` seconds, where one trial request is let through: success closes the
    circuit, failure opens it again for another ``reset_timeout``.

    Thread-safe; ``clock`` is a monotonic clock in seconds (injectable for tests).
    """

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if reset_timeout <= 0:
            raise ValueError("reset_timeout must be > 0")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probe_in_flight = False

    @property
    def state(self) -> str:
        with self._lock:
            return self._state_locked()

    def _state_locked(self) -> str:
        if self._opened_at is None:
            return self.CLOSED
        if self._clock() - self._opened_at >= self.reset_timeout:
            return self.HALF_OPEN
        return self.OPEN

    def allow(self) -> bool:
        """Whether a request may be made now (in half-open state: only one at a time)."""
        with self._lock:
            state = self._state_locked()
            if state == self.CLOSED:
                return True
            if state == self.HALF_OPEN and not self._probe_in_flight:
                self._probe_in_flight = True
                return True
            return False

    def retry_in(self) -> float:
        """Seconds until the circuit lets a trial request through (0 when closed)."""
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self.reset_timeout - (self._clock() - self._opened_at))

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._probe_in_flight = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            was_probe = self._probe_in_flight
            self._probe_in_flight = False
            if was_probe or self._failures >= self.failure_threshold:
                self._opened_at = self._clock()

    def release(self) -> None:
        """End a trial request that neither proved nor disproved the endpoint (e.g. a 400)."""
        with self._lock:
            self._probe_in_flight = False


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try.

    Parameters
    ----------
    max_attempts
        Requests per delivery, first one included.
    base_delay, max_delay
        Backoff before retry ``k`` (1-based) is drawn uniformly from
        ``[d/2, d]`` with ``d = min(max_delay, base_delay * 2**(k-1))`` ("equal jitter": spreads
        retries of concurrent senders while keeping a floor that grows).
    max_retry_after
        A ``Retry-After`` longer than this is not waited for: the delivery fails (retryable).
    total_budget
        Wall time one delivery may take, sleeps included; no retry starts past it.
    timeout
        Per-request connect/read timeout in seconds.
    """

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 30.0
    total_budget: float = 45.0
    timeout: float = 5.0

    def backoff(self, retry: int, rng: random.Random) -> float:
        ceiling = min(self.max_delay, self.base_delay * 2 ** (retry - 1))
        return rng.uniform(ceiling / 2, ceiling)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date); None if absent
    or unparseable. ``now`` is the current Unix time."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


@dataclass
class HttpDelivery:
    """POST JSON to alert destinations with URL checks, retries and per-endpoint breakers.

    Parameters
    ----------
    policy
        Which destinations are acceptable (:meth:`UrlPolicy.for_environment`).
    retry
        Attempts, backoff and timeouts.
    failure_threshold, reset_timeout
        Circuit breaker settings, per endpoint.
    sleep, clock, wall_clock, rng, resolver, transport
        Injectable for tests: ``time.sleep``, ``time.monotonic``, ``time.time``, a
        ``random.Random``, ``socket.getaddrinfo`` and :func:`http_client_transport`.
    """

    policy: UrlPolicy = field(default_factory=UrlPolicy)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    failure_threshold: int = 5
    reset_timeout: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=random.Random)
    resolver: Resolver = socket.getaddrinfo
    transport: Transport = http_client_transport
    _breakers: dict[str, CircuitBreaker] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def breaker(self, endpoint: str) -> CircuitBreaker:
        """The circuit breaker of ``endpoint`` (``scheme://host:port``), created on first use."""
        with self._lock:
            breaker = self._breakers.get(endpoint)
            if breaker is None:
                breaker = CircuitBreaker(self.failure_threshold, self.reset_timeout, self.clock)
                self._breakers[endpoint] = breaker
            return breaker

    def post_json(
        self,
        url: str,
        payload: Mapping[str, Any],
        *,
        field: str = "alert_webhook",
        headers: Mapping[str, str] | None = None,
    ) -> DeliveryResponse:
        """POST ``payload`` as JSON to ``url``; return the 2xx response.

        Raises
        ------
        UnsafeURLError
            ``url`` or an address it resolves to is refused (never retried, not a breaker
            failure).
        CircuitOpenError
            The endpoint's breaker is open; nothing was sent.
        DeliveryError
            A non-retryable answer (3xx, 4xx other than 429) or retries exhausted.
        """
        body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
        request_headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            **(headers or {}),
        }
        started = self.clock()
        attempts = 0
        endpoint = _endpoint_of(url)  # never the path: webhook paths are secrets (Slack)
        last_status: int | None = None
        last_problem = "no attempt made"
        while True:
            # Re-resolve and re-check on every attempt: the answer may have changed.
            try:
                target = resolve_target(url, self.policy, resolver=self.resolver, field=field)
            except UnsafeURLError:
                raise
            except (OSError, UnicodeError) as exc:
                target = None
                last_problem = f"name resolution failed: {exc!r}"
            if target is not None:
                endpoint = target.endpoint
                breaker = self.breaker(endpoint)
                if not breaker.allow():
                    raise CircuitOpenError(
                        f"circuit open for {endpoint} (retry in {breaker.retry_in():.0f}s); "
                        f"last problem: {last_problem}",
                        endpoint=endpoint,
                        status=last_status,
                        attempts=attempts,
                    )
                attempts += 1
                retry_after: float | None = None
                try:
                    raw = self.transport(target, body, request_headers, self.retry.timeout)
                except OSError as exc:
                    breaker.record_failure()
                    last_status = None
                    last_problem = f"connection failed: {exc.__class__.__name__}"
                else:
                    last_status = raw.status
                    if 200 <= raw.status < 300:
                        breaker.record_success()
                        _log.info(
                            "alert delivered",
                            extra={
                                "fields": {
                                    "endpoint": endpoint,
                                    "status": raw.status,
                                    "attempts": attempts,
                                }
                            },
                        )
                        return DeliveryResponse(raw.status, raw.headers, raw.body, attempts)
                    if raw.status == 429:
                        # The endpoint is alive, just busy: not a breaker failure.
                        breaker.release()
                        retry_after = parse_retry_after(
                            raw.headers.get("retry-after"), self.wall_clock()
                        )
                        last_problem = "rate limited (429)"
                    elif raw.status >= 500:
                        breaker.record_failure()
                        retry_after = parse_retry_after(
                            raw.headers.get("retry-after"), self.wall_clock()
                        )
                        last_problem = f"server error ({raw.status})"
                    else:
                        # 3xx (redirects are not followed) and other 4xx: the request is wrong.
                        breaker.release()
                        _log.error(
                            "alert rejected",
                            extra={"fields": {"endpoint": endpoint, "status": raw.status}},
                        )
                        raise DeliveryError(
                            f"{endpoint} answered {raw.status}; not retried",
                            endpoint=endpoint,
                            status=raw.status,
                            attempts=attempts,
                            retryable=False,
                        )
            else:
                attempts += 1
                retry_after = None
            if attempts >= self.retry.max_attempts:
                break
            delay = self.retry.backoff(attempts, self.rng)
            if retry_after is not None:
                if retry_after > self.retry.max_retry_after:
                    last_problem += f"; Retry-After {retry_after:.0f}s exceeds the cap"
                    break
                delay = max(delay, retry_after)
            if self.clock() - started + delay > self.retry.total_budget:
                last_problem += "; time budget exhausted"
                break
            _log.warning(
                "alert delivery failed, retrying",
                extra={
                    "fields": {
                        "endpoint": endpoint,
                        "status": last_status,
                        "attempt": attempts,
                        "delay_seconds": round(delay, 3),
                        "problem": last_problem,
                    }
                },
            )
            self.sleep(delay)
        _log.error(
            "alert delivery gave up",
            extra={
                "fields": {
                    "endpoint": endpoint,
                    "status": last_status,
                    "attempts": attempts,
                    "problem": last_problem,
                }
            },
        )
        raise DeliveryError(
            f"delivery to {endpoint} failed after {attempts} attempt(s): {last_problem}",
            endpoint=endpoint,
            status=last_status,
            attempts=attempts,
            retryable=True,
        )
