"""Safety over random event sequences: whatever happens, in whatever order, the core never
lowers the barrier onto an occupied safety loop and never lifts it without a release."""

from __future__ import annotations

from collections.abc import Iterator

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatewayd.commands import (
    AuditOverride,
    CloseBarrier,
    Command,
    CommitPass,
    LoadDocuments,
    OpenBarrier,
    StopBarrier,
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
    Tick,
)
from gatewayd.lane import LaneCore, Phase
from gatewayd.reasons import Code, Outcome, Reason

from .helpers import CENTRAL, INSIDE, NOW, OUTSIDE, core, docs, gps, loaded, note, readings, unknown

PASS_IDS = ["P1", "P2", "P3", "P4"]

events = st.one_of(
    st.builds(LoopChanged, st.sampled_from(["arrival", "safety", "exit"]), st.booleans()),
    st.builds(BarrierChanged, st.sampled_from(["open", "closed", "moving", "unknown"])),
    st.sampled_from(readings()),
    st.sampled_from(readings(plate="粤B00001", kg=50_000, qr=CENTRAL.forge(note()))),
    st.sampled_from([gps(INSIDE), gps(OUTSIDE), gps(INSIDE, valid=False)]),
    st.sampled_from([loaded(), unknown(), loaded(docs(status=NoteStatus.USED))]),
    st.builds(
        PassCommitted,
        st.sampled_from(PASS_IDS),
        st.sampled_from(list(Outcome)),
        st.just((Reason(Code.NOTE_USED, "RN1"),)),
    ),
    st.builds(
        Override,
        st.sampled_from(["release", "hold"]),
        st.just("officer"),
        st.just("test"),
        st.sampled_from(["OV1", "OV2"]),
        st.sampled_from(PASS_IDS),
    ),
    st.builds(DeviceFault, st.sampled_from(["relay", "eseal", "weighbridge"])),
    st.builds(DeviceRecovered, st.sampled_from(["relay", "barrier", "eseal", "weighbridge"])),
    st.just(Tick()),
)
# A truck's ordinary pass, as steps; random events are interleaved between them so that
# sequences reach the states where safety matters (barrier up, vehicles moving) often.
COMMIT = "commit"
SCRIPT: list[Event | str] = [
    LoopChanged("arrival", True),
    *readings(),
    loaded(),
    COMMIT,
    BarrierChanged("open"),
    LoopChanged("safety", True),
    LoopChanged("exit", True),
    LoopChanged("arrival", False),
    LoopChanged("safety", False),
    LoopChanged("exit", False),
    BarrierChanged("moving"),
    BarrierChanged("closed"),
]


def _mostly_ordinary(data: st.DataObject, lane: LaneCore, steps: int) -> Iterator[Event]:
    """``steps`` events: mostly the next step of an ordinary pass, sometimes anything at all."""
    script = 0
    for _ in range(steps):
        if data.draw(st.integers(0, 9)) < 7:
            event = SCRIPT[script % len(SCRIPT)]
            script += 1
        else:
            event = data.draw(events)
        if event == COMMIT:
            event = PassCommitted(lane.tx.pass_id if lane.tx else "P1", Outcome.RELEASE, ())
        assert not isinstance(event, str)
        yield event


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_barrier_safety_holds_for_any_event_sequence(data: st.DataObject) -> None:
    lane = core(decision_deadline_s=60.0)
    now = NOW
    asked_release: set[str] = set()  # passes the core itself decided (or an officer) to release
    confirmed: set[str] = set()  # ... and the ledger then confirmed
    sent: Command | None = None  # where the arm was last sent (or stopped)
    for event in _mostly_ordinary(data, lane, data.draw(st.integers(10, 200), label="steps")):
        now += data.draw(st.sampled_from([0.05] * 10 + [0.5] * 4 + [3.0, 6.0, 25.0]))
        released = isinstance(event, PassCommitted) and event.outcome is Outcome.RELEASE
        if released and event.pass_id in asked_release:
            confirmed.add(event.pass_id)
        coming_down = isinstance(sent, CloseBarrier) and lane.barrier != "closed"
        entered = event == LoopChanged("safety", True) and not lane.loops["safety"]
        commands = lane.handle(event, now)
        if coming_down and entered:
            assert {OpenBarrier, StopBarrier} & {type(c) for c in commands}, (
                "arm kept coming down onto a vehicle under it"
            )
        for command in commands:
            if isinstance(command, OpenBarrier | CloseBarrier | StopBarrier):
                sent = command
            if isinstance(command, CloseBarrier):
                assert not lane.loops["safety"], "barrier lowered onto an occupied safety loop"
            if isinstance(command, OpenBarrier):
                assert command.pass_id in confirmed, "barrier lifted without a committed release"
            if isinstance(command, CommitPass) and command.record.outcome is Outcome.RELEASE:
                asked_release.add(command.record.pass_id)
            if isinstance(command, AuditOverride) and command.action == "release":
                asked_release.add(command.pass_id)


