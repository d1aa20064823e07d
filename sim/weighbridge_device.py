"""A simulated weighbridge indicator streaming Toledo or XK3190 frames over a pty.

The world calls ``set_load(kg)``: the display swings and settles like a truck rolling onto the
deck (motion frames for ``settle_s``), then holds the load rounded to the division. A load over
capacity + 9 divisions (or ``set_overload(True)``) is an overload. ``time_scale`` speeds up
everything (frame rate and settling) for fast tests; the driver's hold time must shrink with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from drivers.weighbridge import toledo_frame, xk3190_equals_frame, xk3190_frame
from sim.ptyport import PtyPort


class WeighbridgeSim:
    """An indicator on the master side of a pty; the driver opens ``path``."""

    def __init__(
        self,
        format: Literal["toledo", "xk3190"] = "toledo",
        *,
        time_scale: float = 1.0,
        rate_hz: float = 10.0,
        settle_s: float = 3.0,
        division_kg: float = 10.0,
        capacity_kg: float = 80_000.0,
        toledo_checksum: bool = True,
        toledo_tare: bool = True,
        xk3190_frames: Literal["stx", "equals"] = "stx",
        seed: int = 0,
        link: str | Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if time_scale <= 0 or rate_hz <= 0:
            raise ValueError("time_scale and rate_hz must be positive")
        self.format = format
        self.time_scale = time_scale
        self.rate_hz = rate_hz
        self.settle_s = settle_s
        self.division_kg = division_kg
        self.capacity_kg = capacity_kg
        self.toledo_checksum = toledo_checksum
        self.toledo_tare = toledo_tare
        self.xk3190_frames = xk3190_frames
        self._rng = random.Random(seed)
        self._clock = clock
        self.port = PtyPort(link=link)
        self._start_kg = 0.0
        self._target_kg = 0.0
        self._changed_at = -math.inf
        self._forced_overload = False
        self._muted = False
        self._task: asyncio.Task[None] | None = None
        self.frames_sent = 0

    # -- lifecycle

    @property
    def path(self) -> str:
        """The serial port path the driver opens."""
        return self.port.path

    async def start(self) -> None:
        """Plug in and start streaming."""
        self.port.open()
        if self._task is None:
            self._task = asyncio.create_task(self._stream(), name="weighbridge-sim")

    async def stop(self) -> None:
        """Stop streaming and remove the port."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.port.close()

    async def __aenter__(self) -> WeighbridgeSim:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- what the world sets

    def set_load(self, kg: float) -> None:
        """A new load on the deck: the display swings, then settles on it."""
        now = self._clock()
        self._start_kg = self.shown(now)[0]
        self._target_kg = kg
        self._changed_at = now

    def set_overload(self, on: bool) -> None:
        """Force the indicator into overload (or back out of it)."""
        self._forced_overload = on

    def mute(self, on: bool) -> None:
        """Stop sending (the port stays open), or resume."""
        self._muted = on

    def unplug(self) -> None:
        """Pull the cable."""
        self.port.unplug()

    def replug(self) -> None:
        """Plug the cable back in."""
        self.port.replug()

    def inject(self, data: bytes) -> None:
        """Put raw bytes on the line (noise, a broken frame)."""
        self.port.write(data)

    # -- what the indicator shows

    @property
    def settled(self) -> bool:
        """The display has stopped moving."""
        return (self._clock() - self._changed_at) * self.time_scale >= self.settle_s

    def shown(self, now: float) -> tuple[float, bool]:
        """Displayed kg and motion flag at ``now``."""
        elapsed = (now - self._changed_at) * self.time_scale
        if elapsed >= self.settle_s:
            return self._quantise(self._target_kg), False
        ramp = 0.4 * self.settle_s
        base = self._start_kg + (self._target_kg - self._start_kg) * min(1.0, elapsed / ramp)
        swing = abs(self._target_kg - self._start_kg) * 0.02 + 3 * self.division_kg
        wobble = swing * math.exp(-3 * elapsed / self.settle_s) * math.sin(3 * math.pi * elapsed)
        noise = self._rng.uniform(-1, 1) * self.division_kg
        return self._quantise(base + wobble + noise), True

    def _quantise(self, kg: float) -> float:
        return round(kg / self.division_kg) * self.division_kg

    @property
    def overloaded(self) -> bool:
        """The indicator is over its range."""
        return self._forced_overload or self._target_kg > self.capacity_kg + 9 * self.division_kg

    def frame(self, now: float) -> bytes:
        """The frame the indicator sends at ``now``."""
        kg, motion = self.shown(now)
        shown = min(int(abs(kg)), 999_999)
        negative = kg < 0
        if self.format == "toledo":
            return toledo_frame(
                0 if self.overloaded else shown,
                tare=0 if self.toledo_tare else None,
                negative=negative,
                out_of_range=self.overloaded,
                motion=motion,
                checksum=self.toledo_checksum,
            )
        if self.overloaded:
            shown = min(999_999, max(shown, int(self.capacity_kg + 10 * self.division_kg)))
        if self.xk3190_frames == "equals":
            return xk3190_equals_frame(min(shown, 9_999_999), negative=negative)
        return xk3190_frame(shown, negative=negative)

    async def _stream(self) -> None:
        period = 1.0 / (self.rate_hz * self.time_scale)
        while True:
            if not self._muted and self.port.plugged and self.port.write(self.frame(self._clock())):
                self.frames_sent += 1
            await asyncio.sleep(period)
