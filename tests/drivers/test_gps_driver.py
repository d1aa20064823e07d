"""GPS driver against the simulated receiver, over a real pty and loopback TCP, under the
supervisor: fixes arrive, a pulled cable or a silent line is recovered from, and nothing from
before the gap is delivered after it."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Literal

import pytest

from drivers.codec import Rejected
from drivers.gps import GpsFix, GpsNoFix, GpsReading, GpsSettings, gps_supervisor, open_gps
from sim.gps_device import GpsState, SimGps, epoch_sentences
from tests.drivers.serial_helpers import Recorder as BaseRecorder
from tests.drivers.serial_helpers import eventually, running

Transport = Literal["pty", "tcp"]
HERE = (31.2304, 121.4737)
THERE = (31.3300, 121.6000)
T0 = 1_714_557_600.0  # a fixed world time for the tests that step the receiver by hand


class Recorder(BaseRecorder[GpsReading]):
    """Readings and state changes, with the GPS's own waits."""

    async def next_fix(self, limit_s: float = 5.0) -> GpsFix:
        async with asyncio.timeout(limit_s):
            while True:
                reading = await self.readings.get()
                if isinstance(reading, GpsFix):
                    return reading

    def drain(self) -> list[GpsReading]:
        out = []
        while not self.readings.empty():
            out.append(self.readings.get_nowait())
        return out


def at(fix: GpsFix, place: tuple[float, float]) -> bool:
    return abs(fix.lat - place[0]) < 1e-6 and abs(fix.lon - place[1]) < 1e-6


@pytest.mark.parametrize("transport", ["pty", "tcp"])
async def test_driver_reads_fixes_from_the_simulated_receiver(transport: Transport) -> None:
    now = [T0]
    async with SimGps(transport=transport, rate_hz=None, clock=lambda: now[0]) as gps:
        settings = GpsSettings(port=gps.port)
        async with open_gps(settings, clock=lambda: now[0] + 0.3) as device:
            readings = device.readings()
            gps.set_position(*HERE, hdop=0.8, speed_kmh=18.0)
            await asyncio.sleep(0.05)  # a TCP client is accepted asynchronously
            await gps.emit()
            fix = await asyncio.wait_for(anext(readings), 2)
            assert isinstance(fix, GpsFix)
            assert fix.valid, fix.reason
            assert at(fix, HERE)
            assert fix.time == "2024-05-01T10:00:00.000Z"
            assert fix.hdop == 0.8
            assert fix.speed_kmh == pytest.approx(18.0, abs=0.01)

            now[0] += 1
            gps.set_position(*HERE, hdop=6.0)
            await gps.emit()
            fix = await asyncio.wait_for(anext(readings), 2)
            assert isinstance(fix, GpsFix)
            assert not fix.valid
            assert "HDOP" in fix.reason

            now[0] += 1
            gps.set_position(*HERE, valid=False)
            await gps.emit()
            assert isinstance(await asyncio.wait_for(anext(readings), 2), GpsNoFix)

            now[0] += 1
            gps.write(b"\x00\xffnoise$GPRMC,1,2*00\r\n")
            gps.set_position(*THERE)
            await gps.emit()
            got = [await asyncio.wait_for(anext(readings), 2) for _ in range(3)]
            assert [type(r) for r in got] == [Rejected, Rejected, GpsFix]
            assert isinstance(got[2], GpsFix)
            assert at(got[2], THERE)
            assert got[2].valid


async def test_a_stale_receiver_clock_never_gives_a_valid_fix() -> None:
    async with (
        SimGps(rate_hz=None, clock=lambda: T0 - 3600) as gps,
        open_gps(GpsSettings(port=gps.port), clock=lambda: T0) as device,
    ):
        gps.set_position(*HERE)
        await gps.emit()
        fix = await asyncio.wait_for(anext(device.readings()), 2)
        assert isinstance(fix, GpsFix)
        assert not fix.valid
        assert "not fresh" in fix.reason


