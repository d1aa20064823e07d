"""The relay driver against a relay that answers wrongly: the lane stays up and safe."""

from __future__ import annotations

import asyncio

from drivers.modbus_io import RelayIO, SignalChanged
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
