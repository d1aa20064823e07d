"""Helpers for driver tests against simulated devices on pty pairs."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

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


R = TypeVar("R")


class Decoder(Protocol):
    """A sans-I/O codec: bytes in, readings (and rejects) out."""

    def feed(self, chunk: bytes) -> list[Any]: ...
    def flush(self) -> list[Any]: ...


def feed_all(decoder: Decoder, data: bytes, step: int = 0) -> list[Any]:
    """Feed ``data`` in chunks of ``step`` bytes (all at once for 0), then flush."""
    pieces = [data[i : i + step] for i in range(0, len(data), step)] if step else [data]
    return feed_pieces(decoder, pieces)


def feed_pieces(decoder: Decoder, pieces: list[bytes]) -> list[Any]:
    """Feed the pieces as reads from a port would bring them, then flush."""
    out: list[Any] = []
    for piece in pieces:
        out += decoder.feed(piece)
    return out + decoder.flush()


def bitwise_crc16(data: bytes) -> int:
    """CRC-16/MODBUS computed bit by bit: the oracle for the table-driven codec CRC."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


class Recorder(Generic[R]):
    """Queues what a supervisor hands on and records its state changes, for a test to await."""

    def __init__(self, maxsize: int = 10_000) -> None:
        self.readings: asyncio.Queue[R] = asyncio.Queue(maxsize=maxsize)
        self.states: list[str] = []
        self._changed = asyncio.Event()

    def on_reading(self, reading: R) -> None:
        self.readings.put_nowait(reading)

    def on_state(self, health: Health) -> None:
        self.states.append(health.state)
        self._changed.set()

    async def wait_state(self, state: str, limit_s: float = 5.0) -> None:
        """Until the last state change is to ``state``."""
        async with asyncio.timeout(limit_s):
            while not self.states or self.states[-1] != state:
                self._changed.clear()
                await self._changed.wait()


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
