"""Fixtures of the central-link tests: a real Mosquitto on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.mosquitto import Broker, mosquitto_available


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A running broker with persistence; stopped (never left running) after the test."""
    if not mosquitto_available():
        pytest.skip("mosquitto is not installed (Debian package mosquitto; make system-deps)")
    b = Broker(tmp_path / "broker")
    b.start()
    try:
        yield b
    finally:
        b.kill()
