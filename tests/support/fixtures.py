"""Pytest fixtures around :mod:`support.receiver`.

Use them from a test module or a ``conftest.py``::

    from support.fixtures import pagerduty_receiver  # noqa: F401  (pytest finds it by name)

(``tests/`` is on ``sys.path`` because ``tests/conftest.py`` lives there.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .receiver import Receiver

# A syntactically valid 32-character integration key for tests; not a real secret.
TEST_ROUTING_KEY = "R0UT1NGKEYFORTESTS0NLY0000000000"
assert len(TEST_ROUTING_KEY) == 32


@pytest.fixture
def pagerduty_receiver() -> Iterator[Receiver]:
    """A started loopback receiver expecting :data:`TEST_ROUTING_KEY`; stopped afterwards.

    Point ``PAGERDUTY_EVENTS_URL`` at ``receiver.events_url`` and a model's ``alert_webhook`` at
    ``receiver.webhook_url("name")``; the process must run with ``DRIFT_MONITOR_ENV=test`` (or
    ``local``) for loopback http to be accepted.
    """
    with Receiver(routing_key=TEST_ROUTING_KEY) as receiver:
        yield receiver
