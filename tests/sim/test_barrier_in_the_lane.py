"""A running lane's barrier on the simulated relay: an arm that is not where it should be."""

from __future__ import annotations

import asyncio
from pathlib import Path

from .harness import running_lane


async def test_an_arm_found_up_is_lowered_and_stops_over_a_car_that_slips_under_it(
    tmp_path: Path,
) -> None:
    async with running_lane(tmp_path) as lane:
        relay = lane.relay
        relay.barrier.travel_s = 1.0
        relay.barrier.position = relay.barrier.target = "open"  # raised by hand, say
        await lane.wait(lambda: relay.barrier.target == "closed")  # nobody released: lowered
        relay.set_loop("safety", True)  # a car slips in under the moving arm
        await lane.wait(lambda: not relay.coils[0] and not relay.coils[1])
        await asyncio.sleep(1.5)  # longer than the whole travel
        assert relay.barrier.position == "moving"  # it stopped over the car, and stays there
        assert relay.barrier.lifts == 0  # and it did not lift: nothing is released
        relay.set_loop("safety", False)
        await lane.wait(lambda: relay.barrier.position == "closed", limit_s=5)
        assert not lane.lane.core.faults
