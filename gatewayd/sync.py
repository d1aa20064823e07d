"""Ledger sync from central: deltas applied once each, in sequence order; gaps filled on request.

Central numbers the changes to a site's documents with one sequence per site. A lane applies
delta ``n`` only once ``n - 1`` is applied, each in one transaction that also records ``n`` as
applied (ledger meta ``sync.applied_seq``), so a redelivered or replayed delta changes nothing,
and a crash between two deltas loses neither. Deltas that arrive early are held (a bounded
number) and a gap makes the lane ask central for everything after its applied sequence;
central answers with the missing deltas, or with a snapshot of all documents when it no
longer has them. A retained ``head`` message tells a lane that reconnects how far central is.

The message bodies (after ``gatewayd.envelope.open_central`` has checked the signature) are
parsed here into pydantic models; a body that does not fit is refused as malformed. ``Replica``
runs on the ledger thread (it calls the ledger directly) and never on the event loop.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from gatewayd.envelope import Refusal, Refused
from gatewayd.ledger import BookLineIn, Ledger, NoteIn

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_OPS = 10_000  # per delta or snapshot part
# bounds on the integers that reach SQLite (whose INTEGER is 64-bit: a larger one does not bind)
LINE_NO_MAX = 2**31 - 1
SEQ_MAX = 2**63 - 1

LineNo = Annotated[int, Field(ge=0, le=LINE_NO_MAX)]


class _Body(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )


# -- operations ----------------------------------------------------------------------------------


class NoteBody(_Body):
    note_id: str = Field(min_length=1, max_length=64, description="Release note id.")
    plate: str = Field(min_length=1, max_length=16, description="Plate the note is bound to.")
    valid_from: float = Field(description="Start of validity, seconds since the epoch.")
    valid_until: float = Field(description="End of validity, seconds since the epoch.")
    containers: list[str] = Field(default_factory=list, max_length=4, description="Boxes.")
    seals: list[str] = Field(default_factory=list, max_length=8, description="E-seal ids.")
    gross_kg: float | None = Field(None, ge=0, description="Declared gross weight.")
    tolerance_kg: float = Field(0.0, ge=0, description="Allowed weight difference.")
    direction: Literal["entry", "exit", "any"] = Field("any", description="Where usable.")
    lines: list[tuple[str, LineNo, Annotated[float, Field(gt=0)]]] = Field(
        default_factory=list, max_length=100, description="(book id, line no, quantity) drawn."
    )
    trip_id: str | None = Field(None, description="Transit trip the pass must close.")
    status: Literal["active", "used", "revoked"] = Field("active", description="Status.")

    @model_validator(mode="after")
    def _one_draw_per_line(self) -> NoteBody:
        # a line named twice would be drawn twice but held pending once (and a negative or
        # zero quantity would be no draw at all)
        seen = [(book, line) for book, line, _ in self.lines]
        if len(set(seen)) != len(seen):
            raise ValueError("an account-book line is named twice")
        return self

    def to_note_in(self) -> NoteIn:
        """The ledger's form of the note."""
        return NoteIn(
            note_id=self.note_id,
            plate=self.plate,
            valid_from=self.valid_from,
            valid_until=self.valid_until,
            containers=tuple(self.containers),
            seals=tuple(self.seals),
            gross_kg=self.gross_kg,
            tolerance_kg=self.tolerance_kg,
            direction=self.direction,
            lines=tuple(self.lines),
            trip_id=self.trip_id,
            status=self.status,
        )


class NoteUpsert(_Body):
    op: Literal["note.upsert"] = Field(description="Insert or replace a release note.")
    note: NoteBody = Field(description="The note.")


class NoteRevoke(_Body):
    op: Literal["note.revoke"] = Field(description="Revoke an active note.")
    note_id: str = Field(min_length=1, max_length=64, description="Note to revoke.")


class BookLineSet(_Body):
    op: Literal["book_line.set"] = Field(description="Set an account-book line's balance.")
    book_id: str = Field(min_length=1, max_length=64, description="Account book id.")
    line_no: LineNo = Field(description="Line number.")
    remaining: float = Field(ge=0, description="Remaining quantity, as central counts it.")
    item: str = Field("", max_length=200, description="What the line is for.")
    unit: str = Field("", max_length=20, description="Unit of the quantity.")


