"""A running lane: officer overrides through the control socket, and a relay outage."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import sqlite3
import time
from pathlib import Path

from drivers.release_note import ReleaseNote
from gatewayd.config import ControlSection
from gatewayd.daemon import LaneClock
from gatewayd.events import QrScanned, WeightStable
from gatewayd.lane import Phase
from tests.commands import GATEWAYCTL, run_async

from .harness import CENTRAL, running_lane


async def ctl(*args: str) -> tuple[int, dict[str, object]]:
    code, out, err = await run_async(GATEWAYCTL, *args)
    return code, json.loads(out.strip().splitlines()[-1]) if out.strip() else {"stderr": err}


async def test_officer_releases_a_held_truck_from_the_cli_and_it_is_audited(tmp_path: Path) -> None:
    sock = tmp_path / "control.sock"
    async with running_lane(tmp_path, control=ControlSection(socket=sock)) as lane:
        code, status = await ctl("status", "--socket", str(sock))
        assert code == 0
        assert status["phase"] == "idle"
        code, refused = await ctl(
            "override", "release", "--officer", "O-7", "--reason", "test", "--socket", str(sock)
        )
        assert code == 1
        assert "no held" in str(refused["error"])

        await lane.truck(kg=34_000)  # 4 t over the note: held for inspection
        await lane.wait(lambda: lane.lane.core.phase is Phase.HELD)
        assert lane.relay.barrier.target == "closed"
        # an override naming another pass (one that has left) is refused
        code, refused = await ctl(
            "override", "release", "--officer", "O-7", "--reason", "r", "--pass", "L1-gone",
            "--socket", str(sock),
        )  # fmt: skip
        assert code == 1
        assert "is not the one at the lane" in str(refused["error"])
        assert lane.lane.core.phase is Phase.HELD
        code, answer = await ctl(
            "override",
            "release",
            "--officer",
            "O-7",
            "--reason",
            "load verified by hand",
            "--socket",
            str(sock),
        )
        assert code == 0, answer
        await lane.wait(lambda: lane.lane.core.phase is Phase.RELEASED)
        await lane.wait(lambda: lane.relay.barrier.position == "open")

        led = lane.ledger()
        audit = led.conn.execute(
            "SELECT pass_id, action, officer, reason, requested_by FROM overrides"
        ).fetchall()
        # the officer id is what was typed; who asked is what the kernel told the lane
        asker = f"unix:uid {os.getuid()} ({pwd.getpwuid(os.getuid()).pw_name}), pid "
        assert [row[:4] for row in audit] == [
            (answer["pass_id"], "release", "O-7", "load verified by hand")
        ]
        assert audit[0][4].startswith(asker)
        (record,) = led.passes()
        assert record["decision"] == "release"
        assert {r["code"] for r in record["reasons"]} == {"OVERWEIGHT", "OVERRIDE"}
        assert led.conn.execute("SELECT status FROM notes").fetchone()[0] == "used"
        # and the note's account-book line was drawn, as for any release
        assert led.conn.execute("SELECT remaining FROM book_lines").fetchone()[0] == 90.0
        led.close()


async def test_relay_outage_releases_nobody_and_the_lane_recovers_by_itself(tmp_path: Path) -> None:
    async with running_lane(tmp_path) as lane:
        core = lane.lane.core
        lane.relay.set_loop("arrival", True)
        await lane.wait(lambda: core.tx is not None)
        await lane.relay.stop()  # the relay loses power with a truck at the barrier
        await lane.wait(lambda: "relay" in core.faults)
        lane.relay.set_loop("arrival", False)
        await lane.truck()  # its readings all arrive, and they match
        await lane.wait(lambda: core.phase is Phase.HELD)
        assert core.tx is not None
        assert core.tx.record is not None
        assert "DEVICE_FAULT(relay)" in [str(r) for r in core.tx.record.reasons]
        assert lane.relay.barrier.target == "closed"
        await lane.relay.start()  # power back: the lane sees the truck has gone, and recovers
        await lane.wait(lambda: "relay" not in core.faults)
        lane.relay.set_loop("arrival", False)
        await lane.wait(lambda: core.phase is Phase.IDLE)


async def test_a_ledger_that_cannot_write_holds_the_truck_and_the_lane_goes_on(
    tmp_path: Path,
) -> None:
    async with running_lane(tmp_path) as lane:
        core = lane.lane.core
        ledger = lane.lane.ledger

        def refuse_writes() -> None:  # as a full disk or a worn-out card would
            ledger.conn.execute("PRAGMA query_only = ON")

        await lane.lane.in_ledger(refuse_writes)
        await lane.truck()  # everything matches, but the pass cannot be written
        await lane.wait(lambda: core.phase is Phase.HELD)
        assert core.tx is not None
        assert core.tx.pass_id
        assert lane.relay.barrier.target == "closed"
        # the truck is sent to a human, and the lane takes the next one
        lane.relay.set_loop("arrival", False)
        await lane.wait(lambda: core.phase is Phase.IDLE)
        lane.relay.set_loop("arrival", True)
        await lane.wait(lambda: core.phase is Phase.COLLECTING)


async def test_a_clock_stepped_by_time_sync_is_followed_between_passes(tmp_path: Path) -> None:
    # The box booted with its clock two days ahead: a valid note looks expired. Time sync
    # then corrects the clock; the lane follows once no pass is under way.
    offset = {"s": 2 * 86400.0}
    async with running_lane(tmp_path) as lane:
        lane.lane.clock = LaneClock(wall=lambda: time.time() + offset["s"])
        await lane.truck()
        await lane.wait(lambda: lane.lane.core.phase is Phase.HELD)
        assert lane.lane.core.tx is not None
        assert lane.lane.core.tx.record is not None
        assert "NOTE_EXPIRED(RN1)" in map(str, lane.lane.core.tx.record.reasons)
        offset["s"] = 0.0  # time sync steps the wall clock back
        await asyncio.sleep(0.2)  # ticks come and go: a pass is under way, nothing changes
        assert lane.lane.clock() > time.time() + 86400
        lane.relay.set_loop("arrival", False)  # the held truck leaves
        await lane.wait(lambda: lane.lane.core.phase is Phase.IDLE)
        await lane.wait(lambda: abs(lane.lane.clock() - time.time()) < 1)
        await lane.truck()
        await lane.wait(lambda: lane.lane.core.phase is Phase.RELEASED)
        led = lane.ledger()
        alerts = [
            json.loads(p)
            for (p,) in led.conn.execute("SELECT payload FROM outbox WHERE kind = 'alert'")
        ]
        led.close()
        stepped = [a["message"] for a in alerts if a["kind"] == "CLOCK_STEPPED"]
        assert stepped == ["wall clock stepped by -172800.0 s; followed"]


async def test_a_failing_ledger_read_does_not_leave_the_pass_undecided(tmp_path: Path) -> None:
    # The note's lookup fails (a disk read error) in the same batch as the deadline's
    # decision: the decision must still be written, or the lane waits on it for good.
    timing = {"decision_deadline_s": 0.001, "tick_ms": 1000}
    async with running_lane(tmp_path, timing=timing) as lane:
        ledger = lane.lane.ledger

        def unreadable(note_id: str) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        ledger.load_note = unreadable  # type: ignore[method-assign]
        lane.relay.set_loop("arrival", True)
        await lane.wait(lambda: lane.lane.core.tx is not None)
        payload = CENTRAL.sign(ReleaseNote("RN1", "沪A12345", (), 0, int(time.time()) + 3600))
        await asyncio.sleep(0.01)
        lane.sources["qr"].push(QrScanned(payload))  # past the deadline already
        await lane.wait(lambda: lane.lane.core.phase is Phase.HELD, limit_s=5)
        assert lane.lane.core.tx is not None
        assert lane.lane.core.tx.record is not None
        assert "DEVICE_FAULT(ledger did not answer)" in map(str, lane.lane.core.tx.record.reasons)


async def test_a_lane_stopped_while_a_release_is_written_lets_its_truck_through_first(
    tmp_path: Path,
) -> None:
    # Stopped (SIGTERM) while the ledger writes a release off: cancelled there, the note was
    # used up and the barrier never lifted. The event in hand is finished first.
    async with running_lane(tmp_path) as lane:
        blocker = sqlite3.connect(lane.ledger_path, isolation_level=None, timeout=5)
        blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the database a moment
        try:
            await lane.truck()
            await lane.wait(lambda: lane.lane.core.phase is Phase.COMMITTING)
            stopping = asyncio.create_task(lane.lane.stop())
            await asyncio.sleep(0.3)
            assert not stopping.done()  # it waits for the write in hand
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        await asyncio.wait_for(stopping, 10)
        assert lane.relay.barrier.target == "open"  # the truck whose note was used goes through
        assert lane.relay.light == "red"  # and nobody is invited on after it
        assert lane.lane.core.phase is Phase.RELEASED


async def test_an_event_that_comes_once_the_stop_began_is_not_taken(tmp_path: Path) -> None:
    # a tick of a second: the window between the stop and the next event is certain
    async with running_lane(tmp_path, timing={"tick_ms": 1000}) as lane:
        core = lane.lane.core
        await lane.truck(kg=None)  # all but its weight
        await asyncio.sleep(0.3)
        assert core.phase is Phase.COLLECTING
        stopping = asyncio.create_task(lane.lane.stop())
        await asyncio.sleep(0)  # the stop has begun
        lane.sources["weight"].push(WeightStable(30_000))  # the pass's last reading
        await asyncio.wait_for(stopping, 5)
        await asyncio.sleep(0.5)  # (the runner cancels the lane here)
        assert core.phase is Phase.COLLECTING  # not decided, so nothing half-written
        assert lane.relay.light == "red"
        assert lane.relay.barrier.target == "closed"
