"""The lane state machine: events in, commands out, time passed in. No I/O, no clock, no asyncio.

One pass: the arrival loop opens a transaction; readings arrive in any order; when the profile's
readings are in (or the deadline passes) the lane judges, asks the ledger to commit the pass,
and only once the ledger has committed a release does the light turn green and the barrier lift.
The barrier closes once every vehicle that came in has left the safety loop, never onto one:
something moving under a closing arm sends it back up while the pass's release stands, and
stops it where it is when nothing is released (an open arm found at start, or one that rose by
itself, is lowered as soon as nothing is under it).

Safety is enforced twice: the transitions below never ask for an unsafe move, and an interlock
on the way out (``_interlock``) drops any command that would lower the barrier onto an occupied
safety loop or lift it without a committed release or an audited override.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from drivers import release_note
from gatewayd.commands import (
    Alert,
    ArmSeal,
    AuditOverride,
    Capture,
    CloseBarrier,
    Command,
    CommitPass,
    Display,
    LoadDocuments,
    OpenBarrier,
    PassClosed,
    PassRecord,
    SetLight,
    StopBarrier,
    UnlockSeal,
    WriteOffLine,
)
from gatewayd.documents import NoteDocs
from gatewayd.events import (
    BarrierChanged,
    BarrierPosition,
    ContainersRead,
    DeviceFault,
    DeviceRecovered,
    DocumentsLoaded,
    Event,
    GpsFix,
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
from gatewayd.judge import READING_KINDS, Policy, ReadingKind, Readings, judge
from gatewayd.reasons import Code, Outcome, Reason, outcome_of

log = logging.getLogger(__name__)

SealAction = Literal["none", "unlock", "arm"]
RELAY = "relay"
BARRIER = "barrier"
LEDGER = "ledger"


class Phase(StrEnum):
    """Where the lane stands."""

    IDLE = "idle"  # no vehicle
    COLLECTING = "collecting"  # vehicle at the barrier, readings coming in
    COMMITTING = "committing"  # decided; waiting for the ledger to commit the pass
    RELEASED = "released"  # barrier up (or going up), vehicles passing
    CLOSING = "closing"  # barrier going down behind the last vehicle
    HELD = "held"  # held or rejected; waiting for the vehicle to leave or an override


@dataclass(frozen=True)
class LaneSettings:
    """Everything the core needs to know about its lane, from the config."""

    lane_id: str
    policy: Policy
    keys: Mapping[str, Ed25519PublicKey]
    devices: Mapping[ReadingKind, str]  # which device gives each reading
    seal_action: SealAction = "none"
    decision_deadline_s: float = 20.0
    barrier_timeout_s: float = 4.0
    settle_s: float = 5.0  # loops quiet this long after the first exit: close anyway
    withdraw_s: float = 15.0  # released vehicle gone without passing: close after this
    leave_s: float = 3.0  # arrival loop clear this long before a decision: the truck left
    ledger_timeout_s: float = 5.0


@dataclass
class Transaction:
    """One vehicle's pass, from arrival to the barrier closing behind it."""

    pass_id: str
    opened_at: float
    deadline: float
    readings: Readings = field(default_factory=Readings)
    docs: NoteDocs | None = None
    docs_pending: str | None = None  # note id asked of the ledger, not yet answered
    record: PassRecord | None = None
    committing_since: float | None = None
    vehicles_in: int = 1
    exits: int = 0
    arrival_cleared: bool = False
    arrival_cleared_at: float | None = None  # before the commit: since when the loop is clear
    tailgate_alerted: bool = False
    gone: bool = False  # the truck left while the ledger committed (another may stand there)
    # a release the ledger committed while its truck stood off the arrival loop: it lifts
    # when the truck is back, never for whoever comes next
    answered: PassCommitted | None = None


@dataclass
class Expectation:
    """The barrier position we are waiting for, and until when."""

    position: BarrierPosition
    deadline: float


