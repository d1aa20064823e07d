"""The lane state machine, driven with plain values: (state, event, now) -> commands."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gatewayd.commands import (
    Alert,
    AuditOverride,
    Capture,
    CloseBarrier,
    Command,
    CommitPass,
    Display,
    LoadDocuments,
    OpenBarrier,
    PassClosed,
    SetLight,
    StopBarrier,
    UnlockSeal,
)
from gatewayd.documents import NoteStatus
from gatewayd.events import (
    BarrierChanged,
    DeviceFault,
    DeviceRecovered,
    Event,
    LoopChanged,
    Override,
    PassCommitted,
    PlateRead,
    QrScanned,
    SealRead,
    Tick,
    WatchlistChanged,
    WeightStable,
)
from gatewayd.lane import LaneCore, Phase
from gatewayd.reasons import Code, Outcome, Reason

from .helpers import (
    BOXES,
    CENTRAL,
    INSIDE,
    NOW,
    OUTSIDE,
    PLATE,
    SEAL,
    arrive,
    core,
    docs,
    feed,
    gps,
    loaded,
    note,
    readings,
    trip_open,
    unknown,
)


def kinds(commands: list[Command]) -> list[str]:
    return [type(c).__name__ for c in commands]


def decide(lane: LaneCore, events: list[Event], answer: Event | None = None) -> CommitPass:
    """Arrive, feed readings (answering the ledger lookup), return the commit asked for."""
    arrive(lane)
    out: list[Command] = []
    for event in events:
        out += lane.handle(event, NOW)
        if any(isinstance(c, LoadDocuments) for c in out) and answer is not None:
            out += lane.handle(answer, NOW)
            answer = None
    commits = [c for c in out if isinstance(c, CommitPass)]
    assert len(commits) == 1, kinds(out)
    return commits[0]


def codes(commit: CommitPass) -> set[Code]:
    return {r.code for r in commit.record.reasons}


# -- a pass from arrival to the barrier closing -----------------------------------------------


def test_arrival_opens_a_pass_and_triggers_the_cameras() -> None:
    lane = core()
    out = arrive(lane)
    assert out == [Capture("P1"), Display("请出示放行单 / Show your release note")]
    assert lane.phase is Phase.COLLECTING


def test_clean_pass_commits_then_lifts_barrier_then_closes_behind_the_truck() -> None:
    lane = core()
    commit = decide(lane, readings(), loaded())
    assert commit.record.outcome is Outcome.RELEASE
    assert commit.record.reasons == ()
    assert [(w.book_id, w.quantity) for w in commit.record.write_off] == [("BK1", 10.0)]
    # nothing moves until the ledger has committed
    assert lane.phase is Phase.COMMITTING
    out = lane.handle(PassCommitted("P1", Outcome.RELEASE, ()), NOW)
    assert out == [
        OpenBarrier("P1"),
        SetLight("green"),
        Display("请通行 / Proceed"),
        UnlockSeal(SEAL),
    ]
    drive = [
        (BarrierChanged("open"), []),
        (LoopChanged("safety", True), []),
        (LoopChanged("exit", True), []),
        (LoopChanged("arrival", False), []),
        (LoopChanged("safety", False), []),
        (LoopChanged("exit", False), ["CloseBarrier", "SetLight"]),
        (BarrierChanged("moving"), []),
        (BarrierChanged("closed"), ["PassClosed"]),
    ]
    for i, (event, expected) in enumerate(drive):
        got = kinds(lane.handle(event, NOW + 3 + i * 0.5))
        assert sorted(got) == sorted(expected), (event, got)
    assert lane.phase is Phase.IDLE


@pytest.mark.parametrize(
    ("name", "events", "answer", "outcome", "expected"),
    [
        (
            "plate differs",
            readings(plate="沪B99999"),
            loaded(),
            Outcome.HOLD,
            {Code.PLATE_MISMATCH},
        ),
        ("plate normalised", readings(plate=" 沪a·12345 "), loaded(), Outcome.RELEASE, set()),
        ("boxes in any order", readings(boxes=BOXES[::-1]), loaded(), Outcome.RELEASE, set()),
        (
            "a box differs",
            readings(boxes=(BOXES[0], "CSNU1111112")),
            loaded(),
            Outcome.HOLD,
            {Code.CONTAINER_MISMATCH},
        ),
        (
            "a box missing",
            readings(boxes=BOXES[:1]),
            loaded(),
            Outcome.HOLD,
            {Code.CONTAINER_MISMATCH},
        ),
        ("note unknown", readings(), unknown(), Outcome.REJECT, {Code.NOTE_UNKNOWN}),
        (
            "note used",
            readings(),
            loaded(docs(status=NoteStatus.USED)),
            Outcome.REJECT,
            {Code.NOTE_USED},
        ),
        (
            "note revoked",
            readings(),
            loaded(docs(status=NoteStatus.REVOKED)),
            Outcome.REJECT,
            {Code.NOTE_REVOKED},
        ),
        (
            "note expired in the ledger",
            readings(),
            loaded(docs(valid_until=NOW - 1)),
            Outcome.REJECT,
            {Code.NOTE_EXPIRED},
        ),
        (
            "signed validity over",
            readings(qr=CENTRAL.sign(note(valid_until=int(NOW) - 1))),
            loaded(),
            Outcome.REJECT,
            {Code.NOTE_EXPIRED},
        ),
        (
            "forged QR",
            readings(qr=CENTRAL.forge(note())),
            None,
            Outcome.REJECT,
            {Code.NOTE_BAD_SIGNATURE},
        ),
        (
            "note for another truck",
            readings(qr=CENTRAL.sign(note(plate="粤B00001"))),
            loaded(),
            Outcome.HOLD,
            {Code.PLATE_MISMATCH},
        ),
        (
            "exit note at an entry lane",
            readings(),
            loaded(docs(direction="exit")),
            Outcome.REJECT,
            {Code.NOTE_WRONG_DIRECTION},
        ),
        (
            "seal differs",
            readings(seal=("ES99999999", "sealed")),
            loaded(),
            Outcome.HOLD,
            {Code.SEAL_MISMATCH},
        ),
        (
            "seal tampered",
            readings(seal=(SEAL, "tampered")),
            loaded(),
            Outcome.HOLD,
            {Code.SEAL_TAMPERED},
        ),
        (
            "seal opened",
            readings(seal=(SEAL, "opened")),
            loaded(),
            Outcome.HOLD,
            {Code.SEAL_TAMPERED},
        ),
        ("overweight", readings(kg=30_501), loaded(), Outcome.HOLD, {Code.OVERWEIGHT}),
        ("within tolerance", readings(kg=30_500), loaded(), Outcome.RELEASE, set()),
        ("underweight", readings(kg=29_499), loaded(), Outcome.HOLD, {Code.UNDERWEIGHT}),
        (
            "balance short",
            readings(),
            loaded(docs(lines=(replace(docs().lines[0], remaining=9.0),))),
            Outcome.REJECT,
            {Code.BALANCE_INSUFFICIENT},
        ),
        (
            "short balance and a wrong plate: reject wins",
            readings(plate="沪B99999"),
            loaded(docs(lines=(replace(docs().lines[0], remaining=9.0),))),
            Outcome.REJECT,
            {Code.BALANCE_INSUFFICIENT, Code.PLATE_MISMATCH},
        ),
    ],
)
def test_decisions_and_reason_codes(
    name: str, events: list[Event], answer: Event | None, outcome: Outcome, expected: set[Code]
) -> None:
    commit = decide(core(), events, answer)
    assert commit.record.outcome is outcome, name
    assert codes(commit) == expected, name


def test_low_confidence_plate_is_held_for_a_human() -> None:
    events = readings()
    events[0] = PlateRead(PLATE, 0.42)
    commit = decide(core(), events, loaded())
    assert commit.record.outcome is Outcome.HOLD
    assert codes(commit) == {Code.LOW_CONFIDENCE}


def test_watchlist_holds_by_plate_or_container() -> None:
    for plates, boxes in ((frozenset({PLATE}), frozenset()), (frozenset(), frozenset({BOXES[1]}))):
        lane = core()
        lane.handle(WatchlistChanged(plates, boxes), NOW)
        commit = decide(lane, readings(), loaded())
        assert commit.record.outcome is Outcome.HOLD
        assert codes(commit) == {Code.WATCHLIST}


def test_a_box_with_two_seals_is_released_only_when_both_are_read_and_sealed() -> None:
    two = loaded(docs(seals=("ES1", "ES2")))
    others = [e for e in readings() if not isinstance(e, SealRead)]
    # the second seal still on its way: no decision until it comes (or the deadline)
    lane = core()
    arrive(lane)
    feed(lane, [*others, SealRead("ES1", "sealed")])
    assert not any(isinstance(c, CommitPass) for c in lane.handle(two, NOW))
    (commit,) = lane.handle(SealRead("ES2", "sealed"), NOW + 1)
    assert isinstance(commit, CommitPass)
    assert commit.record.outcome is Outcome.RELEASE
    assert commit.record.readings["seals"] == [
        {"id": "ES1", "state": "sealed"},
        {"id": "ES2", "state": "sealed"},
    ]
    out = lane.handle(PassCommitted("P1", Outcome.RELEASE, ()), NOW + 1)
    assert [c for c in out if isinstance(c, UnlockSeal)] == [UnlockSeal("ES1"), UnlockSeal("ES2")]

    # one seal tampered, then the other read clean: the tamper stands
    tampered = decide(
        core(), [SealRead("ES1", "tampered"), SealRead("ES2", "sealed"), *others], two
    )
    assert tampered.record.outcome is Outcome.HOLD
    assert codes(tampered) == {Code.SEAL_TAMPERED}
    # a tampered seal read clean a moment later is still tampered
    again = [SealRead("ES1", "tampered"), SealRead("ES1", "sealed"), SealRead("ES2", "sealed")]
    assert codes(decide(core(), [*again, *others], two)) == {Code.SEAL_TAMPERED}

    # only one of the two ever read: held at the deadline, naming the seal not read
    lane = core()
    arrive(lane)
    feed(lane, [*others, SealRead("ES1", "sealed")])
    lane.handle(two, NOW)
    (commit,) = lane.handle(Tick(), NOW + 20)
    assert isinstance(commit, CommitPass)
    assert commit.record.outcome is Outcome.HOLD
    assert commit.record.reasons == (Reason(Code.SEAL_MISMATCH, "note seal ES2 not read"),)


# -- transit trips and the geofence ------------------------------------------------------------


def test_transit_trip_waits_for_a_fix_and_closes_only_inside_the_fence() -> None:
    trip_docs = loaded(docs(trip=trip_open()))
    lane = core()
    arrive(lane)
    out = feed(lane, readings())
    assert LoadDocuments("RN1") in out
    assert not any(isinstance(c, CommitPass) for c in lane.handle(trip_docs, NOW))
    # an invalid fix does not count; a valid one inside the fence completes the pass
    assert lane.handle(gps(INSIDE, valid=False), NOW) == []
    (commit,) = lane.handle(gps(INSIDE), NOW)
    assert isinstance(commit, CommitPass)
    assert commit.record.outcome is Outcome.RELEASE
    assert commit.record.trip_id == "TR1"

    outside = decide(core(), [*readings(), gps(OUTSIDE)], trip_docs)
    assert codes(outside) == {Code.TRIP_OPEN}


def test_transit_trip_without_any_fix_is_held_at_the_deadline() -> None:
    lane = core()
    arrive(lane)
    feed(lane, readings())
    lane.handle(loaded(docs(trip=trip_open())), NOW)
    (commit,) = lane.handle(Tick(), NOW + 20)
    assert isinstance(commit, CommitPass)
    assert codes(commit) == {Code.TRIP_OPEN}


# -- deadlines and devices ---------------------------------------------------------------------


def test_missing_reading_is_held_at_the_deadline_naming_it() -> None:
    lane = core()
    arrive(lane)
    feed(lane, [e for e in readings() if not isinstance(e, WeightStable)])
    lane.handle(loaded(), NOW)
    assert lane.handle(Tick(), NOW + 19.9) == []
    (commit,) = lane.handle(Tick(), NOW + 20)
    assert isinstance(commit, CommitPass)
    assert commit.record.reasons == (Reason(Code.READING_MISSING, "weight"),)
    assert commit.record.outcome is Outcome.HOLD


def test_required_device_down_decides_at_once_with_device_fault() -> None:
    lane = core()
    arrive(lane)
    feed(lane, [e for e in readings() if not isinstance(e, WeightStable)])
    lane.handle(loaded(), NOW)
    out = lane.handle(DeviceFault("weighbridge", "silent for 5 s"), NOW + 1)
    commit = next(c for c in out if isinstance(c, CommitPass))
    assert commit.record.reasons == (Reason(Code.DEVICE_FAULT, "weighbridge"),)


def test_relay_down_releases_nobody_and_recovers_by_itself() -> None:
    lane = core()
    lane.handle(DeviceFault("relay", "connection refused"), NOW)
    commit = decide(lane, readings(), loaded())
    assert commit.record.outcome is Outcome.HOLD
    assert Reason(Code.DEVICE_FAULT, "relay") in commit.record.reasons
    lane.handle(PassCommitted("P1", Outcome.HOLD, commit.record.reasons), NOW)
    lane.handle(LoopChanged("arrival", False), NOW + 1)
    assert lane.phase is Phase.IDLE
    lane.handle(DeviceRecovered("relay"), NOW + 2)
    lane.handle(LoopChanged("arrival", True), NOW + 3)
    feed(lane, readings(qr=CENTRAL.sign(note(note_id="RN2"))), NOW + 3)
    (commit2,) = lane.handle(loaded(docs(note_id="RN2"), "RN2"), NOW + 3)
    assert isinstance(commit2, CommitPass)
    assert commit2.record.outcome is Outcome.RELEASE


def test_barrier_not_reporting_open_in_time_is_a_device_fault() -> None:
    lane = core()
    decide(lane, readings(), loaded())
    lane.handle(PassCommitted("P1", Outcome.RELEASE, ()), NOW)
    assert lane.handle(Tick(), NOW + 3.9) == []
    (alert,) = lane.handle(Tick(), NOW + 4.1)
    assert isinstance(alert, Alert)
    assert alert.kind == "DEVICE_FAULT"
    assert "barrier" in lane.faults
    lane.handle(BarrierChanged("open"), NOW + 5)  # it opened late: reports again
    assert "barrier" not in lane.faults


def test_ledger_turning_a_release_down_keeps_the_barrier_down() -> None:
    lane = core()
    decide(lane, readings(), loaded())
    out = lane.handle(PassCommitted("P1", Outcome.REJECT, (Reason(Code.NOTE_USED, "RN1"),)), NOW)
    assert not any(isinstance(c, OpenBarrier) for c in out)
    assert SetLight("red") in out
    assert lane.phase is Phase.HELD


def test_held_truck_leaving_ends_the_pass_and_the_next_one_starts() -> None:
    lane = core()
    commit = decide(lane, readings(plate="沪B99999"), loaded())
    out = lane.handle(PassCommitted("P1", Outcome.HOLD, commit.record.reasons), NOW)
    assert Display("请前往查验区 / Proceed to inspection") in out
    assert lane.handle(LoopChanged("arrival", False), NOW + 5) == [PassClosed("P1")]
    assert kinds(lane.handle(LoopChanged("arrival", True), NOW + 9)) == ["Capture", "Display"]
    assert lane.tx is not None
    assert lane.tx.pass_id == "P2"


# -- safety ------------------------------------------------------------------------------------


def _released(lane: LaneCore) -> None:
    decide(lane, readings(), loaded())
    lane.handle(PassCommitted("P1", Outcome.RELEASE, ()), NOW)
    lane.handle(BarrierChanged("open"), NOW + 2)


def _on_the_exit_loop(lane: LaneCore) -> float:
    """Release a truck and drive it under the barrier onto the exit loop; returns the time it
    drove in."""
    _released(lane)
    t = NOW + 3
    feed(lane, [LoopChanged("safety", True), LoopChanged("arrival", False)], t)
    feed(lane, [LoopChanged("exit", True), LoopChanged("safety", False)], t + 1)
    return t


def test_tailgater_raises_an_alert_and_barrier_waits_for_both() -> None:
    lane = core()
    _released(lane)
    t = NOW + 3
    feed(lane, [LoopChanged("safety", True), LoopChanged("arrival", False)], t)
    out = lane.handle(LoopChanged("arrival", True), t + 0.5)  # the second truck, close behind
    assert [a.kind for a in out if isinstance(a, Alert)] == ["TAILGATING"]
    assert SetLight("red") in out  # it faces a raised arm: the light tells it to stop
    out = feed(lane, [LoopChanged("exit", True), LoopChanged("safety", False)], t + 1)
    out += lane.handle(LoopChanged("exit", False), t + 2)  # first truck out
    assert not any(isinstance(c, CloseBarrier) for c in out)
    out = feed(lane, [LoopChanged("arrival", False), LoopChanged("safety", True)], t + 3)
    out += feed(lane, [LoopChanged("exit", True), LoopChanged("safety", False)], t + 4)
    out += lane.handle(LoopChanged("exit", False), t + 5)  # second truck out
    assert CloseBarrier() in out


def _committing(lane: LaneCore) -> CommitPass:
    arrive(lane)
    out = feed(lane, [*readings(), loaded()])
    (commit,) = (c for c in out if isinstance(c, CommitPass))
    assert commit.record.outcome is Outcome.RELEASE
    return commit


def test_a_release_committed_after_its_truck_left_and_another_pulled_in_lifts_for_nobody() -> None:
    lane = core(leave_s=3.0)
    commit = _committing(lane)
    # the ledger is slow; truck A backs off, and truck B pulls in 4 s later
    lane.handle(LoopChanged("arrival", False), NOW + 0.5)
    lane.handle(LoopChanged("arrival", True), NOW + 4.5)
    out = lane.handle(PassCommitted(commit.record.pass_id, Outcome.RELEASE, ()), NOW + 5)
    assert not any(isinstance(c, OpenBarrier | UnlockSeal) for c in out)
    assert SetLight("green") not in out
    assert [a.kind for a in out if isinstance(a, Alert)] == ["WITHDRAWN"]
    assert PassClosed("P1") in out
    assert Capture("P2") in out  # truck B gets a pass of its own
    assert lane.release_for is None


def test_a_release_committed_while_its_truck_stands_back_lifts_only_when_it_returns() -> None:
    lane = core(leave_s=3.0)
    commit = _committing(lane)
    lane.handle(LoopChanged("arrival", False), NOW + 0.5)
    out = lane.handle(PassCommitted(commit.record.pass_id, Outcome.RELEASE, ()), NOW + 1)
    assert not any(isinstance(c, OpenBarrier) for c in out)
    out = lane.handle(LoopChanged("arrival", True), NOW + 2)  # back within leave_s: same truck
    assert OpenBarrier("P1") in out
    assert SetLight("green") in out


def test_a_release_committed_for_a_truck_that_never_came_back_is_withdrawn() -> None:
    lane = core(leave_s=3.0)
    commit = _committing(lane)
    lane.handle(LoopChanged("arrival", False), NOW + 0.5)
    lane.handle(PassCommitted(commit.record.pass_id, Outcome.RELEASE, ()), NOW + 1)
    out = lane.handle(Tick(), NOW + 4)
    assert [a.kind for a in out if isinstance(a, Alert)] == ["WITHDRAWN"]
    assert lane.phase is Phase.IDLE
    out = lane.handle(LoopChanged("arrival", True), NOW + 6)  # the next truck
    assert not any(isinstance(c, OpenBarrier) for c in out)
    assert Capture("P2") in out


def test_a_truck_off_the_arrival_loop_is_not_released_until_it_is_back() -> None:
    lane = core(leave_s=3.0)
    arrive(lane)
    *early, weight = readings()
    feed(lane, [*early, loaded()])
    lane.handle(LoopChanged("arrival", False), NOW + 1)  # it backs off
    assert lane.handle(weight, NOW + 1.5) == []  # its last reading: no decision meanwhile
    out = lane.handle(Tick(), NOW + 4.5)  # gone for leave_s: held as left
    (commit,) = (c for c in out if isinstance(c, CommitPass))
    assert commit.record.outcome is not Outcome.RELEASE
    assert "READING_MISSING(vehicle left before a decision)" in map(str, commit.record.reasons)


def test_after_a_relay_outage_nothing_is_lowered_before_the_first_poll_is_in() -> None:
    lane = core()
    lane.handle(BarrierChanged("open"), NOW)  # open, nothing released: being lowered
    lane.handle(DeviceFault("relay", "connection lost"), NOW + 0.1)
    lane.handle(Tick(), NOW + 5)  # the arm never reported closed
    # meanwhile a car rolled under the arm; no loop event could reach the lane
    lane.handle(DeviceRecovered("relay"), NOW + 6)  # the connection is open again
    assert not any(isinstance(c, CloseBarrier) for c in lane.handle(Tick(), NOW + 6.05))
    # the first poll: the loops, then the barrier
    lane.handle(LoopChanged("safety", True), NOW + 6.1)
    out = lane.handle(BarrierChanged("open"), NOW + 6.1)
    assert not any(isinstance(c, CloseBarrier) for c in out)
    assert CloseBarrier() in lane.handle(LoopChanged("safety", False), NOW + 8)  # now it may


def test_nothing_is_closed_on_loops_not_polled_since_a_relay_outage() -> None:
    lane = core()
    _released(lane)
    t = NOW + 3
    feed(lane, [LoopChanged("safety", True), LoopChanged("arrival", False)], t)
    lane.handle(LoopChanged("arrival", True), t + 0.5)  # a second vehicle close behind
    feed(lane, [LoopChanged("exit", True), LoopChanged("safety", False)], t + 1)
    lane.handle(LoopChanged("exit", False), t + 2)  # the first is out; the arm waits
    lane.handle(DeviceFault("relay", "connection lost"), t + 2.5)
    lane.handle(DeviceRecovered("relay"), t + 3)  # connected again, not yet polled
    # settle_s has passed, but the second vehicle may be under the arm by now
    assert CloseBarrier() not in lane.handle(Tick(), t + 8)


def test_no_release_is_decided_on_loops_not_polled_since_a_relay_outage() -> None:
    lane = core()
    arrive(lane)
    *early, weight = readings()
    feed(lane, [*early, loaded()])
    lane.handle(DeviceFault("relay", "connection lost"), NOW + 1)  # the truck may back off
    lane.handle(DeviceRecovered("relay"), NOW + 2)  # connected again, not yet polled
    out = lane.handle(weight, NOW + 2.01)
    (commit,) = (c for c in out if isinstance(c, CommitPass))
    assert commit.record.outcome is Outcome.HOLD
    assert Reason(Code.DEVICE_FAULT, "relay inputs not polled yet") in commit.record.reasons


def test_a_relay_back_while_a_second_vehicle_waits_keeps_its_light_red() -> None:
    lane = core()
    commit = _committing(lane)
    lane.handle(PassCommitted(commit.record.pass_id, Outcome.RELEASE, ()), NOW)
    lane.handle(BarrierChanged("moving"), NOW + 0.5)  # the arm still rising
    feed(lane, [LoopChanged("safety", True), LoopChanged("arrival", False)], NOW + 1)
    assert SetLight("red") in lane.handle(LoopChanged("arrival", True), NOW + 1.5)
    lane.handle(DeviceFault("relay", "blip"), NOW + 2)
    out = lane.handle(DeviceRecovered("relay"), NOW + 2.5)
    assert OpenBarrier("P1") in out  # the release stands
    assert SetLight("green") not in out


def test_a_hold_answered_after_its_truck_left_does_not_hold_the_next_one() -> None:
    lane = core(leave_s=3.0)
    arrive(lane)
    out = feed(lane, [*readings(kg=40_000), loaded()])  # overweight: a hold
    (commit,) = (c for c in out if isinstance(c, CommitPass))
    lane.handle(LoopChanged("arrival", False), NOW + 0.5)  # truck A leaves (a slow ledger)
    lane.handle(LoopChanged("arrival", True), NOW + 4.5)  # truck B pulls in
    lane.handle(LoopChanged("arrival", False), NOW + 5)  # a gap in B (tractor, trailer)
    lane.handle(LoopChanged("arrival", True), NOW + 5.5)
    out = lane.handle(PassCommitted(commit.record.pass_id, Outcome.HOLD, ()), NOW + 6)
    # B gets a pass of its own: an officer's release of "the held pass" was A's note for B
    assert PassClosed("P1") in out
    assert Capture("P2") in out


def test_vehicle_under_a_closing_barrier_reverses_it() -> None:
    lane = core()
    t = _on_the_exit_loop(lane)
    assert CloseBarrier() in lane.handle(LoopChanged("exit", False), t + 2)
    out = lane.handle(LoopChanged("safety", True), t + 2.5)
    assert OpenBarrier("P1") in out
    # and it is not lowered again while the loop is occupied, however long
    assert not any(isinstance(c, CloseBarrier) for c in lane.handle(Tick(), t + 60))


def test_the_next_truck_waiting_while_the_arm_closes_gets_its_own_pass_not_an_alarm() -> None:
    lane = core()
    t = _on_the_exit_loop(lane)
    assert CloseBarrier() in lane.handle(LoopChanged("exit", False), t + 2)
    assert lane.handle(LoopChanged("arrival", True), t + 2.5) == []  # the next truck queues
    out = lane.handle(BarrierChanged("closed"), t + 4)
    assert out == [
        PassClosed("P1"),
        Capture("P2"),
        Display("请出示放行单 / Show your release note"),
    ]


def test_a_waiting_truck_that_drives_in_under_the_closing_arm_is_a_tailgater() -> None:
    lane = core()
    t = _on_the_exit_loop(lane)
    lane.handle(LoopChanged("exit", False), t + 2)
    lane.handle(LoopChanged("arrival", True), t + 2.5)
    out = lane.handle(LoopChanged("safety", True), t + 3)
    # the arm goes back up rather than onto it, the light stays red, and it is reported
    assert OpenBarrier("P1") in out
    assert SetLight("green") not in out
    assert [a.kind for a in out if isinstance(a, Alert)] == ["TAILGATING"]
    # the arm waits for it to leave as well
    feed(lane, [LoopChanged("arrival", False), LoopChanged("exit", True)], t + 4)
    out = lane.handle(LoopChanged("safety", False), t + 4.5)
    out += lane.handle(LoopChanged("exit", False), t + 5)
    assert CloseBarrier() in out


def test_released_truck_that_never_passes_gets_the_barrier_closed_after_a_while() -> None:
    lane = core()
    _released(lane)
    assert lane.handle(LoopChanged("arrival", False), NOW + 3) == []
    assert lane.handle(Tick(), NOW + 10) == []
    out = lane.handle(Tick(), NOW + 18.5)
    assert CloseBarrier() in out
    assert [a.kind for a in out if isinstance(a, Alert)] == ["WITHDRAWN"]


def test_open_barrier_with_nobody_released_is_closed_when_safe() -> None:
    lane = core()
    lane.handle(LoopChanged("safety", True), NOW)
    # someone under it: wait (the light, left as it was, turns red)
    assert lane.handle(BarrierChanged("open"), NOW) == [SetLight("red")]
    assert CloseBarrier() in lane.handle(LoopChanged("safety", False), NOW + 1)


def test_a_light_left_green_by_a_restart_or_a_relay_outage_turns_red() -> None:
    lane = core()
    assert lane.handle(BarrierChanged("closed"), NOW) == [SetLight("red")]  # the lane starts
    arrive(lane, NOW + 1)
    assert lane.handle(BarrierChanged("closed"), NOW + 2) == []  # known: nothing to set
    lane.handle(DeviceFault("relay", "connection lost"), NOW + 3)
    lane.handle(DeviceRecovered("relay"), NOW + 4)
    assert lane.handle(BarrierChanged("closed"), NOW + 4.1) == [SetLight("red")]


# -- the QR code -------------------------------------------------------------------------------


def test_qr_seen_twice_is_one_scan_and_foreign_codes_are_ignored() -> None:
    lane = core()
    arrive(lane)
    payload = CENTRAL.sign(note())
    assert lane.handle(QrScanned("https://example.com/menu"), NOW) == []
    assert lane.handle(QrScanned(payload), NOW) == [LoadDocuments("RN1")]
    assert lane.handle(QrScanned(payload), NOW) == []
    assert lane.foreign_qr == 1


def test_a_note_a_camera_decoded_for_the_last_pass_is_not_this_one_s() -> None:
    lane = core()
    arrive(lane)
    payload = CENTRAL.sign(note())
    assert lane.handle(QrScanned(payload, "P0"), NOW) == []  # decoded from P0's frames, late
    assert lane.handle(QrScanned(payload, "P1"), NOW) == [LoadDocuments("RN1")]


def test_readings_outside_a_pass_are_ignored() -> None:
    lane = core()
    for event in readings():
        assert lane.handle(event, NOW) == []
    assert lane.tx is None


# -- overrides ---------------------------------------------------------------------------------


def test_officer_override_releases_a_held_truck_through_the_audit() -> None:
    lane = core()
    commit = decide(lane, readings(kg=40_000), loaded())
    lane.handle(PassCommitted("P1", Outcome.HOLD, commit.record.reasons), NOW)
    override = Override("release", "officer-7", "weighbridge miscalibrated", "OV1", "P1")
    (audit,) = lane.handle(override, NOW + 30)
    assert isinstance(audit, AuditOverride)
    assert audit.record.outcome is Outcome.RELEASE
    assert Reason(Code.OVERRIDE, "officer-7") in audit.record.reasons
    assert [(w.book_id, w.quantity) for w in audit.record.write_off] == [("BK1", 10.0)]
    out = lane.handle(PassCommitted("P1", Outcome.RELEASE, audit.record.reasons), NOW + 30)
    assert OpenBarrier("P1") in out


def test_override_with_no_pass_waiting_is_refused() -> None:
    (alert,) = core().handle(Override("release", "officer-7", "why", "OV1", "P1"), NOW)
    assert isinstance(alert, Alert)
    assert alert.kind == "OVERRIDE_IGNORED"


def test_override_meant_for_a_truck_that_has_gone_does_not_release_the_next() -> None:
    lane = core()
    commit = decide(lane, readings(plate="沪B99999"), loaded())
    lane.handle(PassCommitted("P1", Outcome.HOLD, commit.record.reasons), NOW)
    # the officer looks at P1; meanwhile it leaves and P2 is held too
    lane.handle(LoopChanged("arrival", False), NOW + 5)
    lane.handle(LoopChanged("arrival", True), NOW + 8)
    out = feed(lane, readings(plate="沪C77777"), NOW + 9)
    out += lane.handle(loaded(), NOW + 9)
    (commit2,) = [c for c in out if isinstance(c, CommitPass)]
    lane.handle(PassCommitted("P2", Outcome.HOLD, commit2.record.reasons), NOW + 9)
    assert lane.phase is Phase.HELD
    (alert,) = lane.handle(Override("release", "officer-7", "seen", "OV1", "P1"), NOW + 10)
    assert isinstance(alert, Alert)
    assert alert.kind == "OVERRIDE_IGNORED"
    assert lane.phase is Phase.HELD


# -- a vehicle that leaves, an arm with a mind of its own ---------------------------------------


def test_a_truck_that_leaves_before_the_decision_is_held_and_the_next_gets_its_own_pass() -> None:
    lane = core()
    arrive(lane)
    plate, boxes, *_ = readings()
    feed(lane, [plate, boxes])
    # a short gap on the loop is one vehicle (tractor, then trailer)
    lane.handle(LoopChanged("arrival", False), NOW + 1)
    assert lane.handle(LoopChanged("arrival", True), NOW + 2) == []
    assert lane.handle(Tick(), NOW + 6) == []
    # gone for longer: decided at once, held, naming why; nothing waits for the deadline
    lane.handle(LoopChanged("arrival", False), NOW + 7)
    (commit,) = lane.handle(Tick(), NOW + 10.5)
    assert isinstance(commit, CommitPass)
    assert commit.record.outcome is Outcome.HOLD
    assert Reason(Code.READING_MISSING, "vehicle left before a decision") in commit.record.reasons
    # another truck rolls up before the ledger answers: it gets a pass of its own
    assert lane.handle(LoopChanged("arrival", True), NOW + 11) == []
    out = lane.handle(PassCommitted("P1", Outcome.HOLD, commit.record.reasons), NOW + 11)
    assert PassClosed("P1") in out
    assert Capture("P2") in out
    # and its readings are judged alone
    out = feed(lane, readings(), NOW + 12)
    out += lane.handle(loaded(), NOW + 12)
    (commit2,) = [c for c in out if isinstance(c, CommitPass)]
    assert commit2.record.pass_id == "P2"
    assert commit2.record.outcome is Outcome.RELEASE


def test_a_held_truck_whose_loop_flickers_while_the_ledger_writes_keeps_its_pass() -> None:
    lane = core()
    commit = decide(lane, readings(plate="沪B99999"), loaded())
    lane.handle(LoopChanged("arrival", False), NOW + 0.1)  # the trailer coupling over the loop
    lane.handle(LoopChanged("arrival", True), NOW + 0.3)
    out = lane.handle(PassCommitted("P1", Outcome.HOLD, commit.record.reasons), NOW + 0.4)
    assert lane.phase is Phase.HELD
    assert not any(isinstance(c, Capture) for c in out)
    assert lane.tx is not None
    assert lane.tx.pass_id == "P1"


def test_an_arm_that_closes_by_itself_ends_the_pass_and_the_lane_goes_on() -> None:
    lane = core()
    t = _on_the_exit_loop(lane)
    lane.handle(BarrierChanged("closed"), t + 1.5)  # auto-close, before the exit loop clears
    out = lane.handle(LoopChanged("exit", False), t + 2)
    assert PassClosed("P1") in out
    assert lane.phase is Phase.IDLE
    assert kinds(lane.handle(LoopChanged("arrival", True), t + 5)) == ["Capture", "Display"]
    assert lane.handle(Tick(), t + 12) == []  # and no false barrier fault
    assert not lane.faults


def test_an_arm_that_goes_back_up_while_closing_is_lowered_again() -> None:
    lane = core()
    t = _on_the_exit_loop(lane)
    assert CloseBarrier() in lane.handle(LoopChanged("exit", False), t + 2)
    lane.handle(BarrierChanged("moving"), t + 2.5)
    lane.handle(BarrierChanged("open"), t + 3)  # its own obstacle sensor reversed it
    out = lane.handle(Tick(), t + 6.5)  # past the barrier timeout
    assert [a.kind for a in out if isinstance(a, Alert)] == ["DEVICE_FAULT"]
    assert CloseBarrier() in out
    out = lane.handle(BarrierChanged("closed"), t + 9)
    assert PassClosed("P1") in out
    assert not lane.faults


def test_an_arm_already_up_when_a_closing_is_reversed_is_no_barrier_fault() -> None:
    lane = core()
    t = _on_the_exit_loop(lane)
    lane.handle(LoopChanged("exit", False), t + 2)  # closing...
    lane.handle(BarrierChanged("open"), t + 2.2)  # ...the arm's own sensor sent it back up
    out = lane.handle(LoopChanged("safety", True), t + 2.5)  # and something is under it
    assert OpenBarrier("P1") in out
    assert lane.handle(Tick(), t + 10) == []  # the arm is where it was sent: no fault
    assert not lane.faults


def test_a_truck_held_in_front_of_an_arm_found_open_at_start_gets_it_lowered() -> None:
    lane = core()
    # the relay's first poll reports the loops before the limit switches
    assert lane.handle(LoopChanged("arrival", True), NOW) == [
        Capture("P1"),
        Display("请出示放行单 / Show your release note"),
    ]
    out = lane.handle(BarrierChanged("open"), NOW + 0.1)
    assert CloseBarrier() in out


def test_a_vehicle_under_an_arm_lowered_with_nothing_released_stops_it_there() -> None:
    lane = core()
    assert CloseBarrier() in lane.handle(BarrierChanged("open"), NOW)  # found open at start
    lane.handle(BarrierChanged("moving"), NOW + 0.5)
    out = lane.handle(LoopChanged("safety", True), NOW + 1)  # a car squeezes in under it
    assert StopBarrier() in out
    assert OpenBarrier not in {type(c) for c in out}  # nothing is released: it may not lift
    assert [a.kind for a in out if isinstance(a, Alert)] == ["VEHICLE_UNDER_ARM"]
    assert lane.handle(Tick(), NOW + 10) == []  # a stopped arm is no barrier fault
    # once the car is out from under it, the arm goes down again
    assert CloseBarrier() in lane.handle(LoopChanged("safety", False), NOW + 12)
    assert lane.handle(BarrierChanged("closed"), NOW + 14) == []
    assert lane.handle(LoopChanged("safety", True), NOW + 20) == []  # down: nothing to stop
    assert not lane.faults


def test_a_vehicle_under_an_arm_lowered_in_front_of_a_held_truck_stops_it_too() -> None:
    lane = core()
    arrive(lane)
    assert CloseBarrier() in lane.handle(BarrierChanged("open"), NOW + 0.1)
    out = lane.handle(LoopChanged("safety", True), NOW + 0.5)
    assert StopBarrier() in out
    assert [a.pass_id for a in out if isinstance(a, Alert)] == ["P1"]


def test_a_ledger_that_does_not_answer_the_note_lookup_holds_instead_of_rejecting() -> None:
    lane = core()
    arrive(lane)
    feed(lane, readings())  # LoadDocuments asked, never answered
    (commit,) = lane.handle(Tick(), NOW + 20)
    assert isinstance(commit, CommitPass)
    assert commit.record.outcome is Outcome.HOLD
    assert commit.record.reasons == (Reason(Code.DEVICE_FAULT, "ledger did not answer"),)
