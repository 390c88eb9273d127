"""Fakes for the alerting unit tests: a scripted resolver, transport, clock and sleep."""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from drift_monitor.adapters.http_delivery import RawResponse
from drift_monitor.adapters.url_safety import ResolvedTarget


def fake_resolver(table: Mapping[str, Sequence[str]]) -> Callable[..., list[tuple[Any, ...]]]:
    """A ``getaddrinfo`` stand-in answering from ``table`` (host -> addresses)."""

    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        out: list[tuple[Any, ...]] = []
        for ip in table[host]:
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            out.append((family, socket.SOCK_STREAM, 6, "", (ip, port)))
        return out

    return resolve


@dataclass
class FakeClock:
    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class ScriptedTransport:
    """Answers from a script: an int status, a (status, headers) pair, or an exception."""

    script: list[Any] = field(default_factory=list)
    calls: list[tuple[ResolvedTarget, bytes, dict[str, str]]] = field(default_factory=list)
    default: Any = 202

    def __call__(
        self, target: ResolvedTarget, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> RawResponse:
        self.calls.append((target, body, dict(headers)))
        step = self.script.pop(0) if self.script else self.default
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, tuple):
            status, response_headers = step
        else:
            status, response_headers = step, {}
        return RawResponse(status, response_headers, b'{"status":"success"}')


PUBLIC_HOSTS = {
    "events.pagerduty.com": ["44.242.69.192"],
    "hooks.slack.com": ["3.120.1.1", "2600:1f18::1"],
}
