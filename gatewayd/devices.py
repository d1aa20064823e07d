"""Real reading devices as the lane sees them: a supervised driver whose readings become core
events and whose health becomes DeviceFault / DeviceRecovered.

A device that reports only changes (a seal entering the reader's field, a weight settling) may
have reported before the truck tripped the arrival loop; such a source keeps its current
reading and repeats it when the lane opens a pass (``trigger``), so nothing depends on which
sensor a truck reaches first. Only a reading taken since the last pass closed is repeated, and
never one from before a reconnect: closing a pass and going down both forget it (the
weighbridge and the e-seal reader, which see their deck or field empty, keep a reading taken
after the last truck left: ``QueueAwareSource``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from drivers.eseal import EsealReader, NoSeal, SealReading
from drivers.gps import GpsFix as GpsDriverFix
from drivers.gps import GpsSettings, gps_supervisor
from drivers.qr import QrScan, QrScannerSettings, qr_scanner_supervisor
from drivers.supervisor import Health, Supervisor
from drivers.weighbridge import ScaleStatus, StableWeight, Weighbridge, WeightReading
from gatewayd.events import (
    DeviceFault,
    DeviceRecovered,
    Event,
    GpsFix,
    QrScanned,
    SealRead,
    WeightStable,
)
from gatewayd.judge import ReadingKind
from gatewayd.sources import Emit

log = logging.getLogger(__name__)

R = TypeVar("R")


class DriverSource(Generic[R]):
    """One supervised device feeding the lane."""

    def __init__(
        self,
        name: str,
        kind: ReadingKind,
        make_supervisor: Callable[[Callable[[R], None], Callable[[Health], None]], Supervisor[R]],
    ) -> None:
        self.name = name
        self.kind: ReadingKind = kind
        self._make_supervisor = make_supervisor
        self._emit: Emit | None = None
        self.current: Event | None = None  # the reading that still holds now
        self.repeats = True  # repeat ``current`` when a pass opens
        self.health: Health | None = None

    async def run(self, emit: Emit) -> None:
        """Keep the device open and feed the lane until cancelled."""
        self._emit = emit
        supervisor = self._make_supervisor(self._on_reading, self._on_state)
        self.health = supervisor.health
        await supervisor.run()

    def convert(self, reading: R) -> Event | None:
        """The core event a driver reading stands for, or None (subclasses decide)."""
        raise NotImplementedError

    def _on_reading(self, reading: R) -> None:
        event = self.convert(reading)
        if event is not None and self._emit is not None:
            if self.repeats:
                self.current = event
            self._emit(event)

    def _on_state(self, health: Health) -> None:
        if self._emit is None:
            return
        if health.state == "up":
            self._emit(DeviceRecovered(self.name))
        else:
            self.current = None
            self._emit(DeviceFault(self.name, health.detail))

    def trigger(self, pass_id: str) -> None:
        """A pass opened: repeat the reading that still holds, if any."""
        if self.current is not None and self._emit is not None:
            self._emit(self.current)

    def pass_closed(self, pass_id: str) -> None:
        """A pass ended: what was read belonged to that truck, never to the next one."""
        self.current = None


class QueueAwareSource(DriverSource[R]):
    """A device that sees its deck or field empty between trucks and reports a reading once.

    In a queue the next truck may reach the device while the last pass is still open (its
    truck beyond the barrier, the arm not yet down). When the deck or field was empty after
    the pass's own reading, what is read next is the next truck's: it is kept for its pass
    instead of being forgotten with the last one, as the device will not report it again.
    """

    _read = False  # the open pass has had a reading
    _emptied_since = False  # the deck or field was empty after it

    def _took_reading(self) -> None:
        self._read = True

    def _run_over(self, emptied: bool) -> None:
        """The reading no longer holds; ``emptied``: nothing is on the deck or in the field."""
        self.current = None
        if emptied and self._read:
            self._emptied_since = True

    def trigger(self, pass_id: str) -> None:
        """A pass opened: its truck's reading is the one that holds now, or the next one."""
        self._read, self._emptied_since = self.current is not None, False
        super().trigger(pass_id)

    def pass_closed(self, pass_id: str) -> None:
        """Forget the closed pass's reading, but not one taken after its truck left."""
        if not (self._emptied_since and self.current is not None):
            self.current = None
        self._read = self._emptied_since = False