def _answer(lane: LaneCore, commands: list[Command], now: float) -> list[Command]:
    """What the world answers: the ledger commits what it is asked to, and the arm goes where
    it is sent, its limit switch reporting only a change (as a relay's inputs do). Returns the
    commands those answers call for."""
    out: list[Command] = []
    for c in commands:
        match c:
            case CommitPass() | AuditOverride():
                record = c.record
                out += lane.handle(
                    PassCommitted(record.pass_id, record.outcome, record.reasons), now
                )
            case LoadDocuments():
                out += lane.handle(loaded(), now)
            case OpenBarrier() if lane.barrier != "open":
                out += lane.handle(BarrierChanged("open"), now)
            case CloseBarrier() if lane.barrier != "closed":
                out += lane.handle(BarrierChanged("closed"), now)
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_whatever_happened_the_lane_comes_back_and_serves_the_next_truck(
    data: st.DataObject,
) -> None:
    # Liveness: after any sequence of events (answered or not), once the ledger has answered,
    # the devices are back, the lane is empty and time passes, the lane is idle with its arm
    # down, and the next clean truck is released.
    lane = core(decision_deadline_s=60.0)
    now = NOW
    unanswered: list[Command] = []
    arm: Command = CloseBarrier()
    # mostly an ordinary pass, as in the safety test, so that every phase is reached
    for step in _mostly_ordinary(data, lane, data.draw(st.integers(5, 120), label="steps")):
        now += data.draw(st.sampled_from([0.05, 0.5, 3.0, 25.0]))
        for c in lane.handle(step, now):
            if isinstance(c, CommitPass | AuditOverride):
                unanswered.append(c)
            elif isinstance(c, OpenBarrier | CloseBarrier | StopBarrier):
                arm = c  # where the arm was last sent, whether or not it went
    # the world settles: every device back, the lane empty, the arm where it was last sent,
    # the ledger's answers in
    pending = list(unanswered)
    for device in ("relay", "barrier", "eseal", "weighbridge"):
        pending += lane.handle(DeviceRecovered(device), now)
    for loop in ("arrival", "safety", "exit"):
        pending += lane.handle(LoopChanged(loop, False), now)
    position = {OpenBarrier: "open", CloseBarrier: "closed", StopBarrier: "moving"}[type(arm)]
    pending += lane.handle(BarrierChanged(position), now)  # as a relay reconnecting reports it
    for _ in range(120):  # past every deadline and timeout
        now += 1.0
        pending = _answer(lane, [*pending, *lane.handle(Tick(), now)], now)
        if lane.phase is Phase.IDLE and not pending:
            break
    assert lane.phase is Phase.IDLE, lane.phase
    assert lane.barrier == "closed"
    assert not lane.faults
    # and a clean truck goes through
    out = lane.handle(LoopChanged("arrival", True), now)
    for event in [*readings(), loaded()]:
        out += lane.handle(event, now)
    commits = [c for c in out if isinstance(c, CommitPass)]
    assert [c.record.outcome for c in commits] == [Outcome.RELEASE]
    out = lane.handle(PassCommitted(commits[0].record.pass_id, Outcome.RELEASE, ()), now)
    assert OpenBarrier(commits[0].record.pass_id) in out
