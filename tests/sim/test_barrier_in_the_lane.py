"""A lane's barrier on the simulated relay: an arm that is not where it should be, and the
events that must reach the core however far behind it is."""

from __future__ import annotations

import asyncio
from pathlib import Path

from drivers.modbus_io import RelayIO
from gatewayd.daemon import QUEUE_SIZE, Lane
from gatewayd.events import (
    BarrierChanged,
    DeviceFault,
    LoopChanged,
    Override,
    PlateRead,
    Tick,
)
from gatewayd.runner import build_sources

from .harness import lane_config, running_lane, sim_sources


async def test_an_arm_found_up_is_lowered_and_stops_over_a_car_that_slips_under_it(
    tmp_path: Path,
) -> None:
    # an arm that takes a second to come down, and a lane that waits for it that long
    async with running_lane(tmp_path, timing={"barrier_timeout_s": 5.0}) as lane:
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
        # the car slipped in under a moving arm (the simulator counts that); the arm was
        # never lowered onto it
        assert relay.collisions == 1


async def test_a_flooded_event_queue_drops_readings_but_never_a_change_of_state(
    tmp_path: Path,
) -> None:
    config = lane_config(tmp_path, relay_port=1)
    lane = Lane(config, RelayIO(config.relay), build_sources(config, sim_sources()))
    plate = PlateRead("沪A12345", 0.97)
    for _ in range(QUEUE_SIZE):  # the core is stuck: nothing is taken off the queue
        lane.emit(plate)
    lane.emit(plate)
    lane.emit(Tick())
    assert lane.dropped == 2
    state = [
        LoopChanged("safety", True),
        BarrierChanged("moving"),
        DeviceFault("relay", "unreachable"),
        Override("hold", "O-7", "r", "OV1", "L1-P1"),
    ]
    for event in state:
        lane.emit(event)
    assert lane.dropped == 2
    queued = [lane.queue.get_nowait()[0] for _ in range(lane.queue.qsize())]
    assert queued[QUEUE_SIZE:] == state
