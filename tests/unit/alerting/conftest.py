"""Fixtures for the alerting unit tests (fakes live in ``alerting_fakes.py``)."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from alerting_fakes import PUBLIC_HOSTS, FakeClock, ScriptedTransport, fake_resolver
from drift_monitor.adapters.http_delivery import HttpDelivery, RetryPolicy
from drift_monitor.adapters.url_safety import UrlPolicy


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def transport() -> ScriptedTransport:
    return ScriptedTransport()


@pytest.fixture
def make_delivery(clock: FakeClock, transport: ScriptedTransport) -> Callable[..., HttpDelivery]:
    def make(
        *,
        production: bool = True,
        hosts: Mapping[str, Sequence[str]] | None = None,
        **kwargs: Any,
    ) -> HttpDelivery:
        retry = kwargs.pop("retry", RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=8.0))
        return HttpDelivery(
            policy=UrlPolicy(allow_loopback=not production),
            retry=retry,
            sleep=clock.sleep,
            clock=clock,
            wall_clock=lambda: 1_700_000_000.0,
            rng=random.Random(7),
            resolver=fake_resolver(hosts if hosts is not None else PUBLIC_HOSTS),
            transport=transport,
            **kwargs,
        )

    return make
