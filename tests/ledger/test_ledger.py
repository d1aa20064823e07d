"""The ledger: write-off in one transaction, a note used once, balances never negative."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from drivers.release_note import ReleaseNote
from gatewayd.commands import AuditOverride, PassRecord, WriteOffLine
from gatewayd.documents import NoteStatus
from gatewayd.judge import Policy, Readings, judge
from gatewayd.ledger import BookLineIn, Ledger, NoteIn
from gatewayd.reasons import Code, Outcome, Reason

POLICY = Policy(required=frozenset(), direction="entry")


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    led = Ledger(tmp_path / "ledger.db")
    led.upsert_book_lines([BookLineIn("BK1", 1, 100.0, item="steel"), BookLineIn("BK1", 2, 5.0)])
    led.upsert_trips([("TR1", "沪A12345", "open")])
    led.upsert_notes(
        [
            NoteIn(
                "RN1",
                "沪A·12345",
                0,
                2e9,
                ("mscu 123456-5",),
                lines=(("BK1", 1, 30.0),),
                trip_id="TR1",
            ),
            NoteIn("RN2", "沪B00002", 0, 2e9, lines=(("BK1", 1, 30.0), ("BK1", 2, 10.0))),
            NoteIn("RN3", "沪C00003", 0, 2e9, lines=(("BK1", 1, 30.0),)),
        ]
    )
    return led


def release(
    pass_id: str, note_id: str, lines: tuple[tuple[str, int, float], ...], trip: str | None = None
) -> PassRecord:
    return PassRecord(
        pass_id=pass_id,
        lane_id="L1",
        opened_at=1.0,
        decided_at=2.0,
        outcome=Outcome.RELEASE,
        reasons=(),
        note_id=note_id,
        plate="沪A12345",
        containers=(),
        write_off=tuple(WriteOffLine(b, n, q) for b, n, q in lines),
        trip_id=trip,
    )


def remaining(led: Ledger) -> dict[tuple[str, int], float]:
    rows = led.conn.execute("SELECT book_id, line_no, remaining FROM book_lines").fetchall()
    return {(b, n): r for b, n, r in rows}


def outbox_keys(led: Ledger) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in led.conn.execute("SELECT kind, key FROM outbox ORDER BY seq")]


def test_notes_are_stored_normalised_with_balances_and_trip(ledger: Ledger) -> None:
    docs = ledger.load_note("RN1")
    assert docs is not None
    assert docs.plate == "沪A12345"
    assert docs.containers == ("MSCU1234565",)
    assert [(x.book_id, x.quantity, x.remaining) for x in docs.lines] == [("BK1", 30.0, 100.0)]
    assert docs.trip is not None
    assert docs.trip.status == "open"
    assert ledger.load_note("nope") is None


def test_release_writes_off_everything_in_one_transaction(ledger: Ledger) -> None:
    outcome, reasons = ledger.commit_pass(release("P1", "RN1", (("BK1", 1, 30.0),), trip="TR1"))
    assert (outcome, reasons) == (Outcome.RELEASE, ())
    docs = ledger.load_note("RN1")
    assert docs is not None
    assert docs.status is NoteStatus.USED
    assert docs.trip is not None
    assert docs.trip.status == "closed"
    assert remaining(ledger)[("BK1", 1)] == 70.0
    assert outbox_keys(ledger) == [("pass", "P1")]
    assert [p["pass_id"] for p in ledger.passes()] == ["P1"]


def test_a_note_is_used_once(ledger: Ledger) -> None:
    ledger.commit_pass(release("P1", "RN1", (("BK1", 1, 30.0),)))
    outcome, reasons = ledger.commit_pass(release("P2", "RN1", (("BK1", 1, 30.0),)))
    assert outcome is Outcome.REJECT
    assert reasons == (Reason(Code.NOTE_USED, "RN1"),)
    assert remaining(ledger)[("BK1", 1)] == 70.0  # drawn once only
    assert ledger.passes()[1]["decision"] == "reject"
    assert ledger.passes()[1]["write_off"] == []
    assert outbox_keys(ledger) == [("pass", "P1"), ("pass", "P2")]


def test_short_balance_writes_off_nothing_and_records_a_reject(ledger: Ledger) -> None:
    before = remaining(ledger)
    outcome, reasons = ledger.commit_pass(
        release("P1", "RN2", (("BK1", 1, 30.0), ("BK1", 2, 10.0)))
    )
    assert outcome is Outcome.REJECT
    assert [r.code for r in reasons] == [Code.BALANCE_INSUFFICIENT]
    assert remaining(ledger) == before  # line 1 was drawn, then rolled back with line 2
    docs = ledger.load_note("RN2")
    assert docs is not None
    assert docs.status is NoteStatus.ACTIVE


def test_a_balance_is_drawn_to_its_end_in_decimal_parts(tmp_path: Path) -> None:
    # 0.3 less two draws of 0.1 is 0.09999999999999998 in floating point: the third draw of
    # 0.1 must still be covered (by the judge and by the ledger), and leave no negative dust
    led = Ledger(tmp_path / "ledger.db")
    led.upsert_book_lines([BookLineIn("BK9", 1, 0.3)])
    notes = [NoteIn(f"D{i}", f"沪D0000{i}", 0, 2e9, lines=(("BK9", 1, 0.1),)) for i in range(4)]
    led.upsert_notes(notes)
    for i in range(3):
        docs = led.load_note(f"D{i}")
        assert docs is not None
        read = Readings(note=ReleaseNote(f"D{i}", f"沪D0000{i}", (), 0, 2_000_000_000))
        assert judge(POLICY, read, docs, 1e9, {}) == (), i
        assert led.commit_pass(release(f"P{i}", f"D{i}", (("BK9", 1, 0.1),))) == (
            Outcome.RELEASE,
            (),
        )
    assert remaining(led)[("BK9", 1)] == 0.0
    # and the balance, once spent, covers nothing more
    outcome, reasons = led.commit_pass(release("P3", "D3", (("BK9", 1, 0.1),)))
    assert outcome is Outcome.REJECT
    assert [r.code for r in reasons] == [Code.BALANCE_INSUFFICIENT]


def test_balance_can_never_go_negative(ledger: Ledger) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        ledger.conn.execute("UPDATE book_lines SET remaining = -1 WHERE book_id = 'BK1'")


def test_revoked_note_is_refused_at_write_off(ledger: Ledger) -> None:
    assert ledger.revoke_note("RN3")
    outcome, reasons = ledger.commit_pass(release("P1", "RN3", (("BK1", 1, 30.0),)))
    assert (outcome, reasons) == (Outcome.REJECT, (Reason(Code.NOTE_REVOKED, "RN3"),))
    assert not ledger.revoke_note("RN3")


def test_committing_the_same_pass_twice_changes_nothing(ledger: Ledger) -> None:
    first = ledger.commit_pass(release("P1", "RN1", (("BK1", 1, 30.0),)))
    again = ledger.commit_pass(release("P1", "RN1", (("BK1", 1, 30.0),)))
    assert first == again == (Outcome.RELEASE, ())
    assert remaining(ledger)[("BK1", 1)] == 70.0
    assert outbox_keys(ledger) == [("pass", "P1")]


def test_a_held_pass_is_recorded_without_write_off(ledger: Ledger) -> None:
    held = PassRecord(
        "P1", "L1", 1.0, 2.0, Outcome.HOLD, (Reason(Code.OVERWEIGHT, "+900"),), "RN1", None, ()
    )
    assert ledger.commit_pass(held) == (Outcome.HOLD, (Reason(Code.OVERWEIGHT, "+900"),))
    docs = ledger.load_note("RN1")
    assert docs is not None
    assert docs.status is NoteStatus.ACTIVE
    assert remaining(ledger)[("BK1", 1)] == 100.0


def test_override_release_is_audited_and_writes_off(ledger: Ledger) -> None:
    held = PassRecord(
        "P1", "L1", 1.0, 2.0, Outcome.HOLD, (Reason(Code.OVERWEIGHT, "+900"),), "RN1", None, ()
    )
    ledger.commit_pass(held)
    released = release("P1", "RN1", (("BK1", 1, 30.0),))
    asker = "unix:uid 1001 (alice), pid 4242"
    audit = AuditOverride("P1", "release", "officer-7", "scale fault", "OV1", released, asker)
    assert ledger.audit_override(audit)[0] is Outcome.RELEASE
    assert ledger.audit_override(audit)[0] is Outcome.RELEASE  # replayed: no second write-off
    assert remaining(ledger)[("BK1", 1)] == 70.0
    row = ledger.conn.execute("SELECT officer, reason, requested_by FROM overrides").fetchall()
    assert row == [("officer-7", "scale fault", asker)]
    assert outbox_keys(ledger) == [("pass", "P1"), ("override", "OV1")]
    payload = ledger.conn.execute("SELECT payload FROM outbox WHERE key = 'OV1'").fetchone()[0]
    assert json.loads(payload)["requested_by"] == asker
    record = json.loads(ledger.conn.execute("SELECT record FROM passes").fetchone()[0])
    assert record["decision"] == "release"


def test_override_release_of_a_short_note_uses_it_and_draws_only_what_is_covered(
    ledger: Ledger,
) -> None:
    ledger.upsert_notes(
        [
            NoteIn(
                "RN4", "沪A12345", 0, 2e9, lines=(("BK1", 1, 30.0), ("BK1", 2, 10.0)), trip_id="TR1"
            )
        ]
    )
    lines = (("BK1", 1, 30.0), ("BK1", 2, 10.0))  # line 2 holds only 5
    outcome, reasons = ledger.commit_pass(release("P1", "RN4", lines, trip="TR1"))
    assert outcome is Outcome.REJECT
    officer = Reason(Code.OVERRIDE, "officer-7")
    released = replace(release("P1", "RN4", lines, trip="TR1"), reasons=(*reasons, officer))
    audit = AuditOverride("P1", "release", "officer-7", "short line waived", "OV1", released)
    outcome, reasons = ledger.audit_override(audit)
    assert outcome is Outcome.RELEASE
    assert Reason(Code.BALANCE_INSUFFICIENT, "BK1/2: 10 not covered") in reasons
    # the officer's release used the note and closed its trip: the next truck is refused
    docs = ledger.load_note("RN4")
    assert docs is not None
    assert docs.status is NoteStatus.USED
    assert docs.trip is not None
    assert docs.trip.status == "closed"
    again = ledger.commit_pass(release("P2", "RN4", lines))
    assert again == (Outcome.REJECT, (Reason(Code.NOTE_USED, "RN4"),))
    # only the covered line was drawn, and only it is pending, stored and sent
    assert remaining(ledger) == {("BK1", 1): 70.0, ("BK1", 2): 5.0}
    pending = ledger.conn.execute("SELECT * FROM pending_draws").fetchall()
    assert pending == [("P1", "BK1", 1, 30.0)]
    drawn = [{"book": "BK1", "line": 1, "quantity": 30.0}]
    assert ledger.passes()[0]["write_off"] == drawn
    payload = ledger.conn.execute("SELECT payload FROM outbox WHERE key = 'OV1'").fetchone()[0]
    assert json.loads(payload)["write_off"] == drawn
    assert json.loads(payload)["trip_id"] == "TR1"


def test_a_ledger_written_before_overrides_named_who_asked_opens_with_its_audit_kept(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE overrides (override_id TEXT PRIMARY KEY, pass_id TEXT NOT NULL, "
        "action TEXT NOT NULL, officer TEXT NOT NULL, reason TEXT NOT NULL, at REAL NOT NULL)"
    )
    old.execute("INSERT INTO overrides VALUES ('OV0', 'P0', 'hold', 'officer-2', 'seal', 1.0)")
    old.commit()
    old.close()
    led = Ledger(path)
    try:
        assert led.overrides() == [
            {
                "override_id": "OV0",
                "pass_id": "P0",
                "action": "hold",
                "officer": "officer-2",
                "reason": "seal",
                "at": 1.0,
                "requested_by": "",
            }
        ]
        held = PassRecord("P1", "L1", 1.0, 2.0, Outcome.HOLD, (), None, None, ())
        led.commit_pass(held)
        led.audit_override(AuditOverride("P1", "hold", "officer-3", "x", "OV1", held, "me"))
        assert [o["requested_by"] for o in led.overrides()] == ["", "me"]
    finally:
        led.close()


def test_a_note_an_officer_released_before_the_lane_held_it_arrives_used(ledger: Ledger) -> None:
    # the lane has not received RN9 yet; the officer checks the papers and releases the truck
    record = replace(release("P1", "RN9", (("BK1", 1, 5.0),)), outcome=Outcome.HOLD)
    audit = AuditOverride("P1", "release", "officer-7", "papers checked", "OV1", record)
    ledger.commit_pass(record)
    outcome, reasons = ledger.audit_override(
        replace(audit, record=replace(record, outcome=Outcome.RELEASE))
    )
    assert outcome is Outcome.RELEASE
    assert Reason(Code.NOTE_UNKNOWN, "RN9") in reasons
    # then the note arrives from central as active: it is this pass's, not free for another
    ledger.upsert_notes([NoteIn("RN9", "沪A12345", 0, 2e9, lines=(("BK1", 1, 5.0),))])
    docs = ledger.load_note("RN9")
    assert docs is not None
    assert docs.status is NoteStatus.USED
    outcome, reasons = ledger.commit_pass(release("P2", "RN9", (("BK1", 1, 5.0),)))
    assert (outcome, reasons) == (Outcome.REJECT, (Reason(Code.NOTE_USED, "RN9"),))


def test_central_resending_a_used_note_keeps_it_used(ledger: Ledger) -> None:
    ledger.commit_pass(release("P1", "RN1", (("BK1", 1, 30.0),)))
    ledger.upsert_notes([NoteIn("RN1", "沪A12345", 0, 2e9)])
    docs = ledger.load_note("RN1")
    assert docs is not None
    assert docs.status is NoteStatus.USED


def test_outbox_delivery_marks(ledger: Ledger) -> None:
    ledger.commit_pass(release("P1", "RN1", (("BK1", 1, 30.0),)))
    ledger.enqueue("alert", "A1", {"kind": "TAILGATING"})
    pending = ledger.outbox_pending()
    assert [(r.kind, r.key) for r in pending] == [("pass", "P1"), ("alert", "A1")]
    ledger.mark_delivered([pending[0].seq])
    assert ledger.outbox_counts() == (1, 1)


def test_watchlist_is_normalised(ledger: Ledger) -> None:
    ledger.set_watch("plate", "沪a 12345")
    ledger.set_watch("container", "tghu 765432-8")
    assert ledger.watchlist() == (frozenset({"沪A12345"}), frozenset({"TGHU7654328"}))
    ledger.remove_watch("plate", "沪A12345")
    assert ledger.watchlist()[0] == frozenset()
