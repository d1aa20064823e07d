"""The relay driver against a relay that answers wrongly: the lane stays up and safe."""

from __future__ import annotations

import asyncio
import time
from typing import Literal

import pytest

from drivers.modbus_io import RelayIO, SignalChanged
from drivers.supervisor import DriverError
from tests.drivers.serial_helpers import eventually
from tests.relay.fake_relay import FakeRelay, fake_relay
from tests.relay.test_modbus_io import settings, supervised


async def test_a_short_input_reply_is_a_relay_fault_and_the_relay_comes_back() -> None:
    relay = FakeRelay(short=True)
    async with fake_relay(relay), supervised(RelayIO(settings(relay.port))) as h:
        await asyncio.wait_for(h.down.wait(), 5)
        assert h.health.detail == "DriverError: relay sent 0 input bits, asked for 5"
        relay.short = False  # the relay answers properly again
        assert await h.next_change() == SignalChanged("arrival", False)
        assert h.health.state == "up"


UP, DOWN, GREEN, RED = 0, 1, 2, 3  # the coils of WIRING


async def test_opposing_coils_are_never_energised_together() -> None:
    relay = FakeRelay(coils={UP: False, DOWN: True, GREEN: False, RED: True})
    async with fake_relay(relay), supervised(RelayIO(settings(relay.port))) as h:
        await eventually(lambda: h.io.connected)
        await h.io.set_barrier(True)
        await h.io.set_light("green")
        assert relay.coils == {UP: True, DOWN: False, GREEN: True, RED: False}
        await h.io.set_barrier(False)
        await h.io.set_light("red")
        assert relay.coils == {UP: False, DOWN: True, GREEN: False, RED: True}
        await h.io.set_light("off")
        assert relay.coils == {UP: False, DOWN: True, GREEN: False, RED: False}
    # after every single write on the wire, not just after each command
    assert not [s for s in relay.states if (s[UP] and s[DOWN]) or (s[GREEN] and s[RED])]


async def test_a_write_failing_half_way_leaves_the_barrier_coils_off() -> None:
    relay = FakeRelay(coils={UP: False, DOWN: True}, refuse={1})  # the command's second write
    async with fake_relay(relay), supervised(RelayIO(settings(relay.port))) as h:
        await eventually(lambda: h.io.connected)
        with pytest.raises(DriverError, match="refused"):
            await h.io.set_barrier(True)
        assert relay.coils == {UP: False, DOWN: False}
    assert not [s for s in relay.states if s[UP] and s[DOWN]]


async def test_a_command_cut_off_mid_write_fails_instead_of_waiting_forever() -> None:
    relay = FakeRelay(write_delay_s=0.3)
    async with fake_relay(relay):
        async with supervised(RelayIO(settings(relay.port))) as h:
            await eventually(lambda: h.io.connected)
            lift = asyncio.create_task(h.io.set_barrier(True))
            await eventually(lambda: relay.write_times, what="the write on the wire")
        # the relay's task was stopped (the lane shutting down) while the write was out
        with pytest.raises(DriverError, match="interrupted"):
            await asyncio.wait_for(lift, 1)


async def test_a_command_the_relay_is_too_slow_for_fails_and_never_goes_out_late() -> None:
    relay = FakeRelay(write_delay_s=0.3)  # every write answered, but slowly
    async with fake_relay(relay), supervised(RelayIO(settings(relay.port))) as h:
        await eventually(lambda: h.io.connected)
        colours: tuple[Literal["green", "red"], ...] = ("green", "red") * 3
        # two writes each, 3.6 s in all; a caller waits at most 4 request timeouts (2 s)
        outcomes = await asyncio.gather(
            *(h.io.set_light(c) for c in colours), return_exceptions=True
        )
        told_at = time.monotonic()
        done = [o for o in outcomes if o is None]
        failed = outcomes[len(done) :]
        assert done, outcomes
        assert failed, outcomes
        assert all(isinstance(o, DriverError) for o in failed), outcomes
        assert "did not acknowledge within 2 s" in str(failed[0])
        await asyncio.sleep(0.5)  # time for any late write to show up
        assert max(relay.write_times) < told_at  # nothing went out after the callers were told
        assert len(relay.write_times) <= 2 * len(done) + 1  # one write in flight, no more
        assert h.health.state == "up"  # a slow relay is not a broken one
