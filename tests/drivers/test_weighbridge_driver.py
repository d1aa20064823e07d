"""Weighbridge driver against the simulated indicator over a pty: weights, faults, cables."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from drivers.codec import Rejected
from drivers.weighbridge import (
    ScaleStatus,
    StableWeight,
    Weighbridge,
    WeighbridgeSettings,
    WeightReading,
)
from sim.weighbridge_device import WeighbridgeSim
from tests.drivers.serial_helpers import Collected, eventually, running

FAST = 20.0  # simulated time runs 20x: a 2 s settle takes 0.1 s, frames come at 200 Hz


def settings_for(sim: WeighbridgeSim, **overrides: Any) -> WeighbridgeSettings:
    values: dict[str, Any] = {
        "port": sim.path,
        "format": sim.format,
        "stability": {"band_kg": 20, "hold_s": 0.1, "max_gap_s": 0.5},
        "silence_s": 0.5,
    }
    if sim.format == "xk3190":
        values["xk3190"] = {"frames": sim.xk3190_frames}
    return WeighbridgeSettings(**(values | overrides))


@pytest.fixture
async def toledo() -> AsyncIterator[WeighbridgeSim]:
    async with WeighbridgeSim("toledo", time_scale=FAST, settle_s=2.0, seed=1) as sim:
        yield sim


def stable_kgs(got: Collected, since: float = 0.0) -> list[float]:
    return [s.kg for s in got.of(StableWeight, since)]


@pytest.mark.parametrize(
    ("fmt", "frames"), [("toledo", "stx"), ("xk3190", "stx"), ("xk3190", "equals")]
)
async def test_a_truck_rolls_on_and_its_settled_weight_is_reported_once(
    fmt: str, frames: str
) -> None:
    async with WeighbridgeSim(
        fmt,  # type: ignore[arg-type]
        time_scale=FAST,
        settle_s=2.0,
        xk3190_frames=frames,  # type: ignore[arg-type]
        seed=2,
    ) as sim:
        got = Collected()
        driver = Weighbridge(settings_for(sim))
        async with running(driver.supervisor(got.on_reading, got.on_state)):
            await eventually(lambda: stable_kgs(got) == [0.0], what="empty deck weighed")
            loaded_at = time.monotonic()
            sim.set_load(31520)
            await eventually(lambda: 31520.0 in stable_kgs(got), what="loaded deck weighed")
            # the swing while the truck rolled on was reported as motion, never as a weight
            assert ScaleStatus in {type(s) for s in got.of(ScaleStatus, loaded_at)}
            assert {s.state for s in got.of(ScaleStatus, loaded_at)} == {"motion"}
            assert stable_kgs(got) == [0.0, 31520.0]
            [stable] = got.of(StableWeight, loaded_at)
            assert stable.since >= loaded_at + 2.0 / FAST * 0.9  # not before it settled
            frames_seen = got.of(WeightReading)
            assert len(frames_seen) > 20
            if fmt == "toledo":
                assert any(f.motion for f in frames_seen)
            else:
                assert all(f.motion is None for f in frames_seen)


async def test_overload_and_negative_are_states_never_weights(toledo: WeighbridgeSim) -> None:
    got = Collected()
    driver = Weighbridge(settings_for(toledo))
    async with running(driver.supervisor(got.on_reading)):
        toledo.set_load(95000)  # over the simulated 80 t capacity
        await eventually(lambda: any(s.state == "overload" for s in got.of(ScaleStatus)))
        toledo.set_load(-60)
        await eventually(lambda: any(s.state == "negative" for s in got.of(ScaleStatus)))
        toledo.set_load(12000)
        await eventually(lambda: 12000.0 in stable_kgs(got))
    assert all(0 <= kg <= 80000 for kg in stable_kgs(got))


async def test_xk3190_overload_comes_from_the_configured_capacity() -> None:
    async with WeighbridgeSim("xk3190", time_scale=FAST, settle_s=2.0, capacity_kg=60000) as sim:
        got = Collected()
        settings = settings_for(sim, stability={"band_kg": 20, "hold_s": 0.1, "capacity_kg": 60000})
        async with running(Weighbridge(settings).supervisor(got.on_reading)):
            sim.set_load(75000)
            await eventually(lambda: any(s.state == "overload" for s in got.of(ScaleStatus)))
            assert all(kg <= 60000 for kg in stable_kgs(got))


async def test_noise_on_the_line_is_counted_and_weighing_goes_on(toledo: WeighbridgeSim) -> None:
    got = Collected()
    supervisor = Weighbridge(settings_for(toledo)).supervisor(got.on_reading)
    async with running(supervisor):
        await eventually(lambda: stable_kgs(got) == [0.0])
        toledo.inject(b"\x02garbage\x02\x00\xff" + b"\x02*0 0315200000")  # and half a frame
        toledo.set_load(24000)
        await eventually(lambda: 24000.0 in stable_kgs(got))
        assert supervisor.health.rejected >= 1
        assert supervisor.health.state == "up"
    # rejects are counted by the supervisor, never handed to the lane
    assert got.of(Rejected) == []


async def test_pulled_cable_back_within_5_s_and_nothing_from_before_the_gap(
    toledo: WeighbridgeSim,
) -> None:
    got = Collected()
    settings = settings_for(toledo)  # reconnect backoff capped at its default, 2 s
    supervisor = Weighbridge(settings).supervisor(got.on_reading, got.on_state)
    async with running(supervisor):
        toledo.set_load(20000)
        await eventually(lambda: 20000.0 in stable_kgs(got))
        toledo.unplug()
        await eventually(lambda: supervisor.health.state == "down", what="driver saw the pull")
        toledo.set_load(35000)  # the truck changes while the cable is out
        await eventually(lambda: supervisor.health.reconnects >= 3, what="failed reopen attempts")
        replugged_at = time.monotonic()
        toledo.replug()
        waited = await eventually(
            lambda: got.of(WeightReading, replugged_at), what="readings after the replug"
        )
        assert waited < 5.0
        await eventually(lambda: 35000.0 in stable_kgs(got, replugged_at))
    after = got.of(WeightReading, replugged_at)
    assert {r.kg for r in after} == {35000.0}  # nothing read before the gap came through
    [stable] = got.of(StableWeight, replugged_at)
    assert stable.since >= replugged_at
    assert [state for _, state in got.states] == ["up", "down", "up"]


async def test_a_silent_line_is_a_fault_and_recovers(toledo: WeighbridgeSim) -> None:
    got = Collected()
    supervisor = Weighbridge(settings_for(toledo, silence_s=0.3)).supervisor(
        got.on_reading, got.on_state
    )
    async with running(supervisor):
        await eventually(lambda: supervisor.health.state == "up")
        toledo.mute(True)
        await eventually(lambda: supervisor.health.state == "down", what="silence noticed")
        assert "silent" in supervisor.health.detail
        unmuted_at = time.monotonic()
        toledo.mute(False)
        waited = await eventually(lambda: got.of(WeightReading, unmuted_at))
        assert waited < 5.0
        assert supervisor.health.state == "up"


async def test_a_dead_indicator_behind_a_live_port_stays_down_across_reopens(
    toledo: WeighbridgeSim,
) -> None:
    got = Collected()
    supervisor = Weighbridge(settings_for(toledo, silence_s=0.2)).supervisor(
        got.on_reading, got.on_state
    )
    toledo.mute(True)  # powered off; its USB adapter still answers the open
    async with running(supervisor):
        await eventually(lambda: supervisor.health.reconnects >= 3, what="several reopens")
        assert [state for _, state in got.states] == ["down"]  # never "up" in between
        toledo.mute(False)
        await eventually(lambda: supervisor.health.state == "up", what="its first frame")


async def test_a_line_of_garbage_is_a_fault_not_a_quiet_scale() -> None:
    """The indicator sends XK3190 frames but the lane expects Toledo (a wrong setting)."""
    async with WeighbridgeSim("xk3190", time_scale=FAST) as sim:
        got = Collected()
        settings = settings_for(sim, format="toledo", silence_s=0.3)
        supervisor = Weighbridge(settings).supervisor(got.on_reading, got.on_state)
        async with running(supervisor):
            await eventually(lambda: supervisor.health.state == "down")
            assert "no valid frame" in supervisor.health.detail
            assert supervisor.health.rejected > 0
        assert got.of(WeightReading) == []


async def test_a_second_reader_of_the_port_is_refused(toledo: WeighbridgeSim) -> None:
    """A technician's tool opening the lane's port must not steal its bytes."""
    driver = Weighbridge(settings_for(toledo))
    async with driver.open_device() as first:
        frames = first.readings()
        assert isinstance(await anext(frames), WeightReading | Rejected)
        with pytest.raises(OSError, match="lock"):
            async with driver.open_device():
                pass
        await frames.aclose()
