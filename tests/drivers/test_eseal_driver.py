"""E-seal driver against the simulated reader over a pty: reads, unlock/arm, faults, cables."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from drivers.eseal import (
    CMD_CODES,
    EsealReader,
    EsealRefused,
    EsealSettings,
    EsealUnavailable,
    NoSeal,
    SealReading,
    encode_frame,
    info_payload,
)
from sim.eseal_device import EsealReaderSim
from tests.drivers.serial_helpers import Collected, eventually, running

KEY = bytes(range(16))
SEAL = "CN1234567"


def settings_for(sim: EsealReaderSim, **overrides: Any) -> EsealSettings:
    values: dict[str, Any] = {
        "port": sim.path,
        "key": KEY.hex(),
        "poll_s": 0.02,
        "response_timeout_s": 0.2,
        "command_timeout_s": 2.0,
    }
    return EsealSettings(**(values | overrides))


@pytest.fixture
async def sim() -> AsyncIterator[EsealReaderSim]:
    async with EsealReaderSim(KEY, seed=3) as reader_sim:
        reader_sim.set_seal(SEAL, "sealed", 87)
        yield reader_sim


@pytest.fixture
async def lane(sim: EsealReaderSim) -> AsyncIterator[tuple[EsealReader, Collected]]:
    """A reader driver kept open by its supervisor, as the lane runs it."""
    got = Collected()
    reader = EsealReader(settings_for(sim))
    async with running(reader.supervisor(got.on_reading, got.on_state)):
        await eventually(lambda: got.of(SealReading), what="first seal reading")
        yield reader, got


def seals(got: Collected, since: float = 0.0) -> list[SealReading]:
    return got.of(SealReading, since)


async def test_the_seal_in_the_field_is_read_and_reported_on_change(
    sim: EsealReaderSim, lane: tuple[EsealReader, Collected]
) -> None:
    _, got = lane
    assert seals(got)[0] == SealReading(SEAL, "sealed", 87, 0)
    sim.remove_seal()
    await eventually(lambda: got.of(NoSeal))
    sim.set_seal("MSKU-77", "opened", 40)
    await eventually(lambda: seals(got)[-1] == SealReading("MSKU-77", "opened", 40, 0))
    await asyncio.sleep(0.2)  # ten more polls: nothing changed, nothing more reported
    assert len(got.readings) == 3


async def test_unlock_then_arm_with_the_key(
    sim: EsealReaderSim, lane: tuple[EsealReader, Collected]
) -> None:
    reader, got = lane
    assert await reader.unlock(SEAL) == "opened"
    assert sim.seal is not None
    assert sim.seal.state == "opened"
    await eventually(lambda: seals(got)[-1].state == "opened")
    assert await reader.arm(SEAL) == "sealed"
    assert sim.seal.state == "sealed"
    assert sim.executed == [("unlock", SEAL, "ok"), ("arm", SEAL, "ok")]
    log = await reader.read_log()
    assert [e.kind for e in log.events] == ["unlocked", "armed"]
    assert (log.seal_id, log.total) == (SEAL, 2)


async def test_repeating_an_unlock_is_harmless(
    sim: EsealReaderSim, lane: tuple[EsealReader, Collected]
) -> None:
    reader, _ = lane
    assert await reader.unlock(SEAL) == "opened"
    assert await reader.unlock(SEAL) == "opened"
    assert sim.seal is not None
    assert len(sim.seal.events) == 1


async def test_an_ok_from_a_seal_whose_lock_did_not_move_is_a_failure(
    sim: EsealReaderSim, lane: tuple[EsealReader, Collected]
) -> None:
    reader, _ = lane
    sim.jammed = True
    with pytest.raises(EsealRefused, match="unlock CN1234567: seal is sealed") as refused:
        await reader.unlock(SEAL)
    assert refused.value.status == "bad_state"


async def test_another_seal_in_the_field_is_refused_before_any_command(
    sim: EsealReaderSim, lane: tuple[EsealReader, Collected]
) -> None:
    reader, _ = lane
    with pytest.raises(EsealRefused) as refused:
        await reader.unlock("CN7654321")
    assert refused.value.status == "wrong_seal"
    assert sim.executed == []
    assert sim.seal is not None
    assert sim.seal.state == "sealed"


async def test_a_wrong_key_is_refused_by_the_reader(sim: EsealReaderSim) -> None:
    got = Collected()
    reader = EsealReader(settings_for(sim, key=bytes(16).hex()))
    async with running(reader.supervisor(got.on_reading)):
        await eventually(lambda: reader.connected)
        with pytest.raises(EsealRefused) as refused:
            await reader.unlock(SEAL)
    assert refused.value.status == "auth_failed"
    assert sim.seal is not None
    assert sim.seal.state == "sealed"
    assert sim.executed == [("unlock", SEAL, "auth_failed")]


async def test_a_tampered_seal_is_reported_and_never_unlocked(
    sim: EsealReaderSim, lane: tuple[EsealReader, Collected]
) -> None:
    reader, got = lane
    sim.tamper()
    await eventually(lambda: seals(got)[-1].state == "tampered")
    assert seals(got)[-1].events == 1
    with pytest.raises(EsealRefused) as refused:
        await reader.unlock(SEAL)
    assert refused.value.status == "bad_state"
    assert sim.seal is not None
    assert sim.seal.state == "tampered"


async def test_no_seal_in_the_field(
    sim: EsealReaderSim, lane: tuple[EsealReader, Collected]
) -> None:
    reader, got = lane
    sim.remove_seal()
    await eventually(lambda: got.of(NoSeal))
    with pytest.raises(EsealRefused) as refused:
        await reader.arm(SEAL)
    assert refused.value.status == "no_seal"


async def test_a_weak_radio_link_is_retried(
    sim: EsealReaderSim, lane: tuple[EsealReader, Collected]
) -> None:
    reader, _ = lane
    sim.fail_radio(1)
    assert await reader.unlock(SEAL) == "opened"
    sim.fail_radio(10)
    with pytest.raises(EsealUnavailable, match="seal_no_reply"):
        await reader.arm(SEAL)


async def test_commands_do_not_wait_behind_polling(sim: EsealReaderSim) -> None:
    """Polling back to back with a slow reader: the unlock goes out right after the exchange
    in flight, not after the polls that would follow it."""
    got = Collected()
    sim.reply_delay_s = 0.03
    reader = EsealReader(settings_for(sim, poll_s=0.001))
    async with running(reader.supervisor(got.on_reading)):
        await eventually(lambda: reader.connected and sim.requests > 20)
        asked_at = time.monotonic()
        assert await reader.unlock(SEAL) == "opened"
    after = [what for when, what, _ in sim.received if when >= asked_at]
    # at most: the poll in flight, the unlock's own read of the challenge, then the unlock
    assert "unlock" in after[:3], after[:6]


async def test_a_reader_that_stops_answering_is_down_and_comes_back(
    sim: EsealReaderSim,
) -> None:
    got = Collected()
    reader = EsealReader(settings_for(sim, response_timeout_s=0.1, command_timeout_s=1.0))
    supervisor = reader.supervisor(got.on_reading, got.on_state)
    async with running(supervisor):
        await eventually(lambda: reader.connected)
        sim.mute(True)
        started = time.monotonic()
        with pytest.raises(EsealUnavailable):
            await reader.unlock(SEAL)
        assert time.monotonic() - started < 1.5  # fails clearly, within the command timeout
        await eventually(lambda: supervisor.health.state == "down", what="reader marked down")
        assert "no answer" in supervisor.health.detail
        with pytest.raises(EsealUnavailable, match="down"):
            await reader.arm(SEAL)  # at once, not after a timeout
        sim.mute(False)
        waited = await eventually(lambda: reader.connected, what="reader back")
        assert waited < 5.0
        assert await reader.unlock(SEAL) == "opened"


async def test_late_answers_are_never_taken_for_current_ones(sim: EsealReaderSim) -> None:
    got = Collected()
    reader = EsealReader(settings_for(sim, response_timeout_s=0.1, max_missed=1000))
    supervisor = reader.supervisor(got.on_reading)
    async with running(supervisor):
        await eventually(lambda: seals(got))
        sim.reply_delay_s = 0.15  # every answer now arrives after its request was given up
        sim.set_seal("LATE-1", "opened", 50)
        slow_from = time.monotonic()
        await eventually(lambda: supervisor.health.rejected >= 3, what="late answers dropped")
        assert not any(s.seal_id == "LATE-1" for s in seals(got, slow_from))
        sim.reply_delay_s = 0.0
        await eventually(lambda: seals(got)[-1].seal_id == "LATE-1")


async def test_noise_and_false_frame_starts_on_the_line(
    sim: EsealReaderSim, lane: tuple[EsealReader, Collected]
) -> None:
    reader, _ = lane
    sim.inject(b"\xa5\x40noise\x00\xa5")  # a false start claiming 68 bytes
    assert await reader.unlock(SEAL) == "opened"
    sim.inject(b"\xff\xfe\xa5\x03\x01")
    assert await reader.arm(SEAL) == "sealed"


async def test_pulled_cable_back_within_5_s_and_nothing_from_before_the_gap(
    sim: EsealReaderSim,
) -> None:
    got = Collected()
    reader = EsealReader(settings_for(sim))  # reconnect backoff capped at its default, 2 s
    supervisor = reader.supervisor(got.on_reading, got.on_state)
    async with running(supervisor):
        await eventually(lambda: seals(got))
        sim.unplug()
        await eventually(lambda: supervisor.health.state == "down", what="driver saw the pull")
        with pytest.raises(EsealUnavailable):
            await reader.unlock(SEAL)
        sim.set_seal("NEXT-TRUCK-9", "sealed", 75)  # a new truck drives up meanwhile
        await eventually(lambda: supervisor.health.reconnects >= 3, what="failed reopen attempts")
        replugged_at = time.monotonic()
        sim.replug()
        waited = await eventually(lambda: seals(got, replugged_at), what="reading after replug")
        assert waited < 5.0
        after = seals(got, replugged_at)
        assert [s.seal_id for s in after] == ["NEXT-TRUCK-9"]
        assert await reader.unlock("NEXT-TRUCK-9") == "opened"
    assert [state for _, state in got.states] == ["up", "down", "up"]


async def test_request_numbers_go_on_across_a_reconnect(sim: EsealReaderSim) -> None:
    # An answer from before a reconnect (late, or left in a serial server's buffer) must not
    # match a request after it: numbers restarting at 1 would let the old connection's answer
    # to its first read_seal stand for the new connection's, a seal that may have left.
    got = Collected()
    reader = EsealReader(settings_for(sim))
    supervisor = reader.supervisor(got.on_reading, got.on_state)
    async with running(supervisor):
        await eventually(lambda: seals(got))
        sim.unplug()
        await eventually(lambda: supervisor.health.state == "down", what="driver saw the pull")
        before = [seq for _, _, seq in sim.received]
        replugged_at = time.monotonic()
        sim.replug()
        await eventually(lambda: seals(got, replugged_at), what="reading after replug")
        after = [(what, seq) for when, what, seq in sim.received if when >= replugged_at]
    assert after[0][0] == "info"
    # after the last number used before the pull (failed reopens used a few more)
    assert 1 <= (after[0][1] - before[-1]) % 256 <= 64


async def test_line_noise_never_pushes_out_a_seal_change(sim: EsealReaderSim) -> None:
    # Changes are reported once; a burst of noise queued behind one must not drop it.
    reader = EsealReader(settings_for(sim))
    async with reader.open_device() as connection:
        await eventually(lambda: sim.requests >= 2, what="first poll")
        sim.set_seal("NEXT-TRUCK-9", "sealed", 75)
        polled = sim.requests
        await eventually(lambda: sim.requests >= polled + 2, what="polls after the change")
        stray = encode_frame(1, 250, 0x80 | CMD_CODES["info"], info_payload((1, 0), "X"))
        sim.inject(stray * 100)  # answers to nothing asked: each one is reported as rejected
        polled = sim.requests
        await eventually(lambda: sim.requests >= polled + 3, what="polls after the noise")
        taken: list[object] = []

        async def take() -> None:
            async for item in connection.readings():
                taken.append(item)

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.2):
                await take()
    readings = [i for i in taken if isinstance(i, SealReading)]
    assert [r.seal_id for r in readings][-1:] == ["NEXT-TRUCK-9"]
    assert len(taken) == 64  # the noise was queued and cut


async def test_a_command_in_flight_when_the_cable_is_pulled_fails_clearly(
    sim: EsealReaderSim, lane: tuple[EsealReader, Collected]
) -> None:
    reader, _ = lane
    sim.reply_delay_s = 0.1
    pending = asyncio.create_task(reader.unlock(SEAL))
    await asyncio.sleep(0.05)
    sim.unplug()
    with pytest.raises(EsealUnavailable):
        await pending
