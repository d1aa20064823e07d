"""The lane's ledger: a SQLite replica of central's documents plus the lane's own pass journal.

Release notes, account books (底账) with item lines and remaining quantities, transit trips,
the watch list, passes, the outbox to central, and the override audit. A release is written off
(底账核注) in one transaction: pass row, note marked used, book lines decremented, trip closed,
outbox row; all or nothing. A note is used once (a guarded status change) and a balance never
goes negative (a guarded decrement and a CHECK constraint).

Not thread-safe by itself: the daemon owns one Ledger from one worker thread.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from gatewayd.commands import AuditOverride, PassRecord, WriteOffLine
from gatewayd.documents import QUANTITY_SLACK, NoteDocs, NoteLine, NoteStatus, Trip
from gatewayd.normalize import container as norm_container
from gatewayd.normalize import plate as norm_plate
from gatewayd.reasons import Code, Outcome, Reason

SCHEMA_VERSION = 1
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notes (
    note_id TEXT PRIMARY KEY,
    plate TEXT NOT NULL,
    containers TEXT NOT NULL DEFAULT '[]',
    seals TEXT NOT NULL DEFAULT '[]',
    gross_kg REAL,
    tolerance_kg REAL NOT NULL DEFAULT 0,
    direction TEXT NOT NULL DEFAULT 'any' CHECK (direction IN ('entry', 'exit', 'any')),
    valid_from REAL NOT NULL,
    valid_until REAL NOT NULL,
    lines TEXT NOT NULL DEFAULT '[]',
    trip_id TEXT,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'used', 'revoked')),
    used_by TEXT,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS book_lines (
    book_id TEXT NOT NULL,
    line_no INTEGER NOT NULL,
    item TEXT NOT NULL DEFAULT '',
    unit TEXT NOT NULL DEFAULT '',
    remaining REAL NOT NULL CHECK (remaining >= 0),
    PRIMARY KEY (book_id, line_no)
);
CREATE TABLE IF NOT EXISTS trips (
    trip_id TEXT PRIMARY KEY,
    plate TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    closed_by TEXT
);
CREATE TABLE IF NOT EXISTS watchlist (
    kind TEXT NOT NULL CHECK (kind IN ('plate', 'container')),
    value TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (kind, value)
);
CREATE TABLE IF NOT EXISTS passes (
    pass_id TEXT PRIMARY KEY,
    lane_id TEXT NOT NULL,
    opened_at REAL NOT NULL,
    decided_at REAL NOT NULL,
    outcome TEXT NOT NULL,
    reasons TEXT NOT NULL,
    note_id TEXT,
    plate TEXT,
    record TEXT NOT NULL,
    override_id TEXT
);
CREATE INDEX IF NOT EXISTS passes_note ON passes (note_id);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL,
    delivered_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    UNIQUE (kind, key)
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (seq) WHERE delivered_at IS NULL;
CREATE TABLE IF NOT EXISTS overrides (
    override_id TEXT PRIMARY KEY,
    pass_id TEXT NOT NULL,
    action TEXT NOT NULL,
    officer TEXT NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL,
    requested_by TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


# A release's write-off lines as pending draws, unless central has already counted the pass
# (for both triggers below: SQLite has no trigger on INSERT and UPDATE together).
_RELEASE_DRAWS = """\
    INSERT OR IGNORE INTO pending_draws (pass_id, book_id, line_no, quantity)
    SELECT NEW.pass_id, json_extract(w.value, '$.book'), json_extract(w.value, '$.line'),
           json_extract(w.value, '$.quantity')
    FROM json_each(NEW.record, '$.write_off') AS w
    WHERE NOT EXISTS (SELECT 1 FROM confirmed_passes c WHERE c.pass_id = NEW.pass_id);