class TripUpsert(_Body):
    op: Literal["trip.upsert"] = Field(description="Insert or replace a transit trip.")
    trip_id: str = Field(min_length=1, max_length=64, description="Trip id.")
    plate: str = Field(min_length=1, max_length=16, description="Vehicle on the trip.")
    status: Literal["open", "closed"] = Field(description="Trip status.")


class WatchAdd(_Body):
    op: Literal["watch.add"] = Field(description="Put a plate or container on the watch list.")
    kind: Literal["plate", "container"] = Field(description="What is watched.")
    value: str = Field(min_length=1, max_length=32, description="Plate or container number.")
    reason: str = Field("", max_length=200, description="Why.")


class WatchRemove(_Body):
    op: Literal["watch.remove"] = Field(description="Take an entry off the watch list.")
    kind: Literal["plate", "container"] = Field(description="What was watched.")
    value: str = Field(min_length=1, max_length=32, description="Plate or container number.")


class PassConfirm(_Body):
    op: Literal["pass.confirm"] = Field(description="Central has counted this pass's draws.")
    pass_id: str = Field(min_length=1, max_length=128, description="The pass.")


Op = Annotated[
    NoteUpsert | NoteRevoke | BookLineSet | TripUpsert | WatchAdd | WatchRemove | PassConfirm,
    Field(discriminator="op"),
]


# -- message bodies ------------------------------------------------------------------------------


class Delta(_Body):
    schema_version: Literal[1] = Field(alias="schema", description="Body schema version.")
    type: Literal["delta"] = Field(description="A numbered change to the site's documents.")
    site: str = Field(description="Site the delta is for.")
    seq: int = Field(ge=1, le=SEQ_MAX, description="Per-site sequence number, no gaps.")
    issued_at: float = Field(description="When central issued it (seconds since the epoch).")
    ops: list[Op] = Field(max_length=MAX_OPS, description="Changes, applied in order.")


class Snapshot(_Body):
    schema_version: Literal[1] = Field(alias="schema", description="Body schema version.")
    type: Literal["snapshot"] = Field(description="One part of all the site's documents.")
    site: str = Field(description="Site.")
    lane: str = Field(description="Lane that asked for it.")
    seq: int = Field(ge=0, le=SEQ_MAX, description="The sequence the snapshot is current to.")
    snapshot_id: str = Field(min_length=1, max_length=64, description="Parts share this id.")
    part: int = Field(ge=1, description="This part's number, from 1.")
    parts: int = Field(ge=1, le=10_000, description="How many parts there are.")
    issued_at: float = Field(description="When central made it.")
    ops: list[Op] = Field(max_length=MAX_OPS, description="Documents, as upserts.")

    @model_validator(mode="after")
    def _part_in_range(self) -> Snapshot:
        if self.part > self.parts:
            raise ValueError("part beyond parts")
        return self


class Head(_Body):
    schema_version: Literal[1] = Field(alias="schema", description="Body schema version.")
    type: Literal["head"] = Field(description="How far central's sequence has gone.")
    site: str = Field(description="Site.")
    seq: int = Field(ge=0, le=SEQ_MAX, description="Latest sequence issued.")
    issued_at: float = Field(description="When central said so.")


class OverrideSpec(_Body):
    action: Literal["release", "hold"] = Field(description="Release or hold the pass.")
    officer: str = Field(min_length=1, max_length=64, description="Officer deciding.")
    reason: str = Field(min_length=1, max_length=500, description="Why (audited).")
    pass_id: str | None = Field(
        None, max_length=128, description="The pass meant; refused when another is at the lane."
    )


class ResendSpec(_Body):
    from_outbox_seq: int = Field(
        ge=1, le=SEQ_MAX, description="Publish again every kept outbox message from this one on."
    )


class Command(_Body):
    schema_version: Literal[1] = Field(alias="schema", description="Body schema version.")
    type: Literal["command"] = Field(description="A command to one lane.")
    site: str = Field(description="Site.")
    lane: str = Field(description="Lane the command is for.")
    command_id: str = Field(min_length=1, max_length=128, description="Unique; used once.")
    issued_at: float = Field(description="When central issued it.")
    action: Literal["override", "status", "resend"] = Field(description="What to do.")
    override: OverrideSpec | None = Field(None, description="For action override.")
    resend: ResendSpec | None = Field(None, description="For action resend.")

    @model_validator(mode="after")
    def _details_given(self) -> Command:
        if (self.action == "override") != (self.override is not None):
            raise ValueError("override is required with action override, and only then")
        if (self.action == "resend") != (self.resend is not None):
            raise ValueError("resend is required with action resend, and only then")
        return self


