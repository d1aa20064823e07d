"""`gatewayd sim`: one lane against simulated hardware and traffic, with a report.

The relay is a real Modbus TCP server on loopback; the lane is the same ``Lane`` that
``gatewayd run`` starts, with its reading devices given by the simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from drivers.modbus_io import RelayIO, RelaySettings
from gatewayd.config import LaneConfig
from gatewayd.daemon import Lane
from gatewayd.judge import ReadingKind
from gatewayd.ledger import BookLineIn, Ledger, NoteIn
from gatewayd.reasons import Outcome
from gatewayd.runner import build_link, build_sources
from sim.central import SimCentral
from sim.feeders import CameraFeeder, EsealFeeder, make_feeders
from sim.relay import SimRelay
from sim.scenario import Scenario, resolve_time
from sim.sources import SimDisplay
from sim.world import Traffic, VehicleResult

FAST_SCALE = 0.01
# the simulated relay's coils and loop inputs, as a lane config's [relay] names them
WIRING: dict[str, dict[str, int]] = {
    "coils": {"barrier_up": 0, "barrier_down": 1, "light_green": 2, "light_red": 3},
    "inputs": {"arrival": 0, "safety": 1, "exit": 2, "barrier_open": 3, "barrier_closed": 4},
}
RELAY_WIRING = RelaySettings.model_validate({"transport": "tcp", "host": "127.0.0.1", **WIRING})
GEOFENCE = [
    (22.48210, 113.91020),
    (22.48210, 113.91180),
    (22.48090, 113.91180),
    (22.48090, 113.91020),
]


@dataclass(frozen=True)
class SimTiming:
    """Lane timings for a run at a given time scale (floors keep fast runs honest on a busy
    machine: a deadline shorter than scheduling jitter would test the machine, not the lane)."""

    scale: float
    ocr: bool = False  # camera readings come through OCR, which takes its real time

    @property
    def deadline_s(self) -> float:
        """The decision deadline: scaled, but never shorter than recognition needs."""
        return max(20 * self.scale, 8.0 if self.ocr else 1.0)

    def lane(self) -> dict[str, float | int]:
        s = self.scale
        return {
            "decision_deadline_s": self.deadline_s,
            "barrier_timeout_s": max(4 * s, 0.5),
            "settle_s": max(5 * s, 0.2),
            "withdraw_s": max(15 * s, 0.5),
            "leave_s": max(3 * s, 0.2),
            "ledger_timeout_s": max(5 * s, 0.5),
            "tick_ms": 10 if s < 1 else 50,
        }

    @property
    def poll_ms(self) -> int:
        return 5 if self.scale < 1 else 20


def sim_config(
    scenario: Scenario,
    *,
    public_key: str,
    ledger: Path,
    relay_port: int,
    timing: SimTiming,
    devices: Mapping[ReadingKind, dict[str, Any]],
    extra: Mapping[str, Any] | None = None,
) -> LaneConfig:
    """The config of the simulated lane."""
    return LaneConfig.model_validate(
        {
            "lane": {
                "id": "sim-lane-1",
                "site": "sim-site",
                "direction": scenario.lane.direction,
                "profile": scenario.lane.profile,
            },
            "central": {"public_keys": [public_key]},
            "ledger": {"path": str(ledger), "synchronous": "FULL"},
            "timing": timing.lane(),
            "geofence": {"polygon": GEOFENCE},
            "relay": {
                "transport": "tcp",
                "host": "127.0.0.1",
                "port": relay_port,
                "poll_ms": timing.poll_ms,
                "timeout_s": 1.0,
                **WIRING,
            },
            "devices": devices,
            **(extra or {}),
        }
    )


def seed_ledger(path: Path, scenario: Scenario, start: float) -> None:
    """Write the scenario's ledger section into a fresh ledger."""
    ledger = Ledger(path)
    try:
        spec = scenario.ledger
        ledger.upsert_book_lines(
            BookLineIn(b.book, b.line, b.remaining, item=b.item) for b in spec.books
        )
        ledger.upsert_trips((t.id, t.plate, t.status) for t in spec.trips)
        ledger.upsert_notes(
            NoteIn(
                note_id=n.id,
                plate=n.plate,
                valid_from=resolve_time(n.valid_from, start),
                valid_until=resolve_time(n.valid_until, start),
                containers=tuple(n.containers),
                seals=tuple(n.seals),
                gross_kg=n.gross_kg,
                tolerance_kg=n.tolerance_kg,
                direction=n.direction,
                lines=tuple((x.book, x.line, x.qty) for x in n.lines),
                trip_id=n.trip,
                status=n.status,
            )
            for n in spec.notes
        )
        for plate in spec.watchlist.plates:
            ledger.set_watch("plate", plate, "scenario")
        for number in spec.watchlist.containers:
            ledger.set_watch("container", number, "scenario")
    finally:
        ledger.close()