"""

# Tables of the central link (gatewayd.link, gatewayd.sync). Draws on account-book lines that
# central has not yet counted are kept in pending_draws (own releases through the triggers, in
# the same transaction as the pass; neighbours' releases as they arrive), so that a line's
# remaining quantity from central is reduced by them until central confirms the pass.
_SYNC_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS pending_draws (
    pass_id TEXT NOT NULL,
    book_id TEXT NOT NULL,
    line_no INTEGER NOT NULL,
    quantity REAL NOT NULL,
    PRIMARY KEY (pass_id, book_id, line_no)
);
CREATE INDEX IF NOT EXISTS pending_draws_line ON pending_draws (book_id, line_no);
CREATE TABLE IF NOT EXISTS confirmed_passes (
    pass_id TEXT PRIMARY KEY,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS site_passes (
    key TEXT PRIMARY KEY,
    pass_id TEXT NOT NULL,
    lane_id TEXT NOT NULL,
    note_id TEXT,
    decision TEXT NOT NULL,
    seen_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS site_passes_note ON site_passes (note_id);
CREATE TABLE IF NOT EXISTS commands (
    command_id TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    issued_at REAL NOT NULL,
    received_at REAL NOT NULL,
    body TEXT NOT NULL,
    result TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS passes_pending_draws_insert AFTER INSERT ON passes
WHEN NEW.outcome = 'release'
BEGIN
{_RELEASE_DRAWS}END;
CREATE TRIGGER IF NOT EXISTS passes_pending_draws_update AFTER UPDATE OF outcome ON passes
WHEN NEW.outcome = 'release' AND OLD.outcome <> 'release'
BEGIN
{_RELEASE_DRAWS}END;
"""
SYNC_SEQ = "sync.applied_seq"
# the columns of each row of Ledger.documents()["notes"], in order
NOTE_COLUMNS = (
    "note_id",
    "plate",
    "containers",
    "seals",
    "gross_kg",
    "tolerance_kg",
    "direction",
    "valid_from",
    "valid_until",
    "lines",
    "trip_id",
    "status",
)


@dataclass(frozen=True)
class NoteIn:
    """A release note as central sends it (and scenarios write it)."""

    note_id: str
    plate: str
    valid_from: float
    valid_until: float
    containers: tuple[str, ...] = ()
    seals: tuple[str, ...] = ()
    gross_kg: float | None = None
    tolerance_kg: float = 0.0
    direction: str = "any"
    lines: tuple[tuple[str, int, float], ...] = ()  # (book id, line no, quantity)
    trip_id: str | None = None
    status: str = "active"


@dataclass(frozen=True)
class BookLineIn:
    """One account-book line with its remaining quantity."""

    book_id: str
    line_no: int
    remaining: float
    item: str = ""
    unit: str = ""


@dataclass(frozen=True)
class OutboxRow:
    """A message waiting for (or past) delivery to central."""

    seq: int
    kind: str
    key: str
    payload: str
    created_at: float
    attempts: int


