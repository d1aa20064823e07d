"""Simulated traffic: trucks arrive, present their readings, wait, drive through or turn away.

Each truck trips the arrival loop, its readings reach the lane's devices after realistic delays,
and it then does what a driver does: when the barrier is up it drives under it (safety loop,
then exit loop), and when the display sends it to inspection or turns it away it leaves. All
times are multiplied by ``scale`` so tests can run the same traffic a hundred times faster.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from drivers.release_note import ReleaseNote
from gatewayd.daemon import Lane, PassTiming
from gatewayd.events import (
    ContainerSeen,
    ContainersRead,
    Event,
    GpsFix,
    PlateRead,
    QrScanned,
    SealRead,
    WeightStable,
)
from gatewayd.judge import ReadingKind
from gatewayd.reasons import Code, Outcome, Reason, outcome_of
from sim.central import SimCentral
from sim.feeders import CameraFeeder, Feeder
from sim.relay import SimRelay
from sim.scenario import GpsSpec, NoteSpec, QrSpec, VehicleSpec, fence_points, resolve_time

log = logging.getLogger(__name__)

# When each reading reaches its device after the truck stops, in seconds (before scaling).
READING_DELAYS: dict[ReadingKind, tuple[float, float]] = {
    "plate": (0.3, 0.8),
    "containers": (0.5, 1.2),
    "qr": (0.8, 3.0),
    "seal": (0.3, 1.5),
    "weight": (1.0, 2.5),
    "gps": (0.1, 1.0),
}
DRIVE = (  # from the barrier fully open: (seconds, loop, occupied)
    (0.3, "safety", True),
    (1.0, "exit", True),
    (1.2, "arrival", False),
    (2.2, "safety", False),
    (3.0, "exit", False),
)
TURN_AWAY_S = 1.0  # a held or rejected driver reads the display, then leaves
GAP_S = 1.0  # between one truck leaving and the next arriving


@dataclass
class VehicleResult:
    """What happened to one vehicle."""

    index: int
    vehicle: VehicleSpec
    pass_id: str | None = None
    outcome: Outcome | None = None
    codes: tuple[str, ...] = ()
    details: tuple[str, ...] = ()
    decision_ms: float | None = None
    lane_s: float | None = None
    arrived_at: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def wrong(self) -> bool:
        """The lane's decision (or reasons, where the scenario names them) differ."""
        if self.outcome is not self.vehicle.expect:
            return True
        expected = self.vehicle.reasons
        return expected is not None and set(self.codes) != {c.value for c in expected}


