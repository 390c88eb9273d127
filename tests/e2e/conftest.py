"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

import uuid

import pytest
from drift_monitor.adapters import pubsub

PROJECT = "test-project"


@pytest.fixture
def topics(pubsub_emulator_host: str) -> dict[str, str]:
    """A batch topic, its dead-letter topic and the subscriptions of our own on the emulator."""
    name = f"embeddings-{uuid.uuid4().hex[:10]}"
    paths = pubsub.ensure_pipeline(
        PROJECT,
        name,
        dead_letter_topic=f"{name}-dead-letter",
        subscriptions=(f"{name}-persist", f"{name}-stats"),
    )
    return {
        "topic": name,
        "dead_letter": f"{name}-dead-letter",
        "persist": paths[f"{name}-persist"],
        "stats": paths[f"{name}-stats"],
        "dead_letter_sub": paths[f"{name}-dead-letter"],
    }
