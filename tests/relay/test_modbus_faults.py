"""The relay driver against a relay that answers wrongly: the lane stays up and safe."""

from __future__ import annotations

import asyncio

import pytest

from drivers.modbus_io import RelayIO, SignalChanged
from drivers.supervisor import DriverError
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
        await asyncio.wait_for(h.up.wait(), 5)
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
        await asyncio.wait_for(h.up.wait(), 5)
        with pytest.raises(DriverError, match="refused"):
            await h.io.set_barrier(True)
        assert relay.coils == {UP: False, DOWN: False}
    assert not [s for s in relay.states if s[UP] and s[DOWN]]