class Traffic:
    """Drives the scenario's vehicles through the lane, one after another."""

    def __init__(
        self,
        *,
        relay: SimRelay,
        feeders: dict[ReadingKind, Feeder],
        central: SimCentral,
        notes: dict[str, NoteSpec],
        geofence: list[tuple[float, float]],
        scale: float,
        start: float,
        rng: random.Random,
        decision_timeout_s: float,
        on_result: Callable[[VehicleResult], None] = lambda r: None,
    ) -> None:
        self.relay = relay
        self.feeders = feeders
        self.has_cameras = any(isinstance(f, CameraFeeder) for f in feeders.values())
        self.lane: Lane | None = None  # set once the lane exists (it observes this traffic)
        self.central = central
        self.notes = notes
        self.inside, self.outside = fence_points(geofence)
        self.scale = scale
        self.start = start
        self.rng = rng
        self.decision_timeout_s = decision_timeout_s
        self.on_result = on_result
        self._opened: asyncio.Queue[PassTiming] = asyncio.Queue()
        self._decided: asyncio.Queue[PassTiming] = asyncio.Queue()
        self._finished: asyncio.Queue[PassTiming] = asyncio.Queue()

    # -- LaneObserver ----------------------------------------------------------------------------

    def pass_opened(self, timing: PassTiming) -> None:
        """The lane noticed the truck and greeted it."""
        self._opened.put_nowait(timing)

    def pass_decided(self, timing: PassTiming) -> None:
        """The lane carried out a decision."""
        self._decided.put_nowait(timing)

    def pass_finished(self, timing: PassTiming) -> None:
        """The lane closed a pass."""
        self._finished.put_nowait(timing)

    # -- traffic ---------------------------------------------------------------------------------

    async def run(self, vehicles: list[VehicleSpec]) -> list[VehicleResult]:
        """Drive every vehicle through; return what happened to each."""
        results = []
        released: set[str] = set()  # notes a truck was let through on in this run
        for index, vehicle in enumerate(vehicles, start=1):
            result = await self.drive(index, self._as_run_went(vehicle, released))
            results.append(result)
            if result.outcome is Outcome.RELEASE and vehicle.qr and vehicle.qr.note:
                released.add(vehicle.qr.note)
            self.on_result(result)
            await asyncio.sleep(GAP_S * self.scale)
        return results

    def _as_run_went(self, vehicle: VehicleSpec, released: set[str]) -> VehicleSpec:
        """The vehicle's expectation given what the lane did before it. A truck coming back
        with a note already used expects NOTE_USED; but when the lane held the truck that
        first showed the note (OCR doubt, say), the note is still unused and this is its
        first use: it is expected to pass as that first truck was."""
        note = vehicle.qr.note if vehicle.qr else None
        seeded = self.notes.get(note) if note else None
        if (
            vehicle.reasons is None
            or Code.NOTE_USED not in vehicle.reasons
            or note is None
            or note in released
            or seeded is None
            or seeded.status != "active"
        ):
            return vehicle
        first_use = [c for c in vehicle.reasons if c is not Code.NOTE_USED]
        return vehicle.model_copy(
            update={
                "expect": outcome_of(tuple(Reason(c, "") for c in first_use)),
                "reasons": first_use,
                "label": f"{vehicle.label} (a first use: its note's first truck was held)",
            }
        )

    async def _sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds * self.scale)

    async def drive(self, index: int, vehicle: VehicleSpec) -> VehicleResult:
        """One truck: arrive, present readings, then pass or turn away."""
        result = VehicleResult(index, vehicle, arrived_at=time.time())
        for feeder in self.feeders.values():
            await feeder.stage(vehicle.plate, vehicle.containers)
        result.arrived_at = time.time()
        for kind in vehicle.faults:
            await self.feeders[kind].fail()
        for feeder in self.feeders.values():
            feeder.arrive()
        if self.has_cameras:
            await asyncio.sleep(0.25)  # cameras stream the truck before the loop trips
        self.relay.set_loop("arrival", True)
        try:  # the driver waits for the display's greeting before showing anything
            async with asyncio.timeout(self.decision_timeout_s):
                await self._opened.get()
        except TimeoutError:
            result.problems.append("lane never noticed the truck")
            self.relay.set_loop("arrival", False)
            return result
        feeders = [
            asyncio.create_task(self._feed(kind, event), name=f"feed:{kind}")
            for kind, event in self._readings(vehicle)
        ]
        try:
            async with asyncio.timeout(self.decision_timeout_s):
                timing = await self._decided.get()
        except TimeoutError:
            result.problems.append("no decision in time")
            self.relay.set_loop("arrival", False)
            return result
        finally:
            for task in feeders:
                task.cancel()
            await asyncio.gather(*feeders, return_exceptions=True)
        result.pass_id, result.outcome = timing.pass_id, timing.outcome
        if timing.record is not None:
            result.codes = tuple(r.code.value for r in timing.record.reasons)
            result.details = tuple(str(r) for r in timing.record.reasons)
        result.decision_ms = timing.decision_ms
        if timing.outcome is Outcome.RELEASE:
            await self._pass_through(result)
        else:
            await self._sleep(TURN_AWAY_S)
            self.relay.set_loop("arrival", False)
        try:
            async with asyncio.timeout(10 + 10 * self.scale):
                done = await self._finished.get()
            result.lane_s = done.lane_s
        except TimeoutError:
            result.problems.append("pass never closed")
        for feeder in self.feeders.values():
            feeder.clear()
        for kind in vehicle.faults:
            await self.feeders[kind].recover()
        await self._devices_back(result, [self.feeders[k].device_name for k in vehicle.faults])
        return result

    async def _devices_back(self, result: VehicleResult, names: list[str]) -> None:
        """Wait for repaired devices to be back in the lane before the next truck."""
        lane = self.lane
        if lane is None or not names:
            return
        try:
            async with asyncio.timeout(15):
                await lane.wait_for(lambda: not set(names) & set(lane.core.faults))
        except TimeoutError:
            result.problems.append(f"devices not back: {names}")

    async def _pass_through(self, result: VehicleResult) -> None:
        try:
            async with asyncio.timeout(10 + 10 * self.scale):
                await self.relay.wait_position("open")
        except TimeoutError:
            result.problems.append("barrier never opened after a release")
            self.relay.set_loop("arrival", False)
            return
        elapsed = 0.0
        for at, loop, occupied in DRIVE:
            await self._sleep(at - elapsed)
            elapsed = at
            self.relay.set_loop(loop, occupied)

    async def _feed(self, kind: ReadingKind, event: Event) -> None:
        low, high = READING_DELAYS[kind]
        await self._sleep(self.rng.uniform(low, high))
        self.feeders[kind].present(event)

    def _readings(self, v: VehicleSpec) -> list[tuple[ReadingKind, Event]]:
        out: list[tuple[ReadingKind, Event]] = []
        confidence = round(self.rng.uniform(0.9, 0.99), 3)
        if v.plate is not None:
            out.append(("plate", PlateRead(v.plate, confidence)))
        if v.containers is not None:
            seen = tuple(ContainerSeen(c, True, confidence) for c in v.containers)
            out.append(("containers", ContainersRead(seen)))
        if v.qr is not None:
            out.append(("qr", QrScanned(self.payload(v.qr))))
        if v.seal is not None:
            out.append(("seal", SealRead(v.seal.id, v.seal.state)))
        if v.weight_kg is not None:
            out.append(("weight", WeightStable(v.weight_kg)))
        fix = self.gps_fix(v.gps)
        if fix is not None:
            out.append(("gps", fix))
        return out

    def gps_fix(self, spec: GpsSpec | str | None) -> GpsFix | None:
        """The fix the vehicle's terminal reports."""
        if spec is None:
            return None
        if isinstance(spec, GpsSpec):
            return GpsFix(spec.lat, spec.lon, spec.valid, time.time())
        lat, lon = self.inside if spec == "gate" else self.outside
        return GpsFix(lat, lon, True, time.time())

    def payload(self, qr: QrSpec) -> str:
        """The QR payload a driver shows, signed (or forged) by central."""
        if qr.raw is not None:
            return qr.raw
        assert qr.note is not None  # the model requires note or raw
        note = self.notes.get(qr.note)
        plate = qr.plate or (note.plate if note else None)
        valid_from = qr.valid_from or (note.valid_from if note else None)
        valid_until = qr.valid_until or (note.valid_until if note else None)
        containers = (
            qr.containers if qr.containers is not None else (note.containers if note else [])
        )
        if plate is None or valid_from is None or valid_until is None:
            raise ValueError(
                f"qr for note {qr.note!r}: not in the ledger, so give plate and validity"
            )
        release = ReleaseNote(
            qr.note,
            plate,
            tuple(containers),
            int(resolve_time(valid_from, self.start)),
            int(resolve_time(valid_until, self.start)),
        )
        return self.central.forge(release) if qr.forged else self.central.sign(release)