@dataclass
class Report:
    """The outcome of a simulated run."""

    results: list[VehicleResult]
    collisions: int
    elapsed_s: float
    seals_unlocked: list[str] | None = None  # by the e-seal reader (None: no real reader)
    central: dict[str, Any] | None = None  # with a broker: what central received

    def summary(self) -> dict[str, Any]:
        """The figures `gatewayd sim --json` prints as its last line."""
        decided = [r for r in self.results if r.outcome is not None]
        ms = sorted(r.decision_ms for r in decided if r.decision_ms is not None)
        lane = sorted(r.lane_s for r in decided if r.lane_s is not None)
        return {
            "vehicles": len(self.results),
            "release": sum(r.outcome is Outcome.RELEASE for r in self.results),
            "hold": sum(r.outcome is Outcome.HOLD for r in self.results),
            "reject": sum(r.outcome is Outcome.REJECT for r in self.results),
            "wrong": sum(r.wrong for r in self.results),
            # the wrong decisions that matter most: a truck let through that should not be
            "wrong_releases": sum(
                r.outcome is Outcome.RELEASE and r.vehicle.expect is not Outcome.RELEASE
                for r in self.results
            ),
            "decision_ms": {
                "p50": _pct(ms, 50),
                "p95": _pct(ms, 95),
                "max": round(ms[-1], 2) if ms else None,
            },
            "pass_s": {"p50": _pct(lane, 50), "p95": _pct(lane, 95)},
            **({"central": self.central} if self.central is not None else {}),
        }


def _pct(values: list[float], p: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 2)
    return round(statistics.quantiles(values, n=100, method="inclusive")[p - 1], 2)


def format_result(r: VehicleResult) -> str:
    """One line per pass, as it happens."""
    clock = time.strftime("%H:%M:%S", time.localtime(r.arrived_at))
    boxes = ",".join(r.vehicle.containers or []) or "-"
    decision = r.outcome.value.upper() if r.outcome else "NONE"
    reasons = " ".join(r.details) or "-"
    ms = f"{r.decision_ms:7.1f} ms" if r.decision_ms is not None else "      - ms"
    lane = f"{r.lane_s:6.2f} s" if r.lane_s is not None else "     - s"
    mark = "  WRONG (expected " + r.vehicle.expect.value + ")" if r.wrong else ""
    problems = f"  [{'; '.join(r.problems)}]" if r.problems else ""
    plate = r.vehicle.plate or "-"
    return (
        f"{clock} #{r.index:03d} {plate:<9} {boxes:<24} {decision:<7} {ms} {lane}  "
        f"{reasons}{mark}{problems}"
    )


@contextlib.contextmanager
def _workdir(path: Path | None) -> Iterator[Path]:
    if path is not None:
        # the simulator seeds a fresh ledger: one already there (a lane's own, or an earlier
        # run's) would be mixed with simulated notes and passes
        if (path / "ledger.db").exists():
            raise ValueError(f"--workdir {path} holds a ledger.db already: name a fresh folder")
        made = not path.exists()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"--workdir {path}: {exc.strerror or exc}") from None
        try:
            yield path
        except BaseException:
            if made and not any(path.iterdir()):
                path.rmdir()  # a run that never started leaves nothing behind
            raise
        return
    with tempfile.TemporaryDirectory(prefix="gatewayd-sim-") as tmp:
        yield Path(tmp)


async def _started(lane: Lane, task: asyncio.Task[None]) -> None:
    """Wait until the lane runs and its devices are up (or fail with why not)."""
    ready = asyncio.create_task(lane.ready.wait())
    await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()  # raises what stopped the lane
    async with asyncio.timeout(15):
        await lane.wait_for(lambda: not lane.core.faults and lane.core.barrier != "unknown")


