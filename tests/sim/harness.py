"""A running lane on a simulated relay, with readings handed to it directly, for tests that
drive one truck at a time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.modbus_io import RelayIO
from drivers.release_note import ReleaseNote
from gatewayd.config import LaneConfig
from gatewayd.daemon import Lane
from gatewayd.events import (
    ContainerSeen,
    ContainersRead,
    PlateRead,
    QrScanned,
    SealRead,
    WeightStable,
)
from gatewayd.judge import READING_KINDS
from gatewayd.ledger import BookLineIn, Ledger, NoteIn
from gatewayd.runner import build_sources
from sim.central import SimCentral
from sim.relay import SimRelay
from sim.run import RELAY_WIRING, SimTiming, sim_config
from sim.scenario import Scenario, VehicleSpec
from sim.sources import SimDisplay, SimSeal, SimSource

CENTRAL = SimCentral(bytes(32))
NOW = 0.0


@dataclass
class RunningLane:
    lane: Lane
    relay: SimRelay
    sources: dict[str, SimSource]
    display: SimDisplay
    ledger_path: Path

    async def wait(self, condition: Any, limit_s: float = 10) -> None:
        async with asyncio.timeout(limit_s):
            await self.lane.wait_for(condition)

    async def truck(
        self, *, note_id: str = "RN1", plate: str = "沪A12345", kg: float | None = 30_000
    ) -> None:
        """A truck arrives and shows its readings (its weight not yet, for ``kg=None``)."""
        import time

        self.relay.set_loop("arrival", True)
        await self.wait(lambda: self.lane.core.tx is not None)
        payload = CENTRAL.sign(
            ReleaseNote(note_id, "沪A12345", ("MSCU1234565",), 0, int(time.time()) + 3600)
        )
        self.sources["plate"].push(PlateRead(plate, 0.97))
        self.sources["containers"].push(ContainersRead((ContainerSeen("MSCU1234565"),)))
        self.sources["qr"].push(QrScanned(payload))
        self.sources["seal"].push(SealRead("ES1", "sealed"))
        if kg is not None:
            self.sources["weight"].push(WeightStable(kg))

    def ledger(self) -> Ledger:
        return Ledger(self.ledger_path)


def lane_config(
    tmp_path: Path, relay_port: int, timing: dict[str, Any] | None = None, **config_extra: Any
) -> LaneConfig:
    """The config of a container-entry lane with one note (RN1, 30 t, 沪A12345) in its
    ledger (written to ``tmp_path``), every reading from a simulated source; ``timing``
    overrides some of the fast run's timings, ``config_extra`` whole sections."""
    ledger_path = tmp_path / "ledger.db"
    led = Ledger(ledger_path)
    led.upsert_book_lines([BookLineIn("BK1", 1, 100.0)])
    led.upsert_notes(
        [
            NoteIn(
                "RN1",
                "沪A12345",
                0,
                2e9,
                ("MSCU1234565",),
                ("ES1",),
                30_000,
                500,
                "entry",
                (("BK1", 1, 10.0),),
            )
        ]
    )
    led.close()
    scenario = Scenario(vehicles=[VehicleSpec(expect="release")])
    config = sim_config(
        scenario,
        public_key=CENTRAL.public_key,
        ledger=ledger_path,
        relay_port=relay_port,
        timing=SimTiming(0.02),
        devices={kind: {"kind": "sim"} for kind in READING_KINDS},
    )
    if timing:
        config_extra["timing"] = config.timing.model_copy(update=timing)
    return config.model_copy(update=config_extra) if config_extra else config


def sim_sources() -> dict[str, SimSource]:
    """One simulated source per reading kind, readings pushed by hand."""
    return {k: SimSeal() if k == "seal" else SimSource(k) for k in READING_KINDS}


@contextlib.asynccontextmanager
async def running_lane(tmp_path: Path, **config_extra: Any) -> AsyncIterator[RunningLane]:
    """A container-entry lane (``lane_config``) on a simulated relay, running."""
    relay = SimRelay(RELAY_WIRING, travel_s=0.05)
    port = await relay.start()
    config = lane_config(tmp_path, port, **config_extra)
    ledger_path = config.ledger.path
    sources = sim_sources()
    display = SimDisplay()
    lane = Lane(config, RelayIO(config.relay), build_sources(config, sources), display=display)  # type: ignore[arg-type]
    task = asyncio.create_task(lane.run())
    try:
        async with asyncio.timeout(10):
            await lane.ready.wait()
            await lane.wait_for(lambda: lane.core.barrier == "closed" and not lane.core.faults)
        yield RunningLane(lane, relay, sources, display, ledger_path)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await relay.close()
