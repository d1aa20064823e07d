"""The stability filter: tables of (frames, times) -> what the lane is told."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.weighbridge import ScaleStatus, StabilityFilter, StableWeight, WeightReading


def frame(kg: float | None, *, motion: bool | None = False, **flags: object) -> WeightReading:
    return WeightReading(kg=kg, motion=motion, **flags)  # type: ignore[arg-type]


def run(
    filt: StabilityFilter, frames: list[tuple[float, WeightReading]]
) -> list[tuple[float, StableWeight | ScaleStatus]]:
    out = []
    for now, reading in frames:
        event = filt.update(reading, now)
        if event is not None:
            out.append((now, event))
    return out


def every(
    period: float, start: float, readings: list[WeightReading]
) -> list[tuple[float, WeightReading]]:
    return [(start + i * period, r) for i, r in enumerate(readings)]


def test_settles_once_after_the_hold_time() -> None:
    filt = StabilityFilter(band_kg=20, hold_s=1.0, min_frames=3)
    readings = [frame(31500), frame(31510), frame(31520), frame(31510)] * 5
    events = run(filt, every(0.1, 0.0, readings))
    assert len(events) == 1
    at, stable = events[0]
    assert isinstance(stable, StableWeight)
    assert at == pytest.approx(1.0)  # the frame at t = 1.0 completes the hold
    assert stable.kg == 31510.0  # median of the run
    assert stable.since == 0.0
    assert stable.spread_kg == 20.0
    assert stable.motion is False


def test_motion_flag_restarts_the_run_and_is_reported_once() -> None:
    filt = StabilityFilter(band_kg=20, hold_s=0.5)
    frames = every(
        0.1, 0.0, [frame(31500)] * 4 + [frame(29000, motion=True)] * 3 + [frame(31500)] * 8
    )
    events = run(filt, frames)
    assert [type(e).__name__ for _, e in events] == ["ScaleStatus", "StableWeight"]
    assert events[0][1] == ScaleStatus("motion", 0.4)
    stable = events[1][1]
    assert isinstance(stable, StableWeight)
    assert stable.since == pytest.approx(
        0.7
    )  # the run started with the first quiet frame after motion
    assert events[1][0] >= 0.7 + 0.5


def test_readings_leaving_the_band_count_as_motion_even_without_the_flag() -> None:
    # XK3190 frames carry no motion flag: only the band and the hold time decide
    filt = StabilityFilter(band_kg=20, hold_s=0.5)
    ramp = [frame(w, motion=None) for w in range(0, 30000, 3000)]
    settled = [frame(31500, motion=None)] * 7
    events = run(filt, every(0.1, 0.0, ramp + settled))
    kinds = [e for _, e in events]
    assert ScaleStatus("motion", 0.1) in kinds
    stables = [e for e in kinds if isinstance(e, StableWeight)]
    assert [s.kg for s in stables] == [31500.0]


def test_not_a_weight_states_are_reported_and_never_weighed() -> None:
    cases = {
        "overload": frame(None, overload=True),
        "underload": frame(None, underload=True),
        "negative": frame(-40.0),
        "no_gross": frame(18000.0, net=True),  # net without its tare
        "unzeroed": frame(31500.0, unzeroed=True),
    }
    for state, reading in cases.items():
        filt = StabilityFilter(band_kg=20, hold_s=0.2)
        events = run(filt, every(0.1, 0.0, [reading] * 20))
        assert [e for _, e in events] == [ScaleStatus(state, 0.0)], state  # type: ignore[arg-type]


def test_over_capacity_is_overload() -> None:
    filt = StabilityFilter(band_kg=20, hold_s=0.2, capacity_kg=60000)
    events = run(filt, every(0.1, 0.0, [frame(60100.0)] * 10))
    assert [e for _, e in events] == [ScaleStatus("overload", 0.0)]


def test_net_frame_with_tare_weighs_the_gross() -> None:
    filt = StabilityFilter(band_kg=20, hold_s=0.2)
    events = run(filt, every(0.1, 0.0, [frame(18000.0, net=True, tare_kg=14500.0)] * 5))
    [(_, stable)] = events
    assert isinstance(stable, StableWeight)
    assert stable.kg == 32500.0


def test_a_gap_in_the_frames_restarts_the_run() -> None:
    filt = StabilityFilter(band_kg=20, hold_s=1.0, max_gap_s=0.5)
    frames = every(0.1, 0.0, [frame(31500)] * 6) + every(0.1, 3.0, [frame(31500)] * 12)
    [(at, stable)] = run(filt, frames)
    assert isinstance(stable, StableWeight)
    assert stable.since == 3.0  # nothing before the gap counted
    assert at == pytest.approx(4.0)


def test_min_frames_holds_back_a_sparse_run() -> None:
    filt = StabilityFilter(band_kg=20, hold_s=0.5, min_frames=4)
    events = run(filt, [(0.0, frame(100)), (0.45, frame(100)), (0.9, frame(100))])
    assert events == []
    events = run(filt, [(1.3, frame(100))])
    assert len(events) == 1


def test_reset_forgets_the_run() -> None:
    filt = StabilityFilter(band_kg=20, hold_s=0.5)
    run(filt, every(0.1, 0.0, [frame(100)] * 4))
    filt.reset()
    assert run(filt, every(0.1, 0.4, [frame(100)] * 3)) == []


def test_new_load_after_a_stable_one_is_reported_again() -> None:
    filt = StabilityFilter(band_kg=20, hold_s=0.3)
    frames = every(0.1, 0.0, [frame(0)] * 5 + [frame(15000, motion=True)] * 3 + [frame(31500)] * 5)
    events = [e for _, e in run(filt, frames)]
    assert [type(e).__name__ for e in events] == ["StableWeight", "ScaleStatus", "StableWeight"]
    assert [e.kg for e in events if isinstance(e, StableWeight)] == [0.0, 31500.0]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0.001, 0.4),  # time step (strictly increasing clock)
            st.one_of(st.none(), st.floats(-50, 40000).map(lambda x: round(x, 1))),
            st.sampled_from([False, True, None]),  # motion
            st.booleans(),  # overload
        ),
        max_size=60,
    )
)
def test_every_stable_weight_is_backed_by_a_quiet_run(
    steps: list[tuple[float, float | None, bool | None, bool]],
) -> None:
    band, hold, min_frames = 25.0, 0.8, 3
    filt = StabilityFilter(band_kg=band, hold_s=hold, min_frames=min_frames, max_gap_s=0.3)
    now = 0.0
    seen: list[tuple[float, WeightReading]] = []
    for step, kg, motion, overload in steps:
        now += step
        reading = frame(None if overload else kg, motion=motion, overload=overload)
        seen.append((now, reading))
        event = filt.update(reading, now)
        if isinstance(event, StableWeight):
            run_frames = [(t, r) for t, r in seen if t >= event.since]
            assert len(run_frames) >= min_frames
            assert event.at - event.since >= hold
            weights = [r.kg for _, r in run_frames]
            # the whole run: weights, no motion, no overload, non-negative, within the band
            assert all(w is not None and w >= 0 for w in weights)
            assert all(not r.motion and not r.overload for _, r in run_frames)
            assert max(weights) - min(weights) <= band  # type: ignore[type-var,operator]
            assert min(weights) <= event.kg <= max(weights)  # type: ignore[type-var,operator]
            times = [t for t, _ in run_frames]
            assert all(b - a <= 0.3 for a, b in itertools.pairwise(times))