class Ledger:
    """The lane's SQLite ledger (WAL, synchronous=FULL: a committed pass survives power loss)."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        if synchronous not in ("FULL", "NORMAL", "OFF"):
            raise ValueError(f"synchronous must be FULL, NORMAL or OFF, not {synchronous!r}")
        self.path = Path(path)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA busy_timeout=5000")
        # Checkpoints (WAL -> database, with their own fsyncs) run when the lane is idle
        # (``checkpoint``), not inside a commit that a truck at the barrier is waiting for.
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.executescript(_SCHEMA)
        conn.executescript(_SYNC_SCHEMA)
        self._add_missing_columns()
        self._set_meta_default("schema_version", str(SCHEMA_VERSION))

    def close(self) -> None:
        """Checkpoint and close the connection."""
        self.checkpoint()
        self.conn.close()

    def checkpoint(self) -> None:
        """Copy committed pages from the WAL into the database (call between passes)."""
        self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    # -- documents ---------------------------------------------------------------------------

    def upsert_notes(self, notes: Iterable[NoteIn], now: float | None = None) -> None:
        """Insert or replace release notes. A used note keeps its used status, and a note sent
        as active that a release already named arrives used: a neighbour's (site_passes), or
        this lane's own (an officer's release of a note the lane did not hold yet)."""
        at = time.time() if now is None else now
        rows = [self._note_row(n, at) for n in notes]
        with self._transaction():
            for row in rows:
                existing = self.conn.execute(
                    "SELECT status, used_by FROM notes WHERE note_id = ?", (row["note_id"],)
                ).fetchone()
                if existing is not None and existing[0] == "used":
                    row["status"], row["used_by"] = "used", existing[1]
                elif row["status"] == "active":
                    # the neighbour's release may come before the note (a late delta, a
                    # snapshot, reordering); central's own used or revoked stands as sent
                    release = Outcome.RELEASE.value
                    released = self.conn.execute(
                        "SELECT pass_id FROM passes WHERE note_id = ? AND outcome = ? "
                        "UNION ALL SELECT pass_id FROM site_passes WHERE note_id = ? "
                        "AND decision = ? LIMIT 1",
                        (row["note_id"], release, row["note_id"], release),
                    ).fetchone()
                    if released is not None:
                        row["status"], row["used_by"] = "used", released[0]
                self.db.table("notes").upsert(row, pk="note_id")

    def revoke_note(self, note_id: str) -> bool:
        """Mark an active note revoked; False when there is no active note of that id."""
        with self._transaction():
            cur = self.conn.execute(
                "UPDATE notes SET status = 'revoked', updated_at = ? "
                "WHERE note_id = ? AND status = 'active'",
                (time.time(), note_id),
            )
            return cur.rowcount == 1

    def upsert_book_lines(self, lines: Iterable[BookLineIn]) -> None:
        """Insert or replace account-book lines with their remaining quantities."""
        rows = [
            {
                "book_id": x.book_id,
                "line_no": x.line_no,
                "item": x.item,
                "unit": x.unit,
                "remaining": x.remaining,
            }
            for x in lines
        ]
        with self._transaction():
            self.db.table("book_lines").upsert_all(rows, pk=("book_id", "line_no"))

    def upsert_trips(self, trips: Iterable[tuple[str, str, str]]) -> None:
        """Insert or replace transit trips as (trip id, plate, status)."""
        rows = [{"trip_id": t, "plate": norm_plate(p), "status": s} for t, p, s in trips]
        with self._transaction():
            self.db.table("trips").upsert_all(rows, pk="trip_id")

    def set_watch(self, kind: str, value: str, reason: str = "") -> None:
        """Put a plate or container number on the watch list."""
        norm = norm_plate(value) if kind == "plate" else norm_container(value)
        with self._transaction():
            self.db.table("watchlist").upsert(
                {"kind": kind, "value": norm, "reason": reason}, pk=("kind", "value")
            )

    def remove_watch(self, kind: str, value: str) -> None:
        """Take an entry off the watch list."""
        norm = norm_plate(value) if kind == "plate" else norm_container(value)
        with self._transaction():
            self.conn.execute("DELETE FROM watchlist WHERE kind = ? AND value = ?", (kind, norm))

    def watchlist(self) -> tuple[frozenset[str], frozenset[str]]:
        """The watch list as (plates, container numbers), normalised."""
        rows = self.conn.execute("SELECT kind, value FROM watchlist").fetchall()
        plates = frozenset(v for k, v in rows if k == "plate")
        return plates, frozenset(v for k, v in rows if k == "container")

    def load_note(self, note_id: str) -> NoteDocs | None:
        """The note with its book balances and trip, or None when the ledger lacks it."""
        row = self.conn.execute(
            "SELECT note_id, plate, containers, seals, gross_kg, tolerance_kg, direction, "
            "valid_from, valid_until, status, lines, trip_id FROM notes WHERE note_id = ?",
            (note_id,),
        ).fetchone()
        if row is None:
            return None
        lines = []
        for book_id, line_no, quantity in json.loads(row[10]):
            bal = self.conn.execute(
                "SELECT remaining FROM book_lines WHERE book_id = ? AND line_no = ?",
                (book_id, line_no),
            ).fetchone()
            lines.append(NoteLine(book_id, int(line_no), float(quantity), bal[0] if bal else 0.0))
        trip = None
        if row[11]:
            t = self.conn.execute(
                "SELECT trip_id, status FROM trips WHERE trip_id = ?", (row[11],)
            ).fetchone()
            # a note naming a trip the ledger lacks cannot have closed it
            trip = Trip(t[0], t[1]) if t else Trip(row[11], "open")
        return NoteDocs(
            note_id=row[0],
            plate=row[1],
            containers=tuple(json.loads(row[2])),
            seals=tuple(json.loads(row[3])),
            gross_kg=row[4],
            tolerance_kg=row[5],
            direction=row[6],
            valid_from=row[7],
            valid_until=row[8],
            status=NoteStatus(row[9]),
            lines=tuple(lines),
            trip=trip,
        )

    # -- passes ------------------------------------------------------------------------------

    def commit_pass(self, record: PassRecord) -> tuple[Outcome, tuple[Reason, ...]]:
        """Write a decided pass; for a release, write the note off in the same transaction.

        Inside the transaction the note and balances are checked again: if a neighbouring lane
        (or central) used, revoked or drew on them since the decision, the pass is recorded as
        a REJECT with the reason instead, and nothing is written off. Committing the same pass
        id twice changes nothing and returns what was first written.
        """
        with self._transaction():
            done = self._existing_pass(record.pass_id)
            if done is not None:
                return done
            outcome, reasons = record.outcome, record.reasons
            if outcome is Outcome.RELEASE:
                failed = self._write_off(record)
                if failed:
                    outcome = Outcome.REJECT
                    reasons = tuple(sorted(set(reasons) | set(failed)))
            final = _with_outcome(record, outcome, reasons)
            self._insert_pass(final)
            self._enqueue("pass", final.pass_id, final.as_dict())
            return outcome, reasons

    def audit_override(self, cmd: AuditOverride) -> tuple[Outcome, tuple[Reason, ...]]:
        """Apply an officer override: audit row, pass (re)written, write-off when it releases.

        The officer's release stands even if the write-off cannot be made whole: the note is
        marked used and its trip closed all the same (the truck is through), the lines its
        balances cover are drawn, and what could not be drawn (the note used or revoked, a line
        short) is kept in the reasons for central to see. The pass records, and its message
        carries, only the lines actually drawn.
        """
        record = cmd.record
        with self._transaction():
            seen = self.conn.execute(
                "SELECT 1 FROM overrides WHERE override_id = ?", (cmd.override_id,)
            ).fetchone()
            if seen is not None:
                done = self._existing_pass(cmd.pass_id)
                if done is not None:
                    return done
            self.conn.execute(
                "INSERT OR IGNORE INTO overrides "
                "(override_id, pass_id, action, officer, reason, at, requested_by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    cmd.override_id,
                    cmd.pass_id,
                    cmd.action,
                    cmd.officer,
                    cmd.reason,
                    time.time(),
                    cmd.requested_by,
                ),
            )
            final = self._override_write_off(record) if cmd.action == "release" else record
            if self._existing_pass(cmd.pass_id) is None:
                self._insert_pass(final)
                self._enqueue("pass", final.pass_id, final.as_dict())
            else:
                self.conn.execute(
                    "UPDATE passes SET outcome = ?, reasons = ?, record = ?, override_id = ? "
                    "WHERE pass_id = ?",
                    (
                        final.outcome.value,
                        _reasons_json(final.reasons),
                        json.dumps(final.as_dict(), ensure_ascii=False),
                        cmd.override_id,
                        cmd.pass_id,
                    ),
                )
                payload = {
                    **final.as_dict(),
                    "officer": cmd.officer,
                    "why": cmd.reason,
                    "requested_by": cmd.requested_by,
                }
                self._enqueue("override", cmd.override_id, payload)
            return final.outcome, final.reasons

    def _override_write_off(self, record: PassRecord) -> PassRecord:
        """An officer's release: use the note, close its trip, draw each line its balance
        covers. The record returned holds only the lines drawn (pending_draws, central and the
        neighbours take it as the truth) and the trip only if this pass closed it."""
        if record.note_id is None:
            return replace(record, write_off=(), trip_id=None)
        refused = self._use_note(record)
        if refused is not None:  # used or revoked before: nothing of it is this pass's to draw
            return replace(
                record,
                reasons=tuple(sorted({*record.reasons, refused})),
                write_off=(),
                trip_id=None,
            )
        drawn, short = self._draw(record.write_off)
        trip_id = self._close_trip(record)
        reasons = tuple(sorted({*record.reasons, *short}))
        return replace(record, reasons=reasons, write_off=drawn, trip_id=trip_id)

    def _write_off(self, record: PassRecord) -> list[Reason]:
        """Use the note and draw its lines; on any failure undo all of it and say why."""
        if record.note_id is None:
            return []
        self.conn.execute("SAVEPOINT write_off")
        failed: list[Reason] = []
        refused = self._use_note(record)
        if refused is not None:
            failed.append(refused)
        else:
            failed += self._draw(record.write_off)[1]
            self._close_trip(record)
        if failed:
            self.conn.execute("ROLLBACK TO write_off")
        self.conn.execute("RELEASE write_off")
        return failed

    def _use_note(self, record: PassRecord) -> Reason | None:
        """Mark the record's note used by it; the reason when the note is not active."""
        note_id = record.note_id
        cur = self.conn.execute(
            "UPDATE notes SET status = 'used', used_by = ?, updated_at = ? "
            "WHERE note_id = ? AND status = 'active'",
            (record.pass_id, time.time(), note_id),
        )
        if cur.rowcount == 1:
            return None
        row = self.conn.execute("SELECT status FROM notes WHERE note_id = ?", (note_id,)).fetchone()
        if row is None:
            return Reason(Code.NOTE_UNKNOWN, str(note_id))
        code = Code.NOTE_REVOKED if row[0] == "revoked" else Code.NOTE_USED
        return Reason(code, str(note_id))

    def _draw(self, lines: Iterable[WriteOffLine]) -> tuple[tuple[WriteOffLine, ...], list[Reason]]:
        """Draw each line its balance covers (a guarded decrement: never below zero); returns
        the lines drawn and a BALANCE_INSUFFICIENT reason for each line left undrawn."""
        drawn: list[WriteOffLine] = []
        short: list[Reason] = []
        for line in lines:
            cur = self.conn.execute(
                "UPDATE book_lines SET remaining = MAX(0, remaining - ?) "
                "WHERE book_id = ? AND line_no = ? AND remaining + ? >= ?",
                (line.quantity, line.book_id, line.line_no, QUANTITY_SLACK, line.quantity),
            )
            if cur.rowcount == 1:
                drawn.append(line)
            else:
                detail = f"{line.book_id}/{line.line_no}: {line.quantity:g} not covered"
                short.append(Reason(Code.BALANCE_INSUFFICIENT, detail))
        return tuple(drawn), short

    def _close_trip(self, record: PassRecord) -> str | None:
        """Close the record's trip (if any) as ended by this pass; the trip id."""
        if record.trip_id is not None:
            self.conn.execute(
                "UPDATE trips SET status = 'closed', closed_by = ? WHERE trip_id = ?",
                (record.pass_id, record.trip_id),
            )
        return record.trip_id

    def _existing_pass(self, pass_id: str) -> tuple[Outcome, tuple[Reason, ...]] | None:
        row = self.conn.execute(
            "SELECT outcome, reasons FROM passes WHERE pass_id = ?", (pass_id,)
        ).fetchone()
        if row is None:
            return None
        reasons = tuple(Reason(Code(r["code"]), r["detail"]) for r in json.loads(row[1]))
        return Outcome(row[0]), reasons

    def _insert_pass(self, record: PassRecord) -> None:
        self.conn.execute(
            "INSERT INTO passes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.pass_id,
                record.lane_id,
                record.opened_at,
                record.decided_at,
                record.outcome.value,
                _reasons_json(record.reasons),
                record.note_id,
                record.plate,
                json.dumps(record.as_dict(), ensure_ascii=False),
                record.override_id,
            ),
        )

    def passes(self) -> list[dict[str, Any]]:
        """Every pass recorded, oldest first, as central receives them."""
        rows = self.conn.execute("SELECT record FROM passes ORDER BY decided_at, pass_id")
        return [json.loads(r[0]) for r in rows]

    # -- outbox ------------------------------------------------------------------------------

    def enqueue(self, kind: str, key: str, payload: dict[str, Any]) -> None:
        """Queue a message for central (an alert, a status) in a transaction of its own."""
        with self._transaction():
            self._enqueue(kind, key, payload)

    def _enqueue(self, kind: str, key: str, payload: dict[str, Any]) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO outbox (kind, key, payload, created_at) VALUES (?, ?, ?, ?)",
            (kind, key, json.dumps(payload, ensure_ascii=False), time.time()),
        )

    def outbox_pending(self, limit: int = 100) -> list[OutboxRow]:
        """Undelivered messages, oldest first."""
        rows = self.conn.execute(
            "SELECT seq, kind, key, payload, created_at, attempts FROM outbox "
            "WHERE delivered_at IS NULL ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [OutboxRow(*r) for r in rows]

    def mark_delivered(self, seqs: Sequence[int], now: float | None = None) -> None:
        """Record that central acknowledged these messages."""
        at = time.time() if now is None else now
        with self._transaction():
            self.conn.executemany(
                "UPDATE outbox SET delivered_at = ? WHERE seq = ? AND delivered_at IS NULL",
                [(at, s) for s in seqs],
            )

    def requeue_outbox(self, from_seq: int) -> tuple[int, int | None]:
        """Mark the delivered messages from ``from_seq`` on undelivered again, so that they are
        published again (central lost what the broker had acknowledged). Returns how many, and
        the oldest message still kept (None when none is): older ones are pruned for good."""
        with self._transaction():
            cur = self.conn.execute(
                "UPDATE outbox SET delivered_at = NULL WHERE seq >= ? AND delivered_at IS NOT NULL",
                (from_seq,),
            )
            (oldest,) = self.conn.execute("SELECT MIN(seq) FROM outbox").fetchone()
            return cur.rowcount, oldest

    def outbox_counts(self) -> tuple[int, int]:
        """(pending, delivered) message counts."""
        row = self.conn.execute(
            "SELECT SUM(delivered_at IS NULL), SUM(delivered_at IS NOT NULL) FROM outbox"
        ).fetchone()
        return int(row[0] or 0), int(row[1] or 0)

    # -- meta --------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """A stored setting (applied sync sequence, active rule bundle, ...)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Store a setting."""
        with self._transaction():
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def _add_missing_columns(self) -> None:
        """Bring a ledger written by an earlier version up to this one's tables."""
        have = {row[1] for row in self.conn.execute("PRAGMA table_info(overrides)")}
        if "requested_by" not in have:
            with self._transaction():
                self.conn.execute(
                    "ALTER TABLE overrides ADD COLUMN requested_by TEXT NOT NULL DEFAULT ''"
                )

    def _set_meta_default(self, key: str, value: str) -> None:
        with self._transaction():
            self.conn.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))

    # -- central link (gatewayd.sync, gatewayd.link) ----------------------------------------

    def applied_seq(self) -> int:
        """The last ledger sequence from central applied here (0: none yet)."""
        value = self.get_meta(SYNC_SEQ)
        return int(value) if value is not None else 0

    def apply_sync(self, seq: int, changes: Callable[[], T]) -> T | None:
        """Run central's changes and record ``seq`` as applied, all in one transaction.

        Returns None and changes nothing when ``seq`` is not above the applied sequence, so a
        delta that arrives twice is applied once. ``changes`` calls this ledger's methods (their
        transactions nest into this one).
        """
        with self._transaction():  # in a batch, a failing delta undoes only itself
            if seq <= self.applied_seq():
                return None
            result = changes()
            self.set_meta(SYNC_SEQ, str(seq))
            return result

    def batch(self) -> AbstractContextManager[None]:
        """Group several changes into one transaction (one fsync); the methods called inside
        join it, each as a savepoint (one that raises undoes only itself). Rolled back as a
        whole if an exception leaves the block."""
        return self._transaction()

    def upsert_trip_from_central(self, trip_id: str, plate: str, status: str) -> None:
        """Insert or replace a trip as central sends it; a trip this ledger closed with a pass
        central has not confirmed yet stays closed."""
        with self._transaction():
            row = self.conn.execute(
                "SELECT status, closed_by FROM trips WHERE trip_id = ?", (trip_id,)
            ).fetchone()
            if row is not None and row[0] == "closed" and row[1] is not None:
                confirmed = self.conn.execute(
                    "SELECT 1 FROM confirmed_passes WHERE pass_id = ?", (row[1],)
                ).fetchone()
                if confirmed is None:
                    return
            self.upsert_trips([(trip_id, plate, status)])

    def set_book_line_from_central(self, line: BookLineIn) -> None:
        """Set a line's remaining quantity as central counts it, less the draws here that
        central has not counted yet (releases it has not confirmed)."""
        with self._transaction():
            (pending,) = self.conn.execute(
                "SELECT COALESCE(SUM(quantity), 0) FROM pending_draws "
                "WHERE book_id = ? AND line_no = ?",
                (line.book_id, line.line_no),
            ).fetchone()
            self.upsert_book_lines([replace(line, remaining=max(0.0, line.remaining - pending))])

    def confirm_passes(self, pass_ids: Iterable[str], now: float | None = None) -> None:
        """Central has counted these passes in its balances: their draws are no longer pending."""
        at = time.time() if now is None else now
        with self._transaction():
            for pass_id in pass_ids:
                self.conn.execute("DELETE FROM pending_draws WHERE pass_id = ?", (pass_id,))
                self.conn.execute(
                    "INSERT OR IGNORE INTO confirmed_passes VALUES (?, ?)", (pass_id, at)
                )

    def replace_watchlist(self, entries: Iterable[tuple[str, str, str]]) -> None:
        """Make the watch list exactly these (kind, value, reason) entries."""
        with self._transaction():
            self.conn.execute("DELETE FROM watchlist")
            for kind, value, reason in entries:
                self.set_watch(kind, value, reason)

    def revoke_notes_except(self, keep: Iterable[str]) -> int:
        """Revoke every active note not in ``keep`` (central's full list no longer has them)."""
        kept = set(keep)
        with self._transaction():
            active = [
                r[0] for r in self.conn.execute("SELECT note_id FROM notes WHERE status = 'active'")
            ]
            gone = [n for n in active if n not in kept]
            for note_id in gone:
                self.revoke_note(note_id)
            return len(gone)

    def apply_site_pass(self, key: str, record: dict[str, Any], now: float | None = None) -> str:
        """Take a neighbouring lane's pass (or override) into account, once per ``key``.

        A release marks its note used here (a note this lane does not hold yet is marked used
        when it arrives: ``upsert_notes`` looks the release up) and draws its lines (as pending
        until central confirms the pass), so the note is refused at this lane too. Returns
        ``"seen"`` (already taken), ``"recorded"`` (nothing to write off), ``"used"`` (note
        marked used here) or ``"double"`` (this lane had already released the same note: a
        double write-off).
        """
        with self._transaction():  # in a batch, a failing pass undoes only itself
            return self._apply_site_pass(key, record, time.time() if now is None else now)

    def _apply_site_pass(self, key: str, record: dict[str, Any], at: float) -> str:
        pass_id = str(record["pass_id"])
        note_id = record.get("note_id")
        seen = self.conn.execute("SELECT 1 FROM site_passes WHERE key = ?", (key,)).fetchone()
        if seen is not None:
            return "seen"
        self.conn.execute(
            "INSERT INTO site_passes VALUES (?, ?, ?, ?, ?, ?)",
            (key, pass_id, str(record["lane"]), note_id, str(record["decision"]), at),
        )
        if record["decision"] != Outcome.RELEASE.value or not note_id:
            return "recorded"
        row = self.conn.execute(
            "SELECT status, used_by FROM notes WHERE note_id = ?", (note_id,)
        ).fetchone()
        if row is not None and row[0] == "used":
            own = row[1] is not None and row[1] != pass_id and self._existing_pass(row[1])
            return "double" if own else "recorded"
        self.conn.execute(
            "UPDATE notes SET status = 'used', used_by = ?, updated_at = ? "
            "WHERE note_id = ? AND status = 'active'",
            (pass_id, at, note_id),
        )
        confirmed = self.conn.execute(
            "SELECT 1 FROM confirmed_passes WHERE pass_id = ?", (pass_id,)
        ).fetchone()
        if confirmed is None:
            for w in record.get("write_off") or ():
                book, line, quantity = str(w["book"]), int(w["line"]), float(w["quantity"])
                added = self.conn.execute(
                    "INSERT OR IGNORE INTO pending_draws VALUES (?, ?, ?, ?)",
                    (pass_id, book, line, quantity),
                ).rowcount
                if added:  # a draw already pending (the pass sent again) is not taken twice
                    self.conn.execute(
                        "UPDATE book_lines SET remaining = MAX(0, remaining - ?) "
                        "WHERE book_id = ? AND line_no = ?",
                        (quantity, book, line),
                    )
        trip_id = record.get("trip_id")
        if trip_id:
            self.conn.execute(
                "UPDATE trips SET status = 'closed', closed_by = ? "
                "WHERE trip_id = ? AND status = 'open'",
                (pass_id, trip_id),
            )
        return "used"

    def record_command(
        self,
        command_id: str,
        action: str,
        issued_at: float,
        body: dict[str, Any],
        result: str,
        *,
        now: float | None = None,
    ) -> bool:
        """Audit a command from central; False (and nothing written) if its id was seen."""
        at = time.time() if now is None else now
        with self._transaction():
            cur = self.conn.execute(
                "INSERT OR IGNORE INTO commands VALUES (?, ?, ?, ?, ?, ?)",
                (command_id, action, issued_at, at, json.dumps(body, ensure_ascii=False), result),
            )
            return cur.rowcount == 1

    def commands(self) -> list[dict[str, Any]]:
        """The audited commands from central, oldest first."""
        rows = self.conn.execute(
            "SELECT command_id, action, issued_at, received_at, body, result FROM commands "
            "ORDER BY received_at, command_id"
        )
        keys = ("command_id", "action", "issued_at", "received_at", "body", "result")
        return [{**dict(zip(keys, r, strict=True)), "body": json.loads(r[4])} for r in rows]

    def overrides(self) -> list[dict[str, Any]]:
        """The override audit, oldest first."""
        rows = self.conn.execute(
            "SELECT override_id, pass_id, action, officer, reason, at, requested_by "
            "FROM overrides ORDER BY at"
        )
        keys = ("override_id", "pass_id", "action", "officer", "reason", "at", "requested_by")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def prune_outbox(self, before: float, keep: int) -> int:
        """Delete delivered outbox rows delivered before ``before``, and all but the newest
        ``keep`` delivered rows; undelivered rows are never deleted. Also forgets confirmed
        and neighbouring passes older than ``before`` (but not the confirmation of a pass that
        closed a trip: it tells whether central may reopen the trip). Pending draws stay until
        central confirms them, however old: forgotten, a balance central sent before it
        counted them would let the lane draw more than the line holds.
        Returns the outbox rows deleted."""
        with self._transaction():
            cur = self.conn.execute(
                "DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?", (before,)
            )
            deleted = cur.rowcount
            cur = self.conn.execute(
                "DELETE FROM outbox WHERE delivered_at IS NOT NULL AND seq NOT IN "
                "(SELECT seq FROM outbox WHERE delivered_at IS NOT NULL ORDER BY seq DESC LIMIT ?)",
                (keep,),
            )
            deleted += cur.rowcount
            self.conn.execute(
                "DELETE FROM confirmed_passes WHERE at < ? AND pass_id NOT IN "
                "(SELECT closed_by FROM trips WHERE closed_by IS NOT NULL)",
                (before,),
            )
            self.conn.execute("DELETE FROM site_passes WHERE seen_at < ?", (before,))
            return deleted

    def prune_commands(self, before: float) -> int:
        """Forget ``status`` requests from central received before ``before``; returns how many.
        They change nothing, and their ids are only needed while a replay could still pass the
        age check. Override commands stay, as the audit of who released what; so do resend
        requests, the audit of what central asked for again."""
        with self._transaction():
            cur = self.conn.execute(
                "DELETE FROM commands WHERE action = 'status' AND received_at < ?", (before,)
            )
            return cur.rowcount

    def documents(self) -> dict[str, Any]:
        """Central's documents as this ledger holds them, in a canonical order (for checks)."""
        notes = self.conn.execute(
            f"SELECT {', '.join(NOTE_COLUMNS)} FROM notes ORDER BY note_id"
        ).fetchall()
        return {
            "applied_seq": self.applied_seq(),
            "notes": [list(r) for r in notes],
            "book_lines": [
                list(r)
                for r in self.conn.execute(
                    "SELECT book_id, line_no, item, unit, remaining FROM book_lines "
                    "ORDER BY book_id, line_no"
                )
            ],
            "trips": [
                list(r)
                for r in self.conn.execute(
                    "SELECT trip_id, plate, status FROM trips ORDER BY trip_id"
                )
            ],
            "watchlist": [
                list(r)
                for r in self.conn.execute(
                    "SELECT kind, value, reason FROM watchlist ORDER BY kind, value"
                )
            ],
        }

    # -- plumbing ----------------------------------------------------------------------------

    def _transaction(self) -> _Transaction:
        return _Transaction(self.conn)

    @staticmethod
    def _note_row(n: NoteIn, at: float) -> dict[str, Any]:
        return {
            "note_id": n.note_id,
            "plate": norm_plate(n.plate),
            "containers": json.dumps([norm_container(c) for c in n.containers]),
            "seals": json.dumps(list(n.seals)),
            "gross_kg": n.gross_kg,
            "tolerance_kg": n.tolerance_kg,
            "direction": n.direction,
            "valid_from": n.valid_from,
            "valid_until": n.valid_until,
            "lines": json.dumps([list(x) for x in n.lines]),
            "trip_id": n.trip_id,
            "status": n.status,
            "used_by": None,
            "updated_at": at,
        }


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception. Inside another transaction
    it is a savepoint: an exception undoes only what was done inside it, so one failing
    change in a batch (``Ledger.batch``) leaves the others standing."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.savepoint = False

    def __enter__(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("SAVEPOINT nested")
            self.savepoint = True
        else:
            self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self.savepoint:
            # the most recent savepoint of that name is this one's
            if exc_type is not None:
                self.conn.execute("ROLLBACK TO nested")
            self.conn.execute("RELEASE nested")
        elif exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")


def _reasons_json(reasons: Iterable[Reason]) -> str:
    return json.dumps([{"code": r.code.value, "detail": r.detail} for r in reasons])


def _with_outcome(record: PassRecord, outcome: Outcome, reasons: tuple[Reason, ...]) -> PassRecord:
    if outcome is record.outcome and reasons == record.reasons:
        return record
    write_off = record.write_off if outcome is Outcome.RELEASE else ()
    trip_id = record.trip_id if outcome is Outcome.RELEASE else None
    return replace(record, outcome=outcome, reasons=reasons, write_off=write_off, trip_id=trip_id)