@pytest.mark.parametrize("transport", ["pty", "tcp"])
async def test_pulled_cable_is_recovered_and_nothing_from_before_crosses_the_gap(
    transport: Transport,
) -> None:
    rec = Recorder()
    async with SimGps(transport=transport, rate_hz=20) as gps:
        gps.set_position(*HERE)
        sup = gps_supervisor(
            GpsSettings(port=gps.port), rec.on_reading, on_state=rec.on_state, name="gps"
        )
        async with running(sup):
            await rec.wait_state("up")
            fix = await rec.next_fix()
            assert fix.valid
            assert at(fix, HERE)

            # half an epoch at the old place is on the wire when the cable comes out
            gps.set_silent(True)
            await asyncio.sleep(0.1)
            gps.write(epoch_sentences(GpsState(*HERE, valid=True), time.time())[:100])
            await asyncio.sleep(0.1)
            await gps.unplug()
            await rec.wait_state("down")
            gps.set_position(*THERE)
            gps.set_silent(False)
            await asyncio.sleep(1.0)  # gone long enough for the backoff to grow
            rec.drain()

            await gps.plug()
            plugged_at = time.monotonic()
            fix = await rec.next_fix(limit_s=10)
            back_after = time.monotonic() - plugged_at
            assert back_after < 5.0
            assert rec.states[-2:] == ["down", "up"]
            after = [fix, *(r for r in rec.drain() if isinstance(r, GpsFix))]
            assert all(at(f, THERE) for f in after), [f for f in after if not at(f, THERE)]
            assert sup.health.reconnects >= 1


async def test_a_silent_line_is_reopened() -> None:
    rec = Recorder()
    async with SimGps(transport="tcp", rate_hz=20) as gps:
        gps.set_position(*HERE)
        settings = GpsSettings(port=gps.port, silence_s=0.3)
        sup = gps_supervisor(settings, rec.on_reading, on_state=rec.on_state)
        async with running(sup):
            await rec.next_fix()
            gps.set_silent(True)
            await rec.wait_state("down")
            assert "silent" in sup.health.detail
            gps.set_silent(False)
            await rec.wait_state("up")
            assert (await rec.next_fix()).valid


async def test_a_line_of_garbage_is_reopened_like_a_silent_one() -> None:
    """A receiver at the wrong baud rate: bytes and line ends, never a sentence."""
    rec = Recorder()
    junk = random.Random(1)

    async def babble(gps: SimGps) -> None:
        while True:
            gps.write(junk.randbytes(40).replace(b"$", b"x") + b"\r\n")
            await asyncio.sleep(0.02)

    async with SimGps(rate_hz=20) as gps:
        gps.set_position(*HERE)
        gps.set_silent(True)  # no sentences, only the garbage below
        settings = GpsSettings(port=gps.port, silence_s=0.3)
        sup = gps_supervisor(settings, rec.on_reading, on_state=rec.on_state)
        async with running(sup), asyncio.TaskGroup() as tasks:
            babbling = tasks.create_task(babble(gps))
            await rec.wait_state("down")
            assert "no valid frame" in sup.health.detail
            assert sup.health.rejected > 0
            assert rec.readings.empty()
            babbling.cancel()
            gps.set_silent(False)  # the baud rate put right
            assert (await rec.next_fix()).valid
            assert rec.states[-1] == "up"


async def test_supervisor_counts_rejected_frames() -> None:
    rec = Recorder()
    async with SimGps(rate_hz=None) as gps:
        sup = gps_supervisor(GpsSettings(port=gps.port), rec.on_reading, on_state=rec.on_state)
        async with running(sup):
            gps.set_position(*HERE)
            async with asyncio.timeout(5):  # up with its first fix (once the port is open)
                while not rec.states:
                    await gps.emit()
                    await asyncio.sleep(0.05)
            assert rec.states == ["up"]
            accepted = sup.health.accepted
            gps.write(b"junk\r\n$GPGGA,bad*00\r\n")
            await gps.emit()
            await eventually(lambda: sup.health.accepted > accepted, what="the next fix")
            assert sup.health.rejected == 2


async def test_raw_bytes_are_shown_as_read() -> None:
    raw: list[bytes] = []
    async with (
        SimGps(rate_hz=None, clock=lambda: T0) as gps,
        open_gps(GpsSettings(port=gps.port), clock=lambda: T0, on_raw=raw.append) as device,
    ):
        gps.set_position(*HERE)
        await gps.emit()
        await asyncio.wait_for(anext(device.readings()), 2)
    assert b"".join(raw).startswith(epoch_sentences(GpsState(*HERE, valid=True), T0)[:140])
