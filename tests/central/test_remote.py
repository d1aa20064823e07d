"""A whole lane (real Modbus relay server, simulated readings) linked to central through a real
broker: remote officer overrides and status requests, audited; a revocation while a truck
stands at the lane is honoured before the decision."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from drivers.modbus_io import RelayIO
from drivers.release_note import ReleaseNote
from gatewayd.daemon import Lane, PassTiming
from gatewayd.envelope import Refusal
from gatewayd.events import PlateRead, QrScanned, WeightStable
from gatewayd.judge import ReadingKind
from gatewayd.link import CentralLink
from gatewayd.reasons import Outcome
from sim.central_server import SimCentralServer, sim_mqtt, with_mqtt
from sim.lane_worker import site_documents
from sim.mosquitto import Broker
from sim.relay import SimRelay
from sim.run import FAST_SCALE, RELAY_WIRING, SimTiming, sim_config
from sim.scenario import LaneSpec, Scenario, VehicleSpec
from sim.sources import SimDisplay, SimSource
from tests.central.helpers import SIGNER, eventually, seeded_ledger, serving

LANE, SITE = "sim-lane-1", "sim-site"  # as sim.run names them


@dataclass
class Watcher:
    """The lane's observer: what it decided."""

    opened: asyncio.Queue[PassTiming] = field(default_factory=asyncio.Queue)
    decided: asyncio.Queue[PassTiming] = field(default_factory=asyncio.Queue)

    def pass_opened(self, timing: PassTiming) -> None:
        self.opened.put_nowait(timing)

    def pass_decided(self, timing: PassTiming) -> None:
        self.decided.put_nowait(timing)

    def pass_finished(self, timing: PassTiming) -> None:
        pass


@dataclass
class Site:
    lane: Lane
    relay: SimRelay
    sources: dict[ReadingKind, SimSource]
    watcher: Watcher
    central: SimCentralServer

    @property
    def link(self) -> CentralLink:
        assert isinstance(self.lane.link, CentralLink)
        return self.lane.link

    async def arrive(self) -> str:
        self.relay.set_loop("arrival", True)
        timing = await asyncio.wait_for(self.watcher.opened.get(), 10)
        return timing.pass_id

    def show(self, plate: str, note: int) -> None:
        qr = SIGNER.sign(ReleaseNote(f"N{note:05d}", f"沪A{note:05d}", (), 0, 4_000_000_000))
        self.sources["plate"].push(PlateRead(plate, 0.99))
        self.sources["qr"].push(QrScanned(qr))

    async def decision(self) -> PassTiming:
        return await asyncio.wait_for(self.watcher.decided.get(), 10)

    async def audited(self) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
        led = self.lane.ledger
        return await self.lane.in_ledger(lambda: (led.commands(), led.overrides()))


@contextlib.asynccontextmanager
async def site(tmp: Path, broker: Broker) -> AsyncIterator[Site]:
    central = SimCentralServer(SIGNER, SITE, "127.0.0.1", broker.port)
    central.change(site_documents(10))
    ledger = seeded_ledger(tmp / "lane.db", central)
    scenario = Scenario(
        lane=LaneSpec(profile="empty-entry"), vehicles=[VehicleSpec(expect=Outcome.RELEASE)]
    )
    timing = SimTiming(FAST_SCALE)
    relay = SimRelay(RELAY_WIRING, travel_s=0.05)
    port = await relay.start()
    devices = {kind: {"kind": "sim"} for kind in ("plate", "qr", "weight")}
    config = sim_config(
        scenario,
        public_key=SIGNER.public_key,
        ledger=ledger,
        relay_port=port,
        timing=timing,
        devices=devices,
    )
    config = with_mqtt(config, sim_mqtt("127.0.0.1", broker.port, reconnect_max_s=0.5))
    sources: dict[ReadingKind, SimSource] = {k: SimSource(k) for k in ("plate", "qr", "weight")}
    watcher = Watcher()
    lane = Lane(
        config,
        RelayIO(config.relay),
        list(sources.values()),
        display=SimDisplay(),
        observer=watcher,
        link=CentralLink(config),
    )
    task = asyncio.create_task(lane.run(), name="lane")
    try:
        async with serving(central):
            await asyncio.wait_for(lane.ready.wait(), 10)
            s = Site(lane, relay, sources, watcher, central)
            await eventually(s.link.connected.is_set, what="link up")
            await eventually(lambda: s.relay.barrier.position == "closed")
            yield s
    finally:
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=20)
        assert done, "the lane did not stop within 20 s of being cancelled"
        await relay.close()


