"""Helpers for driver tests against simulated devices on pty pairs."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from drivers.supervisor import Health, Supervisor


async def eventually(
    condition: Callable[[], object], within: float = 5.0, what: str = "condition"
) -> float:
    """Wait until ``condition()`` is true (polling the real line's progress); return the wait.

    The devices run on real ptys, so their progress is real time; this waits for an outcome
    instead of sleeping a fixed time.
    """
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > within:
            raise AssertionError(f"{what} not reached within {within:g} s")
        await asyncio.sleep(0.005)
    return time.monotonic() - start


@dataclass
class Collected:
    """What a running supervisor delivered: (monotonic time, reading), and state changes."""

    readings: list[tuple[float, Any]] = field(default_factory=list)
    states: list[tuple[float, str]] = field(default_factory=list)

    def on_reading(self, reading: object) -> None:
        self.readings.append((time.monotonic(), reading))

    def on_state(self, health: Health) -> None:
        self.states.append((time.monotonic(), health.state))

    def of(self, kind: type, since: float = 0.0) -> list[Any]:
        """Readings of one type delivered at or after ``since``."""
        return [r for t, r in self.readings if t >= since and isinstance(r, kind)]


@contextlib.asynccontextmanager
async def running(supervisor: Supervisor[Any]) -> AsyncIterator[Supervisor[Any]]:
    """Run a supervisor for the duration of the block, then cancel and await it."""
    task = asyncio.create_task(supervisor.run(), name=f"test-{supervisor.health.name}")
    try:
        yield supervisor
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