class WeighbridgeSource(QueueAwareSource[Any]):
    """A weighbridge indicator: a stable gross weight becomes ``WeightStable``.

    Motion, overload and negative readings are never weights, and a stable weight below
    ``min_vehicle_kg`` is the empty deck, not a truck. The scale reports a settled weight once.
    """

    def __init__(self, device: Weighbridge, *, name: str, min_vehicle_kg: float) -> None:
        super().__init__(name, "weight", lambda r, s: device.supervisor(r, s, name=name))
        self.device = device
        self.min_vehicle_kg = min_vehicle_kg

    def convert(self, reading: Any) -> Event | None:
        if isinstance(reading, StableWeight):
            if reading.kg < self.min_vehicle_kg:
                self._run_over(emptied=True)
                return None
            self._took_reading()
            return WeightStable(reading.kg)
        if isinstance(reading, WeightReading):
            gross = reading.gross_kg
            if gross is not None and gross < self.min_vehicle_kg:
                self._run_over(emptied=True)
            elif reading.motion:
                self._run_over(emptied=False)
        elif isinstance(reading, ScaleStatus):
            self._run_over(emptied=False)
        return None


class EsealSource(QueueAwareSource[Any]):
    """An e-seal reader: the seal in the field becomes ``SealRead``; also unlocks and arms.
    The reader reports a seal once, when it enters the field."""

    def __init__(self, device: EsealReader, *, name: str) -> None:
        super().__init__(name, "seal", lambda r, s: device.supervisor(r, s, name=name))
        self.device = device

    def convert(self, reading: Any) -> Event | None:
        if isinstance(reading, SealReading):
            self._took_reading()
            return SealRead(reading.seal_id, reading.state, reading.battery_pct)
        if isinstance(reading, NoSeal):
            self._run_over(emptied=True)
        return None

    async def unlock(self, seal_id: str) -> None:
        """Unlock the seal (entry lanes, after a release)."""
        await self.device.unlock(seal_id)

    async def arm(self, seal_id: str) -> None:
        """Arm the seal (exit lanes, after a release)."""
        await self.device.arm(seal_id)


class GpsSource(DriverSource[Any]):
    """The vehicle terminal's GPS: each valid fix becomes ``GpsFix``.

    Fixes stream continuously, so none is repeated at arrival (it could be the last truck's).
    """

    def __init__(self, settings: GpsSettings, *, name: str, clock: Callable[[], float]) -> None:
        super().__init__(
            name,
            "gps",
            lambda r, s: gps_supervisor(settings, r, on_state=s, clock=clock, name=name),
        )
        self.repeats = False

    def convert(self, reading: Any) -> Event | None:
        if isinstance(reading, GpsDriverFix) and reading.valid:
            return GpsFix(reading.lat, reading.lon, True, reading.timestamp)
        return None


class QrScannerSource(DriverSource[Any]):
    """A fixed QR scanner: each code read becomes ``QrScanned`` (the core folds repeats).

    A driver shows the note when the display asks, so no scan is repeated at arrival.
    """

    def __init__(self, settings: QrScannerSettings, *, name: str) -> None:
        super().__init__(
            name, "qr", lambda r, s: qr_scanner_supervisor(settings, r, on_state=s, name=name)
        )
        self.repeats = False

    def convert(self, reading: Any) -> Event | None:
        if isinstance(reading, QrScan):
            return QrScanned(reading.payload)
        return None
