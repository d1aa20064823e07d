"""Safety over random event sequences: whatever happens, in whatever order, the core never
lowers the barrier onto an occupied safety loop and never lifts it without a release."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatewayd.commands import AuditOverride, CloseBarrier, CommitPass, OpenBarrier
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


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_barrier_safety_holds_for_any_event_sequence(data: st.DataObject) -> None:
    lane = core(decision_deadline_s=60.0)
    now = NOW
    script = 0
    asked_release: set[str] = set()  # passes the core itself decided (or an officer) to release
    confirmed: set[str] = set()  # ... and the ledger then confirmed
    for _ in range(data.draw(st.integers(10, 200), label="steps")):
        # mostly the next step of an ordinary pass, sometimes anything at all
        if data.draw(st.integers(0, 9)) < 7:
            event = SCRIPT[script % len(SCRIPT)]
            script += 1
        else:
            event = data.draw(events)
        if event == COMMIT:
            pass_id = lane.tx.pass_id if lane.tx else "P1"
            event = PassCommitted(pass_id, Outcome.RELEASE, ())
        assert not isinstance(event, str)
        now += data.draw(st.sampled_from([0.05] * 10 + [0.5] * 4 + [3.0, 6.0, 25.0]))
        released = isinstance(event, PassCommitted) and event.outcome is Outcome.RELEASE
        if released and event.pass_id in asked_release:
            confirmed.add(event.pass_id)
        for command in lane.handle(event, now):
            if isinstance(command, CloseBarrier):
                assert not lane.loops["safety"], "barrier lowered onto an occupied safety loop"
            if isinstance(command, OpenBarrier):
                assert command.pass_id in confirmed, "barrier lifted without a committed release"
            if isinstance(command, CommitPass) and command.record.outcome is Outcome.RELEASE:
                asked_release.add(command.record.pass_id)
            if isinstance(command, AuditOverride) and command.action == "release":
                asked_release.add(command.pass_id)
