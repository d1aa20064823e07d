"""How a simulated truck's readings reach the lane: through a device speaking its real wire
protocol (a weighbridge indicator on a pty, an e-seal reader, ...) or, with ``direct``, handed
to the lane as events. The traffic model is the same either way: it says what each device
should now report, and the feeder makes the device report it.
"""

from __future__ import annotations

import secrets
from typing import Any

from gatewayd.events import Event, GpsFix, QrScanned, SealRead, WeightStable
from gatewayd.judge import ReadingKind
from gatewayd.sources import ReadingSource
from sim.eseal_device import EsealReaderSim
from sim.gps_device import SimGps
from sim.qr_scanner_device import SimQrScanner
from sim.sources import SimSeal, SimSource
from sim.weighbridge_device import WeighbridgeSim


class Feeder:
    """Readings handed straight to the lane (no wire protocol)."""

    def __init__(self, kind: ReadingKind) -> None:
        self.kind: ReadingKind = kind
        self.sim_source: SimSource = SimSeal() if kind == "seal" else SimSource(kind)

    @property
    def device_name(self) -> str:
        """The name the lane gives the device (in faults and alerts)."""
        return self.sim_source.name

    def device_config(self) -> dict[str, Any]:
        """This device's entry under [devices] in the lane config."""
        return {"kind": "sim"}

    def source(self) -> ReadingSource | None:
        """The lane's source when readings go direct; None for a real device."""
        return self.sim_source

    async def start(self) -> None:
        """Plug the device in."""

    async def stop(self) -> None:
        """Remove the device."""

    def present(self, event: Event) -> None:
        """The truck's reading reaches the device."""
        self.sim_source.push(event)

    def clear(self) -> None:
        """The truck left: the device reads nothing."""

    async def fail(self) -> None:
        """The device goes down (a pulled cable)."""
        self.sim_source.fail("simulated outage")

    async def recover(self) -> None:
        """The device comes back."""
        self.sim_source.recover()


class WeighbridgeFeeder(Feeder):
    """A Toledo indicator on a pty: the truck's weight is put on the deck and settles."""

    def __init__(self, scale: float, seed: int) -> None:
        super().__init__("weight")
        self.scale = scale
        frames_per_s = 100.0 if scale < 1 else 10.0
        self.device = WeighbridgeSim(
            "toledo", time_scale=1 / scale, rate_hz=frames_per_s * scale, seed=seed
        )

    @property
    def device_name(self) -> str:
        return "weighbridge"

    def device_config(self) -> dict[str, Any]:
        s = self.scale
        return {
            "kind": "weighbridge",
            "port": self.device.path,
            "format": "toledo",
            "stability": {"band_kg": 20, "hold_s": 2.0 * s, "max_gap_s": max(1.0 * s, 0.1)},
            "silence_s": 2.0 if s >= 1 else 0.5,
            "reconnect_max_s": 2.0 if s >= 1 else 0.2,
        }

    def source(self) -> ReadingSource | None:
        return None

    async def start(self) -> None:
        await self.device.start()

    async def stop(self) -> None:
        await self.device.stop()

    def present(self, event: Event) -> None:
        if isinstance(event, WeightStable):
            self.device.set_load(event.kg)

    def clear(self) -> None:
        self.device.set_load(0.0)

    async def fail(self) -> None:
        self.device.unplug()

    async def recover(self) -> None:
        self.device.replug()


class EsealFeeder(Feeder):
    """An e-seal reader on a pty: the truck's seal enters its field; it unlocks on command."""

    def __init__(self, scale: float, seed: int) -> None:
        super().__init__("seal")
        self.scale = scale
        self.key = secrets.token_bytes(16)
        self.device = EsealReaderSim(self.key, seed=seed)

    @property
    def device_name(self) -> str:
        return "eseal"

    def device_config(self) -> dict[str, Any]:
        fast = self.scale < 1
        return {
            "kind": "eseal",
            "port": self.device.path,
            "key": self.key.hex(),
            "poll_s": 0.02 if fast else 0.25,
            "reconnect_max_s": 0.2 if fast else 2.0,
        }

    def source(self) -> ReadingSource | None:
        return None

    async def start(self) -> None:
        await self.device.start()

    async def stop(self) -> None:
        await self.device.stop()

    def present(self, event: Event) -> None:
        if isinstance(event, SealRead):
            self.device.set_seal(event.seal_id, event.state)

    def clear(self) -> None:
        self.device.remove_seal()

    async def fail(self) -> None:
        self.device.unplug()

    async def recover(self) -> None:
        self.device.replug()

    @property
    def unlocked(self) -> list[str]:
        """Seals the reader unlocked on the lane's command."""
        return [seal for command, seal, status in self.device.executed if status == "ok"]


class GpsFeeder(Feeder):
    """A GPS receiver streaming NMEA on a pty: it reports the truck's terminal position while
    the truck is at the lane, and no fix otherwise."""

    def __init__(self, scale: float) -> None:
        super().__init__("gps")
        self.fast = scale < 1
        self.device = SimGps(transport="pty", rate_hz=1.0, speedup=50.0 if self.fast else 1.0)

    @property
    def device_name(self) -> str:
        return "gps"

    def device_config(self) -> dict[str, Any]:
        return {"kind": "nmea", "port": self.device.port, "silence_s": 1.0 if self.fast else 5.0}

    def source(self) -> ReadingSource | None:
        return None

    async def start(self) -> None:
        self.device.set_position(0.0, 0.0, valid=False)
        await self.device.start()

    async def stop(self) -> None:
        await self.device.stop()

    def present(self, event: Event) -> None:
        if isinstance(event, GpsFix):
            self.device.set_position(event.lat, event.lon, valid=event.valid)

    def clear(self) -> None:
        self.device.set_position(0.0, 0.0, valid=False)

    async def fail(self) -> None:
        await self.device.unplug()

    async def recover(self) -> None:
        await self.device.plug()


class QrScannerFeeder(Feeder):
    """A fixed scanner in line mode on a pty: the driver holds the note to it."""

    def __init__(self) -> None:
        super().__init__("qr")
        self.device = SimQrScanner()

    @property
    def device_name(self) -> str:
        return "qr"

    def device_config(self) -> dict[str, Any]:
        return {"kind": "qr-scanner", "port": self.device.port}

    def source(self) -> ReadingSource | None:
        return None

    async def start(self) -> None:
        self.device.plug()

    async def stop(self) -> None:
        self.device.close()

    def present(self, event: Event) -> None:
        if isinstance(event, QrScanned):
            self.device.scan(event.payload)

    async def fail(self) -> None:
        self.device.unplug()

    async def recover(self) -> None:
        self.device.plug()


def make_feeders(*, direct: bool, scale: float, seed: int) -> dict[ReadingKind, Feeder]:
    """One feeder per reading kind: real protocols unless ``direct``."""
    feeders: dict[ReadingKind, Feeder] = {
        kind: Feeder(kind) for kind in ("plate", "containers", "qr", "seal", "weight", "gps")
    }
    if not direct:
        feeders["weight"] = WeighbridgeFeeder(scale, seed)
        feeders["seal"] = EsealFeeder(scale, seed)
        feeders["gps"] = GpsFeeder(scale)
        feeders["qr"] = QrScannerFeeder()
    return feeders