CentralBody = Annotated[Delta | Snapshot | Head | Command, Field(discriminator="type")]
_ADAPTER: TypeAdapter[Delta | Snapshot | Head | Command] = TypeAdapter(CentralBody)


def parse_body(body: dict[str, Any]) -> Delta | Snapshot | Head | Command:
    """A checked body from central as its model; ``Refused`` (malformed) when it does not fit."""
    try:
        return _ADAPTER.validate_python(body)
    except ValidationError as exc:
        raise malformed(exc) from None


def malformed(exc: ValidationError) -> Refused:
    """The refusal of a message that does not fit its model, naming the first misfit."""
    first = exc.errors()[0]
    where = ".".join(str(x) for x in first["loc"])
    return Refused(Refusal.MALFORMED, f"{where}: {first['msg']}")


# -- the replica ---------------------------------------------------------------------------------


@dataclass
class SyncReport:
    """What applying one message did."""

    applied: int = 0  # deltas (or a completed snapshot) applied now
    watchlist: tuple[frozenset[str], frozenset[str]] | None = None  # the new list, if changed
    gap: bool = False  # central has (or sent) something beyond what can be applied yet
    refused: list[Refused] = field(default_factory=list)  # held deltas that could not be applied


class Replica:
    """The lane's side of the sync; owns the ledger's applied sequence. Ledger thread only."""

    def __init__(self, ledger: Ledger, *, max_pending: int = 2000) -> None:
        self.ledger = ledger
        self.max_pending = max_pending
        self.applied = ledger.applied_seq()
        self.head = self.applied  # highest sequence known to exist at central
        self.pending: dict[int, Delta] = {}
        self.overflow = 0  # early deltas dropped because the holding area was full
        self._snapshot_id: str | None = None
        self._parts: dict[int, Snapshot] = {}

    @property
    def gap(self) -> bool:
        """True while central has changes this ledger cannot apply yet."""
        return self.head > self.applied or bool(self.pending)

    def reload(self) -> None:
        """Forget what is held and re-read the applied sequence (after a failed commit)."""
        self.applied = self.ledger.applied_seq()
        self.pending.clear()

    def receive(self, body: Delta | Snapshot | Head) -> SyncReport:
        """Take one checked message; raise ``Refused`` (stale, malformed) if it changes nothing."""
        match body:
            case Head():
                self.head = max(self.head, body.seq)
                return SyncReport(gap=self.gap)
            case Delta():
                return self._delta(body)
            case Snapshot():
                return self._snapshot(body)

    def _delta(self, delta: Delta) -> SyncReport:
        if delta.seq <= self.applied or delta.seq in self.pending:
            raise Refused(Refusal.STALE, f"delta {delta.seq}, applied up to {self.applied}")
        self.head = max(self.head, delta.seq)
        if delta.seq != self.applied + 1:
            if len(self.pending) < self.max_pending:
                self.pending[delta.seq] = delta
            else:
                self.overflow += 1  # central will send it again in answer to the resync
            return SyncReport(gap=True)
        report = SyncReport()
        return self._finish(report, watch_changed=self._apply(delta, report))

    def _finish(self, report: SyncReport, *, watch_changed: bool) -> SyncReport:
        """``report`` once the held deltas that now follow on are applied too."""
        if self._drain(report) or watch_changed:
            report.watchlist = self.ledger.watchlist()  # read once, after all that applied
        report.gap = self.gap or bool(report.refused)
        return report

    def _drain(self, report: SyncReport) -> bool:
        """Apply the held deltas that now follow on; True when one changed the watch list.

        A held delta that cannot be applied is refused in ``report`` and the draining stops
        there: what was applied before it stands, and the gap it leaves is asked for again.
        """
        for seq in [s for s in self.pending if s <= self.applied]:
            del self.pending[seq]
        watch_changed = False
        while (nxt := self.pending.pop(self.applied + 1, None)) is not None:
            try:
                watch_changed = self._apply(nxt, report) or watch_changed
            except Refused as refusal:  # the link logs and counts it
                report.refused.append(refusal)
                break
        return watch_changed

    def _apply(self, delta: Delta, report: SyncReport) -> bool:
        """Apply one delta; True when it changed the watch list."""
        changed = self._commit("delta", delta.seq, lambda: _apply_ops(self.ledger, delta.ops))
        self.applied = delta.seq
        report.applied += 1
        return bool(changed)

    def _snapshot(self, part: Snapshot) -> SyncReport:
        if part.seq <= self.applied:
            raise Refused(Refusal.STALE, f"snapshot at {part.seq}, applied up to {self.applied}")
        if part.snapshot_id != self._snapshot_id:
            self._snapshot_id, self._parts = part.snapshot_id, {}
        self._parts[part.part] = part
        if len(self._parts) < part.parts:
            return SyncReport(gap=True)
        ops = [op for n in sorted(self._parts) for op in self._parts[n].ops]
        self._snapshot_id, self._parts = None, {}
        self._commit("snapshot", part.seq, lambda: _apply_snapshot(self.ledger, ops))
        log.info("snapshot applied: %d documents, now at %d", len(ops), part.seq)
        self.applied = part.seq
        self.head = max(self.head, part.seq)
        return self._finish(SyncReport(applied=1), watch_changed=True)  # the list was replaced

    def _commit(self, what: str, seq: int, changes: Callable[[], T]) -> T | None:
        """``Ledger.apply_sync``, with a change the ledger cannot take refused as malformed."""
        try:
            return self.ledger.apply_sync(seq, changes)
        except Exception as exc:
            # undone by the ledger; central sends it again when asked, and is told why meanwhile
            if not isinstance(exc, sqlite3.Error | ValueError):
                log.exception("%s %d failed in a way no check foresaw", what, seq)
            raise Refused(Refusal.MALFORMED, f"{what} {seq} cannot be applied: {exc}") from exc