class LaneCore:
    """The pure lane. ``handle(event, now)`` returns the commands to carry out, in order.

    ``now`` is seconds since the epoch from a clock that never jumps backwards.
    ``new_pass_id(now)`` names a new pass; inject a counter in tests.
    """

    def __init__(self, settings: LaneSettings, new_pass_id: Callable[[float], str]) -> None:
        self.settings = settings
        self.policy = settings.policy
        self._new_pass_id = new_pass_id
        self.phase = Phase.IDLE
        self.loops: dict[str, bool] = {"arrival": False, "safety": False, "exit": False}
        self.barrier: BarrierPosition = "unknown"
        self.expect: Expectation | None = None
        self.heading: BarrierPosition | None = None  # where the arm was last sent
        self.faults: dict[str, str] = {}
        # No poll of the relay's inputs yet (at start), or the last is from before a relay
        # outage: nothing is lowered on them until the first poll is in (its barrier state
        # comes last), and then the light is set, which a restart or an outage left as it was.
        self.inputs_stale = True
        self.tx: Transaction | None = None
        self.release_for: str | None = None  # the pass whose release lets the barrier up
        self.last_loop_change = 0.0
        self.foreign_qr = 0  # QR codes in view that are not release notes

    # -- entry point -------------------------------------------------------------------------

    def handle(self, event: Event, now: float) -> list[Command]:
        """Apply one event at time ``now``; return the commands it calls for."""
        match event:
            case LoopChanged():
                out = self._on_loop(event, now)
            case BarrierChanged():
                out = self._on_barrier(event, now)
            case (
                PlateRead()
                | ContainersRead()
                | QrScanned()
                | SealRead()
                | WeightStable()
                | GpsFix()
            ):
                out = self._on_reading(event, now)
            case Tick():
                out = self._on_tick(now)
            case DeviceFault():
                out = self._on_fault(event, now)
            case DeviceRecovered():
                out = self._on_recovered(event, now)
            case DocumentsLoaded():
                out = self._on_documents(event, now)
            case PassCommitted():
                out = self._on_committed(event, now)
            case Override():
                out = self._on_override(event, now)
            case WatchlistChanged():
                self.policy = replace(
                    self.policy, watch_plates=event.plates, watch_containers=event.containers
                )
                out = []
        return self._interlock(out)

    @property
    def in_fault(self) -> bool:
        """True when the lane cannot safely release anyone (relay or barrier down)."""
        return RELAY in self.faults or BARRIER in self.faults

    # -- loops and barrier -------------------------------------------------------------------

    def _on_loop(self, event: LoopChanged, now: float) -> list[Command]:
        was = self.loops[event.loop]
        self.loops[event.loop] = event.occupied
        if was == event.occupied:
            return []
        self.last_loop_change = now
        out: list[Command] = []
        tx = self.tx
        if event.loop == "arrival":
            if event.occupied and self.phase is Phase.IDLE:
                out += self._open(now)
            elif event.occupied and self.phase in (Phase.COLLECTING, Phase.COMMITTING) and tx:
                out += self._back_on_arrival(tx, now)
            elif event.occupied and self.phase is Phase.HELD and tx and tx.arrival_cleared:
                out += self._finish(now)  # the held truck left; this is the next one
            elif event.occupied and self.phase is Phase.RELEASED and tx and tx.arrival_cleared:
                out += self._tailgater(tx)
            # (in CLOSING, a truck on the arrival loop is the next one waiting: its pass opens
            # once the arm is down)
            elif not event.occupied and tx is not None:
                tx.arrival_cleared = True
                if self.phase in (Phase.COLLECTING, Phase.COMMITTING):
                    tx.arrival_cleared_at = now
                if self.phase is Phase.HELD:
                    out += self._finish(now)  # the held truck drove off to inspection
        elif event.loop == "exit" and not event.occupied and tx is not None:
            if self.phase in (Phase.RELEASED, Phase.CLOSING):
                tx.exits += 1
        elif event.loop == "safety" and event.occupied and self.phase is Phase.CLOSING:
            # something moved under a closing barrier: reverse (the release still stands, but
            # the light stays red: it may be a second vehicle)
            out += self._lift(now, green=False)
            self.phase = Phase.RELEASED
            if tx is not None and tx.arrival_cleared and self.loops["arrival"]:
                out += self._tailgater(tx)  # the truck waiting behind drove in under the arm
        elif event.loop == "safety" and event.occupied and self._securing():
            # Nothing is released, so the arm may not go up for it: it stops where it is, and
            # goes down again once the loop is clear.
            self.expect = None
            self.heading = None
            pass_id = tx.pass_id if tx else None
            out += [
                StopBarrier(),
                Alert("VEHICLE_UNDER_ARM", "arm stopped over a vehicle", pass_id),
            ]
        out += self._maybe_close(now)
        out += self._secure(now)
        return out

    def _tailgater(self, tx: Transaction) -> list[Command]:
        """A second vehicle on a released pass: the light turns red for it, the barrier waits
        for it too, and says so."""
        tx.vehicles_in += 1
        if tx.tailgate_alerted:
            return [SetLight("red")]
        tx.tailgate_alerted = True
        alert = Alert("TAILGATING", "second vehicle behind a released one", tx.pass_id)
        return [SetLight("red"), alert]

    def _back_on_arrival(self, tx: Transaction, now: float) -> list[Command]:
        """The arrival loop occupied again before the pass was decided (or committed)."""
        left = self._left(tx, now)
        tx.arrival_cleared_at = None
        if not left:
            tx.arrival_cleared = False  # a gap in the same vehicle (tractor and trailer)
            if tx.answered is not None:
                return self._release(tx, now)  # its release came while it stood back
            return []
        if self.phase is not Phase.COLLECTING:
            # Decided: the pass ends with the ledger's answer, which lifts for nobody, and
            # the next opens.
            tx.gone = True
            return self._withdraw(tx, now) if tx.answered is not None else []
        # The truck left and this is another: its readings must not join the old pass.
        return self._decide(tx, now, left=True)

    def _left(self, tx: Transaction, now: float) -> bool:
        """The arrival loop has been clear long enough, before a decision, that its truck left
        (a shorter gap is the same vehicle: tractor and trailer)."""
        cleared_at = tx.arrival_cleared_at
        return cleared_at is not None and now - cleared_at >= self.settings.leave_s

    def _on_barrier(self, event: BarrierChanged, now: float) -> list[Command]:
        self.barrier = event.position
        out: list[Command] = []
        if self.inputs_stale and self.release_for is None:
            out.append(SetLight("red"))  # a green light left on invites a truck nobody let in
        self.inputs_stale = False
        if self.expect and event.position == self.expect.position:
            self.expect = None
        if event.position in ("open", "closed") and self.faults.pop(BARRIER, None) is not None:
            out.append(Alert("DEVICE_RECOVERED", f"barrier reports {event.position} again"))
        if event.position == "closed" and self.phase is Phase.CLOSING:
            out += self._finish(now)
        out += self._secure(now)
        return out

    def _lift(self, now: float, green: bool = True) -> list[Command]:
        if self.release_for is None:
            return []
        self._expect("open", now)
        self.heading = "open"
        return [OpenBarrier(self.release_for), *([SetLight("green")] if green else [])]

    def _lower(self, now: float) -> list[Command]:
        self._expect("closed", now)
        self.heading = "closed"
        return [SetLight("red"), CloseBarrier()]

    def _expect(self, position: BarrierPosition, now: float) -> None:
        # an arm already there reports no change: waiting for one would be a false fault
        if self.barrier == position:
            self.expect = None
        else:
            self.expect = Expectation(position, now + self.settings.barrier_timeout_s)

    def _maybe_close(self, now: float) -> list[Command]:
        tx = self.tx
        if self.phase is not Phase.RELEASED or tx is None or self.loops["safety"]:
            return []
        if self.inputs_stale or RELAY in self.faults:
            return []  # the loops are not known: nothing is lowered on them
        quiet = now - self.last_loop_change
        everyone_out = tx.exits >= tx.vehicles_in
        if tx.exits >= 1 and (everyone_out or quiet >= self.settings.settle_s):
            return self._close(now)
        if tx.exits == 0 and not any(self.loops.values()) and quiet >= self.settings.withdraw_s:
            message = "released vehicle left without passing"
            return [Alert("WITHDRAWN", message, tx.pass_id), *self._close(now)]
        return []

    def _close(self, now: float) -> list[Command]:
        self.phase = Phase.CLOSING
        out = self._lower(now)
        if self.barrier == "closed":
            # an arm that closes by itself came down already: no change will be reported
            out += self._finish(now)
        return out

    def _free_to_lower(self) -> bool:
        """No move of the arm is awaited, nothing is under it, and the relay can be told."""
        return (
            self.expect is None
            and not self.loops["safety"]
            and RELAY not in self.faults
            and not self.inputs_stale
        )

    def _close_again(self, now: float) -> list[Command]:
        """Closing, but the arm is not down and no longer expected to come down (it went back
        up, or the command was lost): ask again, when nothing is under it."""
        if self.phase is Phase.CLOSING and self.barrier != "closed" and self._free_to_lower():
            return self._lower(now)
        return []

    def _securing(self) -> bool:
        """The arm is on its way down outside a pass's close (nothing released)."""
        return (
            self.phase is not Phase.CLOSING
            and self.release_for is None
            and self.heading == "closed"
            and self.barrier != "closed"
        )

    def _secure(self, now: float) -> list[Command]:
        """With nobody released, an open barrier goes down as soon as it safely can, whatever
        the phase: a held truck must not face an open arm."""
        if (
            self.release_for is None
            and self.barrier in ("open", "moving")
            and self._free_to_lower()
        ):
            return self._lower(now)
        return []

    # -- a pass ------------------------------------------------------------------------------

    def _open(self, now: float) -> list[Command]:
        pass_id = self._new_pass_id(now)
        deadline = now + self.settings.decision_deadline_s
        self.tx = Transaction(pass_id=pass_id, opened_at=now, deadline=deadline)
        self.phase = Phase.COLLECTING
        return [Capture(pass_id), Display("请出示放行单 / Show your release note")]

    def _finish(self, now: float) -> list[Command]:
        out: list[Command] = [PassClosed(self.tx.pass_id)] if self.tx else []
        self.tx = None
        self.release_for = None
        self.phase = Phase.IDLE
        if self.loops["arrival"]:
            out += self._open(now)  # the next vehicle is already waiting
        return out

    def _on_reading(
        self,
        event: PlateRead | ContainersRead | QrScanned | SealRead | WeightStable | GpsFix,
        now: float,
    ) -> list[Command]:
        tx = self.tx
        if self.phase is not Phase.COLLECTING or tx is None:
            return []  # outside a pass: nothing may be decided on it
        late = getattr(event, "pass_id", None)
        if late is not None and late != tx.pass_id:
            return []  # frames of an earlier pass, read after it ended
        r = tx.readings
        out: list[Command] = []
        match event:
            case PlateRead():
                r.plate = event
            case ContainersRead():
                r.containers = event
            case SealRead():
                r.add_seal(event)
            case WeightStable():
                r.weight = event
            case GpsFix():
                if not event.valid:
                    return []
                r.gps = event
            case QrScanned():
                out += self._on_qr(tx, event.payload)
        return out + self._maybe_decide(now)

    def _on_qr(self, tx: Transaction, payload: str) -> list[Command]:
        r = tx.readings
        if payload == r.qr_payload:
            return []  # the same code seen again in this pass is one scan
        if not release_note.is_release_note(payload):
            self.foreign_qr += 1
            return []
        r.qr_payload = payload
        try:
            note = release_note.decode(payload, self.settings.keys)
        except release_note.ReleaseNoteError as exc:
            r.note, r.qr_error = None, exc.kind
            tx.docs, tx.docs_pending = None, None
            return []
        r.note, r.qr_error = note, None
        tx.docs, tx.docs_pending = None, note.note_id
        return [LoadDocuments(note.note_id)]

    def _on_documents(self, event: DocumentsLoaded, now: float) -> list[Command]:
        tx = self.tx
        if tx is None or tx.docs_pending != event.note_id or self.phase is not Phase.COLLECTING:
            return []
        tx.docs, tx.docs_pending = event.docs, None
        return self._maybe_decide(now)

    def _faulted_kinds(self) -> dict[ReadingKind, str]:
        return {
            kind: device
            for kind in READING_KINDS
            if (device := self.settings.devices.get(kind, kind)) in self.faults
        }

    def _ready(self, tx: Transaction) -> bool:
        r = tx.readings
        faulted = self._faulted_kinds()
        if any(not r.has(k) and k not in faulted for k in self.policy.required):
            return False
        if tx.docs_pending is not None:
            return False
        if "seal" in self.policy.required and "seal" not in faulted and r.seals_unread(tx.docs):
            # a note's second seal may still be on its way, unless a seal read already holds
            # the truck
            assert tx.docs is not None
            if all(x.state == "sealed" and x.seal_id in tx.docs.seals for x in r.seals.values()):
                return False
        trip = tx.docs.trip if tx.docs else None
        return not (trip and trip.status == "open" and r.gps is None and "gps" not in faulted)

    def _maybe_decide(self, now: float) -> list[Command]:
        tx = self.tx
        if self.phase is not Phase.COLLECTING or tx is None:
            return []
        if tx.arrival_cleared_at is not None:
            # off the arrival loop: it comes back (a gap in one vehicle) or the tick finds it
            # left; a release decided now would lift for nobody, or for the next truck
            return []
        if now < tx.deadline and not self._ready(tx):
            return []
        return self._decide(tx, now)

    def _decide(self, tx: Transaction, now: float, left: bool = False) -> list[Command]:
        reasons = list(judge(self.policy, tx.readings, tx.docs, now, self._faulted_kinds()))
        if tx.docs_pending is not None:
            # not known to be unknown: the ledger has not answered (a hold, not a reject)
            reasons = [r for r in reasons if r.code is not Code.NOTE_UNKNOWN]
            reasons.append(Reason(Code.DEVICE_FAULT, "ledger did not answer"))
        if left:
            reasons.append(Reason(Code.READING_MISSING, "vehicle left before a decision"))
        reasons += [Reason(Code.DEVICE_FAULT, d) for d in (RELAY, BARRIER) if d in self.faults]
        if self.inputs_stale and RELAY not in self.faults:
            reasons.append(Reason(Code.DEVICE_FAULT, "relay inputs not polled yet"))
        record = self._record(tx, tuple(sorted(set(reasons))), now)
        tx.record = record
        tx.committing_since = now
        self.phase = Phase.COMMITTING
        return [CommitPass(record)]

    def _record(self, tx: Transaction, reasons: tuple[Reason, ...], now: float) -> PassRecord:
        r, docs = tx.readings, tx.docs
        outcome = outcome_of(reasons)
        write_off, trip_id = _release_write_off(docs) if outcome is Outcome.RELEASE else ((), None)
        readings: dict[str, object] = {}
        if r.plate:
            readings["plate"] = {"text": r.plate.text, "confidence": r.plate.confidence}
        if r.containers:
            readings["containers"] = [
                {"number": c.number, "verified": c.verified, "confidence": c.confidence}
                for c in r.containers.containers
            ]
        if r.seals:
            readings["seals"] = [{"id": x.seal_id, "state": x.state} for x in r.seals.values()]
        if r.weight:
            readings["weight_kg"] = r.weight.kg
        if r.gps:
            readings["gps"] = {"lat": r.gps.lat, "lon": r.gps.lon, "time": r.gps.time}
        evidence = (r.plate.evidence if r.plate else ()) + (
            r.containers.evidence if r.containers else ()
        )
        return PassRecord(
            pass_id=tx.pass_id,
            lane_id=self.settings.lane_id,
            opened_at=tx.opened_at,
            decided_at=now,
            outcome=outcome,
            reasons=reasons,
            note_id=r.note.note_id if r.note else None,
            plate=r.plate.text if r.plate else None,
            containers=tuple(c.number for c in r.containers.containers) if r.containers else (),
            readings=readings,
            write_off=write_off,
            trip_id=trip_id,
            evidence=evidence,
        )

    def _on_committed(self, event: PassCommitted, now: float) -> list[Command]:
        tx = self.tx
        if self.phase is not Phase.COMMITTING or tx is None or event.pass_id != tx.pass_id:
            return []
        tx.committing_since = None
        asked = tx.record.outcome if tx.record else None
        if event.outcome is Outcome.RELEASE and asked is Outcome.RELEASE:
            if tx.gone or self._left(tx, now):
                return self._withdraw(tx, now)
            if tx.arrival_cleared_at is not None:
                tx.answered = event  # lifted when the truck is back on the loop
                return []
            return self._release(tx, now)
        out: list[Command] = []
        outcome = event.outcome
        if outcome is Outcome.RELEASE:
            # the ledger may turn a release down, never a hold into a release
            outcome = Outcome.HOLD
            out.append(Alert("LEDGER_MISMATCH", f"ledger answered release for a {asked}"))
        self.phase = Phase.HELD
        codes = ", ".join(str(r) for r in event.reasons) or "device fault"
        if outcome is Outcome.REJECT:
            text = "不予放行 / Not cleared: " + ", ".join(r.code.value for r in event.reasons)
        else:
            text = "请前往查验区 / Proceed to inspection"
        out += [SetLight("red"), Display(text), Alert(outcome.value.upper(), codes, tx.pass_id)]
        if not self.loops["arrival"] or tx.arrival_cleared or tx.gone:
            # the truck already left the lane (another may be waiting: _finish opens its pass)
            out += self._finish(now)
        return out

    def _release(self, tx: Transaction, now: float) -> list[Command]:
        """Written off: the release stands even if the relay dropped meanwhile; the lift is
        repeated when it returns (_on_recovered)."""
        tx.answered = None
        self.release_for = tx.pass_id
        self.phase = Phase.RELEASED
        out: list[Command] = [*self._lift(now), Display("请通行 / Proceed")]
        for seal_id in tx.readings.seals:
            if self.settings.seal_action == "unlock":
                out.append(UnlockSeal(seal_id))
            elif self.settings.seal_action == "arm":
                out.append(ArmSeal(seal_id))
        return out

    def _withdraw(self, tx: Transaction, now: float) -> list[Command]:
        """A release committed for a truck that left before the arm went up: the arm stays
        down, and central hears that the written-off note's truck never passed."""
        message = "released vehicle left before the barrier opened"
        return [SetLight("red"), Alert("WITHDRAWN", message, tx.pass_id), *self._finish(now)]

    def _on_override(self, event: Override, now: float) -> list[Command]:
        tx = self.tx
        if tx is None or tx.pass_id != event.pass_id:
            # the officer decided on a truck that is no longer the one at the barrier
            at = tx.pass_id if tx else "no pass"
            return [Alert("OVERRIDE_IGNORED", f"override for {event.pass_id}, lane has {at}")]
        if event.action == "release" and self.phase is Phase.HELD and tx and tx.record:
            if self.in_fault:
                return [Alert("OVERRIDE_REFUSED", "lane in fault: barrier cannot be trusted")]
            reasons = (*tx.record.reasons, Reason(Code.OVERRIDE, event.officer))
            # the officer's release writes the note off like any other: its lines and its trip
            write_off, trip_id = _release_write_off(tx.docs)
            record = replace(
                tx.record,
                outcome=Outcome.RELEASE,
                reasons=reasons,
                override_id=event.override_id,
                decided_at=now,
                write_off=write_off,
                trip_id=trip_id,
            )
            tx.record = record
            tx.committing_since = now
            self.phase = Phase.COMMITTING
            audit = AuditOverride(
                tx.pass_id,
                "release",
                event.officer,
                event.reason,
                event.override_id,
                record,
                event.requested_by,
            )
            return [audit]
        if event.action == "hold" and self.phase is Phase.COLLECTING and tx is not None:
            record = self._record(tx, (Reason(Code.OVERRIDE, event.officer),), now)
            record = replace(record, outcome=Outcome.HOLD, override_id=event.override_id)
            tx.record = record
            tx.committing_since = now
            self.phase = Phase.COMMITTING
            audit = AuditOverride(
                tx.pass_id,
                "hold",
                event.officer,
                event.reason,
                event.override_id,
                record,
                event.requested_by,
            )
            return [audit]
        return [Alert("OVERRIDE_IGNORED", f"no pass waiting for {event.action} ({self.phase})")]

    # -- faults and time ---------------------------------------------------------------------

    def _on_fault(self, event: DeviceFault, now: float) -> list[Command]:
        first = event.device not in self.faults
        self.faults[event.device] = event.detail or "down"
        if event.device == RELAY:
            self.inputs_stale = True
        out: list[Command] = []
        if first:
            out.append(Alert("DEVICE_FAULT", f"{event.device}: {event.detail}"))
        return out + self._maybe_decide(now)

    def _on_recovered(self, event: DeviceRecovered, now: float) -> list[Command]:
        if self.faults.pop(event.device, None) is None:
            return []
        out: list[Command] = [Alert("DEVICE_RECOVERED", event.device)]
        if event.device == RELAY and self.phase is Phase.RELEASED and self.barrier != "open":
            # a release committed while the relay was away stands; a tailgater keeps red
            green = not (self.tx and self.tx.tailgate_alerted)
            out += self._lift(now, green=green)
        return out

    def _on_tick(self, now: float) -> list[Command]:
        out: list[Command] = []
        if self.expect is not None and now > self.expect.deadline:
            wanted = self.expect.position
            self.expect = None
            if BARRIER not in self.faults:
                self.faults[BARRIER] = BARRIER
                out.append(Alert("DEVICE_FAULT", f"barrier did not report {wanted} in time"))
        tx = self.tx
        if (
            self.phase is Phase.COMMITTING
            and tx is not None
            and tx.committing_since is not None
            and now - tx.committing_since > self.settings.ledger_timeout_s
        ):
            out.append(Alert("DEVICE_FAULT", "ledger commit is late", tx.pass_id))
            tx.committing_since = None  # alert once; the barrier stays down meanwhile
        if self.phase is Phase.COLLECTING and tx is not None and self._left(tx, now):
            return out + self._decide(tx, now, left=True)
        if tx is not None and tx.answered is not None and self._left(tx, now):
            return out + self._withdraw(tx, now)
        out += self._maybe_decide(now)
        out += self._maybe_close(now)
        out += self._close_again(now)
        out += self._secure(now)
        return out

    # -- the interlock -----------------------------------------------------------------------

    def _interlock(self, commands: list[Command]) -> list[Command]:
        out: list[Command] = []
        for c in commands:
            if isinstance(c, CloseBarrier) and self.loops["safety"]:
                log.error("interlock: refused to lower the barrier onto an occupied safety loop")
                continue
            if isinstance(c, OpenBarrier) and (
                self.release_for is None or c.pass_id != self.release_for
            ):
                log.error("interlock: refused to lift the barrier without a release")
                continue
            out.append(c)
        return out


def _release_write_off(docs: NoteDocs | None) -> tuple[tuple[WriteOffLine, ...], str | None]:
    """What a release writes off: the note's account-book lines, and its transit trip."""
    if docs is None:
        return (), None
    lines = tuple(WriteOffLine(x.book_id, x.line_no, x.quantity) for x in docs.lines)
    return lines, docs.trip.trip_id if docs.trip else None
