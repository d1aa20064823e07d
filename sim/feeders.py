"""How a simulated truck's readings reach the lane: through a device speaking its real wire
protocol (a weighbridge indicator on a pty, an e-seal reader, ...) or, with ``direct``, handed
to the lane as events. The traffic model is the same either way: it says what each device
should now report, and the feeder makes the device report it.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import cv2
import numpy as np

from gatewayd.cameras import spawn_pool, stop_pool
from gatewayd.events import Event, GpsFix, QrScanned, SealRead, WeightStable
from gatewayd.judge import ReadingKind
from gatewayd.sources import ReadingSource
from sim.camera_server import MjpegServer, encode_jpeg
from sim.eseal_device import EsealReaderSim
from sim.gps_device import SimGps
from sim.qr_scanner_device import SimQrScanner
from sim.render import (
    ContainerMarking,
    ContainerView,
    PlateKind,
    render_container_view,
    render_plate_scene,
)
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

    async def stage(self, plate: str | None, containers: list[str] | None) -> None:
        """Get ready for the next truck before it arrives (cameras paint it)."""

    def arrive(self) -> None:
        """The staged truck is now at the lane (cameras see it)."""

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


class WireFeeder(Feeder):
    """A reading that reaches the lane through a device the lane opens itself (a pty, a
    camera stream): the lane has no simulated source for it."""

    DEVICE = ""

    @property
    def device_name(self) -> str:
        return self.DEVICE

    def source(self) -> ReadingSource | None:
        return None


class WeighbridgeFeeder(WireFeeder):
    """A Toledo indicator on a pty: the truck's weight is put on the deck and settles."""

    DEVICE = "weighbridge"

    def __init__(self, scale: float, seed: int) -> None:
        super().__init__("weight")
        self.scale = scale
        frames_per_s = 100.0 if scale < 1 else 10.0
        self.device = WeighbridgeSim(
            "toledo", time_scale=1 / scale, rate_hz=frames_per_s * scale, seed=seed
        )

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


class EsealFeeder(WireFeeder):
    """An e-seal reader on a pty: the truck's seal enters its field; it unlocks on command."""

    DEVICE = "eseal"

    def __init__(self, scale: float, seed: int) -> None:
        super().__init__("seal")
        self.scale = scale
        self.key = secrets.token_bytes(16)
        self.device = EsealReaderSim(self.key, seed=seed)

    def device_config(self) -> dict[str, Any]:
        fast = self.scale < 1
        return {
            "kind": "eseal",
            "port": self.device.path,
            "key": self.key.hex(),
            "poll_s": 0.02 if fast else 0.25,
            "reconnect_max_s": 0.2 if fast else 2.0,
        }

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


class GpsFeeder(WireFeeder):
    """A GPS receiver streaming NMEA on a pty: it reports the truck's terminal position while
    the truck is at the lane, and no fix otherwise."""

    DEVICE = "gps"

    def __init__(self, scale: float) -> None:
        super().__init__("gps")
        self.fast = scale < 1
        self.device = SimGps(transport="pty", rate_hz=1.0, speedup=50.0 if self.fast else 1.0)

    def device_config(self) -> dict[str, Any]:
        return {"kind": "nmea", "port": self.device.port, "silence_s": 1.0 if self.fast else 5.0}

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


class QrScannerFeeder(WireFeeder):
    """A fixed scanner in line mode on a pty: the driver holds the note to it."""

    DEVICE = "qr"

    def __init__(self) -> None:
        super().__init__("qr")
        self.device = SimQrScanner()

    def device_config(self) -> dict[str, Any]:
        return {"kind": "qr-scanner", "port": self.device.port}

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


def make_feeders(*, direct: bool, ocr: bool, scale: float, seed: int) -> dict[ReadingKind, Feeder]:
    """One feeder per reading kind: real protocols unless ``direct``; cameras with real OCR
    on rendered frames when ``ocr``."""
    feeders: dict[ReadingKind, Feeder] = {
        kind: Feeder(kind) for kind in ("plate", "containers", "qr", "seal", "weight", "gps")
    }
    if not direct:
        feeders["weight"] = WeighbridgeFeeder(scale, seed)
        feeders["seal"] = EsealFeeder(scale, seed)
        feeders["gps"] = GpsFeeder(scale)
        feeders["qr"] = QrScannerFeeder()
    if ocr:
        rig = CameraRig(seed)
        feeders["plate"] = CameraFeeder("plate", rig)
        feeders["containers"] = CameraFeeder("containers", rig)
    return feeders