def _apply_ops(ledger: Ledger, ops: list[Any]) -> bool:
    """Apply a delta's operations in order, its confirmations first (a balance set in the
    same delta already counts those passes: their draws must not be taken off it again);
    True when the watch list changed."""
    watch_changed = False
    ledger.confirm_passes(op.pass_id for op in ops if isinstance(op, PassConfirm))
    for op in ops:
        match op:
            case NoteUpsert():
                ledger.upsert_notes([op.note.to_note_in()])
            case NoteRevoke():
                ledger.revoke_note(op.note_id)
            case BookLineSet():
                ledger.set_book_line_from_central(
                    BookLineIn(op.book_id, op.line_no, op.remaining, item=op.item, unit=op.unit)
                )
            case TripUpsert():
                ledger.upsert_trip_from_central(op.trip_id, op.plate, op.status)
            case WatchAdd():
                ledger.set_watch(op.kind, op.value, op.reason)
                watch_changed = True
            case WatchRemove():
                ledger.remove_watch(op.kind, op.value)
                watch_changed = True
    return watch_changed


def _apply_snapshot(ledger: Ledger, ops: list[Any]) -> None:
    """Make the documents what the snapshot lists: notes it lacks are revoked, the watch list
    is replaced; everything else is upserted as in a delta. Its confirmations go first: the
    balances it sets already count those passes, whose draws must not be taken off again."""
    notes = [op.note.to_note_in() for op in ops if isinstance(op, NoteUpsert)]
    ledger.upsert_notes(notes)
    ledger.revoke_notes_except(n.note_id for n in notes)
    ledger.replace_watchlist(
        (op.kind, op.value, op.reason) for op in ops if isinstance(op, WatchAdd)
    )
    _apply_ops(ledger, [op for op in ops if not isinstance(op, NoteUpsert | WatchAdd)])


_OPS: TypeAdapter[list[Any]] = TypeAdapter(list[Op])


def install(ledger: Ledger, seq: int, ops: list[dict[str, Any]]) -> None:
    """Make the ledger hold exactly these documents at sequence ``seq``, as a snapshot from
    central would (commissioning a lane from an export; the simulator's seeded ledgers)."""
    parsed = _OPS.validate_python(ops)
    ledger.apply_sync(seq, lambda: _apply_snapshot(ledger, parsed))
