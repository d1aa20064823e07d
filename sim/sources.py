"""Simulated reading sources: the traffic model hands each device its reading at the right
moment, and the lane receives it through the same interface as from a real device."""

from __future__ import annotations

import asyncio

from gatewayd.events import DeviceFault, DeviceRecovered, Event
from gatewayd.judge import ReadingKind
from gatewayd.sources import Emit


class SimSource:
    """A device whose readings and faults the simulator decides."""

    def __init__(self, kind: ReadingKind, name: str | None = None) -> None:
        self.kind: ReadingKind = kind
        self.name = name or kind
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=256)
        self.down = False

    def push(self, event: Event) -> None:
        """Deliver a reading (dropped, as a dead device would, while the device is down)."""
        if not self.down:
            self._queue.put_nowait(event)

    def fail(self, detail: str = "simulated fault") -> None:
        """The device goes down."""
        if not self.down:
            self.down = True
            self._queue.put_nowait(DeviceFault(self.name, detail))

    def recover(self) -> None:
        """The device comes back."""
        if self.down:
            self.down = False
            self._queue.put_nowait(DeviceRecovered(self.name))

    async def run(self, emit: Emit) -> None:
        """Pass everything on to the lane until cancelled."""
        while True:
            emit(await self._queue.get())


class SimSeal(SimSource):
    """A simulated e-seal reader that also unlocks and arms."""

    def __init__(self) -> None:
        super().__init__("seal", "eseal")
        self.unlocked: list[str] = []
        self.armed: list[str] = []

    async def unlock(self, seal_id: str) -> None:
        """Unlock a seal (recorded for the simulator's checks)."""
        self.unlocked.append(seal_id)

    async def arm(self, seal_id: str) -> None:
        """Arm a seal (recorded for the simulator's checks)."""
        self.armed.append(seal_id)


class SimDisplay:
    """The driver's display: keeps what it shows."""

    def __init__(self) -> None:
        self.text = ""
        self.shown = 0

    def show(self, text: str) -> None:
        """Show a message."""
        self.text = text
        self.shown += 1