class CameraRig:
    """Simulated gate cameras: an MJPEG server on loopback whose views show what the renderer
    paints for the truck at the lane (a plate scene in front, the containers at the side and
    back), read by the lane's real camera driver and OCR."""

    VIEWS: tuple[str, ...] = ("front", "side", "back", "top")

    def __init__(self, seed: int) -> None:
        self.server = MjpegServer(views=list(self.VIEWS), fps=5.0)
        self.seed = seed
        self._staged: dict[str, bytes] = {}
        self._empty: dict[str, bytes] = {}
        self._started = False
        self._count = 0
        self._painters: ProcessPoolExecutor | None = None

    async def start(self) -> None:
        """Serve (once for both feeders)."""
        if self._started:
            return
        self._started = True
        # painting is numpy and PIL work that holds the GIL: keep it out of the lane's process
        self._painters = await spawn_pool(2, os.nice, 10)
        await self.server.start()
        empty: dict[tuple[int, int], bytes] = {}
        for view in self.VIEWS:
            size = (1280, 720) if view == "front" else (1920, 1080)
            if size not in empty:
                empty[size] = await asyncio.to_thread(_empty_view, size)
            self._empty[view] = empty[size]
            self.server.show(view, self._empty[view])

    async def stop(self) -> None:
        """Stop serving."""
        if self._started:
            self._started = False
            await self.server.stop()
            if self._painters is not None:
                await stop_pool(self._painters)
                self._painters = None

    async def _paint(self, fn: Any, *args: Any) -> bytes:
        loop = asyncio.get_running_loop()
        result: bytes = await loop.run_in_executor(self._painters, fn, *args)
        return result

    def camera_settings(self) -> list[dict[str, Any]]:
        """The lane's [[cameras]] for these views."""
        frames = {"front": 2, "side": 1, "back": 1, "top": 1}
        return [
            {
                "name": view,
                "url": self.server.url(view),
                "burst_frames": frames[view],
                "burst_interval_s": 0.1,
                "burst_timeout_s": 5.0,
            }
            for view in self.VIEWS
        ]

    async def stage(self, plate: str | None, containers: list[str] | None) -> None:
        """Paint the next truck in the painter processes (a render takes a few hundred ms)."""
        self._count += 1
        seed = self.seed * 100_003 + self._count
        rng = random.Random(seed)
        jobs = {}
        if plate is not None:
            jobs["front"] = self._paint(_plate_jpeg, plate, seed, rng.uniform(0.2, 0.6))
        if containers:
            marks = [ContainerMarking(c, rng.choice(("45G1", "22G1", "42G1"))) for c in containers]
            for view in ("side", "back", "top"):
                jobs[view] = self._paint(_container_jpeg, marks, view, seed, rng.uniform(0.2, 0.5))
        results = await asyncio.gather(*jobs.values())
        self._staged = dict(zip(jobs, results, strict=True))

    def show(self) -> None:
        """The staged truck is in front of the cameras."""
        for view in self.VIEWS:
            self.server.show(view, self._staged.get(view, self._empty[view]))

    def clear(self) -> None:
        """The lane is empty again."""
        for view in self.VIEWS:
            self.server.show(view, self._empty[view])


class CameraFeeder(WireFeeder):
    """Plates or container numbers read by the lane's cameras from rendered frames."""

    def __init__(self, kind: ReadingKind, rig: CameraRig) -> None:
        super().__init__(kind)
        self.rig = rig

    @property
    def device_name(self) -> str:
        return f"{self.kind}-camera"

    def device_config(self) -> dict[str, Any]:
        views = ["front"] if self.kind == "plate" else ["side", "back", "top"]
        return {"kind": "camera", "views": views}

    async def start(self) -> None:
        await self.rig.start()

    async def stop(self) -> None:
        await self.rig.stop()

    async def stage(self, plate: str | None, containers: list[str] | None) -> None:
        if self.kind == "plate":  # one rig paints every view, once per truck
            await self.rig.stage(plate, containers)

    def arrive(self) -> None:
        if self.kind == "plate":
            self.rig.show()

    def present(self, event: Event) -> None:
        """Cameras see the truck from its arrival (``arrive``), not reading by reading."""

    def clear(self) -> None:
        self.rig.clear()

    async def fail(self) -> None:
        self.rig.server.freeze("front" if self.kind == "plate" else "side")

    async def recover(self) -> None:
        self.rig.server.freeze("front" if self.kind == "plate" else "side", False)


def _empty_view(size: tuple[int, int]) -> bytes:
    w, h = size
    image = np.full((h, w, 3), 90, dtype=np.uint8)
    cv2.rectangle(image, (0, int(h * 0.7)), (w, h), (70, 70, 70), -1)  # the road
    return encode_jpeg(image, 85)


def _plate_jpeg(plate: str, seed: int, difficulty: float) -> bytes:
    kind: PlateKind = "green" if len(plate) == 8 else ("yellow" if seed % 4 else "blue")
    return encode_jpeg(render_plate_scene(plate, kind, seed, difficulty=difficulty).image, 85)


def _container_jpeg(
    marks: list[ContainerMarking], view: ContainerView, seed: int, difficulty: float
) -> bytes:
    image = render_container_view(marks, view, seed, difficulty=difficulty).image
    return encode_jpeg(image, 85)