async def test_an_officer_at_central_releases_a_held_pass_and_it_is_audited(
    tmp_path: Path, broker: Broker
) -> None:
    async with site(tmp_path, broker) as s:
        # with no truck at the lane, an override (naming no pass) has nothing to apply to
        await s.central.send_command(
            LANE, "override", override={"action": "release", "officer": "王 7", "reason": "x"}
        )
        await eventually(lambda: s.link.stats.refused[Refusal.NOT_CURRENT.value] == 1)
        pass_id = await s.arrive()
        s.show("沪B99999", note=1)  # the plate is not the note's
        s.sources["weight"].push(WeightStable(20_000))
        held = await s.decision()
        assert held.outcome is Outcome.HOLD
        assert s.relay.barrier.position == "closed"

        # an override meant for another pass is refused, audited, and moves nothing
        await s.central.send_command(
            LANE,
            "override",
            override={"action": "release", "officer": "王 7", "reason": "x", "pass_id": "other"},
        )
        await eventually(lambda: s.link.stats.refused[Refusal.NOT_CURRENT.value] == 2)
        assert s.relay.barrier.position == "closed"

        command_id = await s.central.send_command(
            LANE,
            "override",
            override={
                "action": "release",
                "officer": "王 7",
                "reason": "plate checked by hand",
                "pass_id": pass_id,
            },
        )
        await asyncio.wait_for(s.relay.wait_position("open"), 10)
        released = await s.decision()
        assert released.pass_id == pass_id
        assert released.outcome is Outcome.RELEASE
        commands, overrides = await s.audited()
        assert [(c["command_id"], c["result"]) for c in commands][-1] == (command_id, "accepted")
        assert {c["result"] for c in commands} == {"accepted", "not_current"}
        assert overrides == [
            {
                "override_id": command_id,
                "pass_id": pass_id,
                "action": "release",
                "officer": "王 7",
                "reason": "plate checked by hand",
                "at": overrides[0]["at"],
                "requested_by": "central command",
            }
        ]
        await eventually(lambda: command_id in s.central.overrides, what="override at central")
        assert s.central.passes[pass_id]["decision"] == "release"

        # the same command again is a replay: refused, nothing more audited
        before = await s.audited()
        await s.central.publish_raw(
            f"gate/{SITE}/{LANE}/cmd", s.central.command(LANE, "status", command_id=command_id)[1]
        )
        await eventually(lambda: s.link.stats.refused[Refusal.REPLAYED.value] == 1)
        assert await s.audited() == before


async def test_an_officer_at_central_holds_a_pass_before_it_is_decided(
    tmp_path: Path, broker: Broker
) -> None:
    async with site(tmp_path, broker) as s:
        pass_id = await s.arrive()
        s.show("沪A00002", note=2)  # all is in order, but the weight is not in yet
        await asyncio.sleep(0.1)
        command_id = await s.central.send_command(
            LANE,
            "override",
            override={"action": "hold", "officer": "李 3", "reason": "random inspection"},
        )
        held = await s.decision()
        assert held.pass_id == pass_id
        assert held.outcome is Outcome.HOLD
        assert s.relay.barrier.position == "closed"
        _, overrides = await s.audited()
        assert [(o["override_id"], o["action"]) for o in overrides] == [(command_id, "hold")]
        docs = await s.lane.in_ledger(s.lane.ledger.load_note, "N00002")
        assert docs is not None
        assert docs.status == "active"


async def test_central_asks_for_the_lanes_status_and_the_request_is_audited(
    tmp_path: Path, broker: Broker
) -> None:
    async with site(tmp_path, broker) as s:
        command_id = await s.central.send_command(LANE, "status")
        await eventually(
            lambda: s.central.status.get(LANE, {}).get("request_id") == command_id,
            what="status answer",
        )
        status = s.central.status[LANE]
        assert status["state"] == "online"
        assert status["phase"] == "idle"
        assert status["sync"]["applied_seq"] == s.central.seq
        commands, _ = await s.audited()
        assert [(c["command_id"], c["action"]) for c in commands] == [(command_id, "status")]


async def test_a_note_revoked_while_its_truck_is_at_the_lane_is_refused(
    tmp_path: Path, broker: Broker
) -> None:
    async with site(tmp_path, broker) as s:
        await s.arrive()
        s.show("沪A00003", note=3)

        async def loaded_by_the_lane() -> bool:  # the QR was read and the note looked up
            tx = s.lane.core.tx
            return tx is not None and tx.docs is not None

        await eventually(loaded_by_the_lane, what="note loaded")
        assert s.lane.core.tx.docs.status == "active"  # type: ignore[union-attr]
        s.central.change([{"op": "note.revoke", "note_id": "N00003"}])

        async def revoked() -> bool:
            docs = await s.lane.in_ledger(s.lane.ledger.load_note, "N00003")
            return docs is not None and docs.status == "revoked"

        await eventually(revoked, 5, "revocation applied")
        s.sources["weight"].push(WeightStable(20_000))
        decided = await s.decision()
        assert decided.outcome is Outcome.REJECT
        assert decided.record is not None
        assert "NOTE_REVOKED" in {r.code.value for r in decided.record.reasons}
        assert s.relay.barrier.position == "closed"
