"""Where readings come from: the interface every reading device presents to the lane.

A source owns one device (camera set, scanner, e-seal reader, weighbridge, GPS), turns what it
reads into core events, and reports its health. Which implementation runs is the device's
``kind`` in the config, so swapping a simulated device for a real one is a config change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from gatewayd.events import Event
from gatewayd.judge import ReadingKind

Emit = Callable[[Event], None]


@runtime_checkable
class ReadingSource(Protocol):
    """One device that gives the lane one kind of reading."""

    name: str  # device name in alerts and health, e.g. "weighbridge"
    kind: ReadingKind

    async def run(self, emit: Emit) -> None:
        """Read until cancelled; emit readings, and DeviceFault/DeviceRecovered on changes."""
        ...


@runtime_checkable
class Triggered(Protocol):
    """A source that reads on demand when a vehicle arrives (cameras take a burst)."""

    def trigger(self, pass_id: str) -> None:
        """Start reading for this pass; must return at once."""
        ...


@runtime_checkable
class PassAware(Protocol):
    """A source that wants to know when a pass ends (to forget that truck's readings)."""

    def pass_closed(self, pass_id: str) -> None:
        """The pass is over; must return at once."""
        ...


@runtime_checkable
class SealActuator(Protocol):
    """A source that can also unlock or arm the e-seal it reads."""

    async def unlock(self, seal_id: str) -> None:
        """Unlock the seal; raises on failure."""
        ...

    async def arm(self, seal_id: str) -> None:
        """Arm the seal; raises on failure."""
        ...


@runtime_checkable
class DisplaySink(Protocol):
    """The driver's display at the lane."""

    def show(self, text: str) -> None:
        """Show a message; must return at once."""
        ...