async def simulate(
    scenario: Scenario,
    *,
    seed: int = 1,
    fast: bool = False,
    direct: bool = False,
    ocr: bool = False,
    workdir: Path | None = None,
    on_result: Callable[[VehicleResult], None] = lambda r: None,
    broker: tuple[str, int] | None = None,
    after_traffic: Callable[[], Awaitable[None]] | None = None,
) -> Report:
    """Run the scenario's traffic through a lane on simulated hardware.

    With ``broker`` the lane is linked to a simulated central through that MQTT broker
    (sim.central_server); ``after_traffic`` runs once the last vehicle is done, before the
    run waits for central to have every pass.
    """
    timing = SimTiming(FAST_SCALE if fast else 1.0, ocr=ocr)
    central = SimCentral(hashlib.sha256(f"central-{seed}".encode()).digest())
    start = time.time()
    started = time.monotonic()
    with _workdir(workdir) as work:
        ledger_path = work / "ledger.db"
        feeders = make_feeders(direct=direct, ocr=ocr, scale=timing.scale, seed=seed)
        traffic = Traffic(
            relay=SimRelay(RELAY_WIRING, travel_s=2.0 * timing.scale),
            feeders=feeders,
            central=central,
            notes={n.id: n for n in scenario.ledger.notes},
            geofence=GEOFENCE,
            scale=timing.scale,
            start=start,
            rng=random.Random(seed),
            decision_timeout_s=timing.deadline_s + 10,
            on_result=on_result,
        )
        for v in scenario.vehicles:  # refuse a bad QR spec before anything is written
            if v.qr is not None:
                traffic.payload(v.qr)
        relay = traffic.relay
        site, central_report = None, None
        async with contextlib.AsyncExitStack() as stack:
            for feeder in feeders.values():
                await feeder.start()
                stack.push_async_callback(feeder.stop)
            port = await relay.start()
            stack.push_async_callback(relay.close)
            devices = {kind: f.device_config() for kind, f in feeders.items()}
            extra: dict[str, Any] = {}
            rig = next((f.rig for f in feeders.values() if isinstance(f, CameraFeeder)), None)
            if rig is not None:
                extra["cameras"] = rig.camera_settings()
                extra["evidence"] = {"directory": str(work / "evidence"), "budget_bytes": 2**28}
            config = sim_config(
                scenario,
                public_key=central.public_key,
                ledger=ledger_path,
                relay_port=port,
                timing=timing,
                devices=devices,
                extra=extra,
            )
            simulated = {kind: s for kind, f in feeders.items() if (s := f.source()) is not None}
            await asyncio.to_thread(seed_ledger, ledger_path, scenario, start)
            link = None
            if broker is not None:
                from sim.central_server import SiteRun

                site = SiteRun(central, *broker, config.lane.site)
                config = site.configure(config)
                await site.start(ledger_path)
                stack.push_async_callback(site.close)
                link = build_link(config)
            lane = Lane(
                config,
                RelayIO(config.relay),
                build_sources(config, simulated),
                display=SimDisplay(),
                observer=traffic,
                link=link,
            )
            traffic.lane = lane
            lane_task = asyncio.create_task(lane.run(), name="lane")
            try:
                await _started(lane, lane_task)
                results = await traffic.run(scenario.vehicles)
                if after_traffic is not None:
                    await after_traffic()
                if site is not None:
                    central_report = await site.finish(lane)
            finally:
                lane_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await lane_task
    seal = feeders["seal"]
    unlocked = seal.unlocked if isinstance(seal, EsealFeeder) else None
    return Report(results, relay.collisions, time.monotonic() - started, unlocked, central_report)


def print_report(report: Report, out: TextIO, *, as_json: bool) -> None:
    """The summary after the per-pass lines; with as_json, the last line is the JSON object."""
    s = report.summary()
    if report.collisions:
        print(f"SAFETY: {report.collisions} barrier collision(s)", file=out)
    wrong = [r for r in report.results if r.wrong]
    for r in wrong:
        print(f"wrong: #{r.index:03d} {r.vehicle.label}: got {r.outcome} {r.codes}", file=out)
    if as_json:
        print(json.dumps(s, ensure_ascii=False), file=out)
        return
    c = s.get("central")
    if c is not None:
        print(
            f"central: {c['delivered']} of {c['passes']} passes delivered, {c['missing']} "
            f"missing, {c['duplicates_discarded']} redeliveries discarded, {c['alerts']} alerts; "
            f"lane applied {c['deltas_applied']} deltas, in sync: {c['ledger_synced']}",
            file=out,
        )
    d, p = s["decision_ms"], s["pass_s"]
    print(
        f"{s['vehicles']} vehicles in {report.elapsed_s:.1f} s: {s['release']} released, "
        f"{s['hold']} held, {s['reject']} rejected, {s['wrong']} wrong; "
        f"decision ms p50 {d['p50']} p95 {d['p95']} max {d['max']}; "
        f"lane s p50 {p['p50']} p95 {p['p95']}",
        file=out,
    )
