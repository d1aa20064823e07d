"""The ledger's side of the link: neighbours' passes, pending draws, command audit, pruning."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gatewayd.commands import AuditOverride, PassRecord, WriteOffLine
from gatewayd.ledger import BookLineIn, Ledger, NoteIn
from gatewayd.reasons import Code, Outcome, Reason
from gatewayd.sync import NoteBody, Replica, install, parse_body
from sim.central_server import SimCentralServer
from sim.lane_worker import site_documents
from tests.central.helpers import SIGNER, SITE, release


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    central = SimCentralServer(SIGNER, SITE, "127.0.0.1", 1)
    central.change(site_documents(10))
    led = Ledger(tmp_path / "lane.db", synchronous="OFF")
    install(led, central.seq, central.snapshot_ops())
    return led


def remaining(led: Ledger, book: str) -> float:
    row = led.conn.execute("SELECT remaining FROM book_lines WHERE book_id = ?", (book,))
    return float(row.fetchone()[0])


def pending(led: Ledger) -> list[tuple[str, str, int, float]]:
    return led.conn.execute("SELECT * FROM pending_draws ORDER BY pass_id").fetchall()


def test_a_neighbours_release_uses_the_note_here_and_draws_its_line_once(ledger: Ledger) -> None:
    record = release("B-1", "N00003", lane_id="lane-02", qty=4.0).as_dict()
    assert ledger.apply_site_pass("pass:B-1", record) == "used"
    assert ledger.apply_site_pass("pass:B-1", record) == "seen"
    assert ledger.load_note("N00003").status == "used"  # type: ignore[union-attr]
    assert remaining(ledger, "BK03") == 100_000 - 4
    assert pending(ledger) == [("B-1", "BK03", 1, 4.0)]
    # and this lane now refuses the note
    outcome, reasons = ledger.commit_pass(release("A-1", "N00003"))
    assert outcome is Outcome.REJECT
    assert Reason(Code.NOTE_USED, "N00003") in reasons


def test_a_neighbours_release_of_a_note_this_lane_released_is_a_double_write_off(
    ledger: Ledger,
) -> None:
    assert ledger.commit_pass(release("A-1", "N00004"))[0] is Outcome.RELEASE
    record = release("B-1", "N00004", lane_id="lane-02").as_dict()
    assert ledger.apply_site_pass("pass:B-1", record) == "double"
    assert remaining(ledger, "BK04") == 100_000 - 1  # drawn once, by this lane


def test_holds_from_neighbours_change_no_document(ledger: Ledger) -> None:
    before = ledger.documents()
    record = replace(release("B-2", "N00005"), outcome=Outcome.HOLD, write_off=()).as_dict()
    assert ledger.apply_site_pass("pass:B-2", record) == "recorded"
    assert ledger.documents() == before


def test_own_releases_are_pending_until_central_confirms_them(ledger: Ledger) -> None:
    ledger.commit_pass(release("A-1", "N00001", qty=2.5))
    held = replace(release("A-2", "N00002"), outcome=Outcome.HOLD, write_off=())
    ledger.commit_pass(held)
    assert pending(ledger) == [("A-1", "BK01", 1, 2.5)]
    # an officer releases the held pass: its draws are pending too
    record = replace(held, outcome=Outcome.RELEASE, write_off=release("A-2", "N00002").write_off)
    ledger.audit_override(AuditOverride("A-2", "release", "officer 7", "checked", "O-1", record))
    assert [p[0] for p in pending(ledger)] == ["A-1", "A-2"]
    ledger.confirm_passes(["A-1", "A-2"])
    assert pending(ledger) == []


def test_a_confirmed_pass_seen_late_from_a_neighbour_is_not_drawn_again(ledger: Ledger) -> None:
    ledger.confirm_passes(["B-9"])
    record = release("B-9", "N00006", lane_id="lane-02").as_dict()
    assert ledger.apply_site_pass("pass:B-9", record) == "used"
    assert remaining(ledger, "BK06") == 100_000
    assert pending(ledger) == []


def lane_lacking(tmp_path: Path, note_id: str) -> tuple[Ledger, dict[str, Any], int]:
    """A lane ledger holding central's documents but one note; that note's op, and the seq."""
    central = SimCentralServer(SIGNER, SITE, "127.0.0.1", 1)
    central.change(site_documents(10))
    ops = central.snapshot_ops()
    note_op = next(o for o in ops if o["op"] == "note.upsert" and o["note"]["note_id"] == note_id)
    led = Ledger(tmp_path / "behind.db", synchronous="OFF")
    install(led, central.seq, [o for o in ops if o is not note_op])
    return led, note_op, central.seq


def test_a_neighbours_release_of_a_note_not_here_yet_uses_it_when_a_delta_brings_it(
    tmp_path: Path,
) -> None:
    led, note_op, seq = lane_lacking(tmp_path, "N00003")
    record = release("B-1", "N00003", lane_id="lane-02", qty=4.0).as_dict()
    assert led.apply_site_pass("pass:B-1", record) == "used"
    # the delta carrying the note, issued before central counted B-1, arrives afterwards
    delta = {"schema": 1, "type": "delta", "site": SITE, "seq": seq + 1, "issued_at": 0.0}
    Replica(led).receive(parse_body({**delta, "ops": [note_op]}))  # type: ignore[arg-type]
    assert led.load_note("N00003").status == "used"  # type: ignore[union-attr]
    outcome, reasons = led.commit_pass(release("A-1", "N00003", qty=4.0))
    assert (outcome, reasons) == (Outcome.REJECT, (Reason(Code.NOTE_USED, "N00003"),))
    # the neighbour's draw was made once and stays pending until central confirms it
    assert remaining(led, "BK03") == 100_000 - 4
    assert pending(led) == [("B-1", "BK03", 1, 4.0)]


def test_a_snapshot_bringing_a_note_a_neighbour_released_keeps_it_used(tmp_path: Path) -> None:
    led, _, seq = lane_lacking(tmp_path, "N00005")
    record = release("B-5", "N00005", lane_id="lane-02", qty=2.0).as_dict()
    assert led.apply_site_pass("pass:B-5", record) == "used"
    central = SimCentralServer(SIGNER, SITE, "127.0.0.1", 1)
    central.change(site_documents(10))
    install(led, seq + 1, central.snapshot_ops())  # central has not counted B-5 yet
    assert led.load_note("N00005").status == "used"  # type: ignore[union-attr]
    outcome, reasons = led.commit_pass(release("A-5", "N00005", qty=2.0))
    assert (outcome, reasons) == (Outcome.REJECT, (Reason(Code.NOTE_USED, "N00005"),))
    assert remaining(led, "BK05") == 100_000 - 2
    assert pending(led) == [("B-5", "BK05", 1, 2.0)]


@pytest.mark.parametrize("status", ["revoked", "used"])
def test_central_s_own_status_stands_for_a_note_a_neighbour_released(
    tmp_path: Path, status: str
) -> None:
    led, note_op, _ = lane_lacking(tmp_path, "N00006")
    record = release("B-6", "N00006", lane_id="lane-02").as_dict()
    assert led.apply_site_pass("pass:B-6", record) == "used"
    # central's later word on the note (it revoked it, or counted B-6) is kept as it is
    note = NoteBody.model_validate({**note_op["note"], "status": status})
    led.upsert_notes([note.to_note_in()])
    assert led.load_note("N00006").status == status  # type: ignore[union-attr]
    code = Code.NOTE_REVOKED if status == "revoked" else Code.NOTE_USED
    assert led.commit_pass(release("A-6", "N00006"))[1] == (Reason(code, "N00006"),)


def test_a_command_is_audited_once(ledger: Ledger) -> None:
    body = {"command_id": "C1", "action": "status"}
    assert ledger.record_command("C1", "status", 10.0, body, "accepted", now=11.0)
    assert not ledger.record_command("C1", "status", 10.0, body, "accepted", now=12.0)
    assert ledger.commands() == [
        {
            "command_id": "C1",
            "action": "status",
            "issued_at": 10.0,
            "received_at": 11.0,
            "body": body,
            "result": "accepted",
        }
    ]


def test_pruning_keeps_every_undelivered_row_and_the_newest_delivered(ledger: Ledger) -> None:
    for i in range(10):
        ledger.enqueue("alert", f"k{i}", {"n": i})
    rows = ledger.outbox_pending(100)
    ledger.mark_delivered([r.seq for r in rows[:3]], now=100.0)
    ledger.mark_delivered([r.seq for r in rows[3:6]], now=200.0)
    assert ledger.prune_outbox(before=150.0, keep=100) == 3  # older than the retention
    assert ledger.outbox_counts() == (4, 3)
    assert ledger.prune_outbox(before=0.0, keep=1) == 2  # beyond the newest kept
    assert ledger.outbox_counts() == (4, 1)
    assert [r.key for r in ledger.outbox_pending(100)] == ["k6", "k7", "k8", "k9"]


def test_status_requests_are_forgotten_after_the_retention_and_overrides_kept(
    ledger: Ledger,
) -> None:
    for i, action in enumerate(["status", "override", "status"]):
        ledger.record_command(f"C{i}", action, 10.0 * i, {}, "accepted", now=100.0 * i)
    assert ledger.prune_commands(before=150.0) == 1  # C0; C1 is an override
    assert [c["command_id"] for c in ledger.commands()] == ["C1", "C2"]
    # a status request forgotten can no longer be told from a new one: only its age refuses it
    assert ledger.record_command("C0", "status", 0.0, {}, "accepted", now=300.0)


def test_a_snapshot_after_missed_confirmations_leaves_the_balances_as_central_counts_them(
    tmp_path: Path,
) -> None:
    central = SimCentralServer(SIGNER, SITE, "127.0.0.1", 1)
    central.change(site_documents(10))
    led = Ledger(tmp_path / "lane.db", synchronous="OFF")
    install(led, central.seq, central.snapshot_ops())
    record = release("P1", "N00001", qty=5.0)
    assert led.commit_pass(record)[0] is Outcome.RELEASE
    assert remaining(led, "BK01") == 100_000 - 5
    # central counts it (the delta with its confirmation), the lane misses that delta and is
    # answered with a snapshot whose balance already counts the release
    central._count_release(record.as_dict())
    snapshot = {"schema": 1, "type": "snapshot", "site": SITE, "lane": "lane-01"}
    part = {"snapshot_id": "s1", "part": 1, "parts": 1, "issued_at": 0.0}
    parsed = parse_body({**snapshot, **part, "seq": central.seq, "ops": central.snapshot_ops()})
    Replica(led).receive(parsed)  # type: ignore[arg-type]
    assert remaining(led, "BK01") == 100_000 - 5  # drawn once, not twice
    assert pending(led) == []
    # and a later balance from central is taken as it is
    central.change([{"op": "book_line.set", **central.book_lines[("BK01", 1)]}])
    delta = {"schema": 1, "type": "delta", "site": SITE, "seq": central.seq, "issued_at": 0.0}
    ops = [{"op": "book_line.set", **central.book_lines[("BK01", 1)]}]
    Replica(led).receive(parse_body({**delta, "ops": ops}))  # type: ignore[arg-type]
    assert remaining(led, "BK01") == 100_000 - 5


def _delta(seq: int, ops: list[dict[str, Any]]) -> Any:
    return parse_body(
        {"schema": 1, "type": "delta", "site": SITE, "seq": seq, "issued_at": 0.0, "ops": ops}
    )


def test_a_confirmation_after_its_balance_in_one_delta_takes_the_draw_off_once(
    ledger: Ledger,
) -> None:
    before = remaining(ledger, "BK01")
    assert ledger.commit_pass(release("A-1", "N00001", qty=30.0))[0] is Outcome.RELEASE
    # central counts A-1: the line's new balance, then the confirmation, in one delta
    counted = {"op": "book_line.set", "book_id": "BK01", "line_no": 1, "remaining": before - 30}
    seq = ledger.applied_seq() + 1
    Replica(ledger).receive(_delta(seq, [counted, {"op": "pass.confirm", "pass_id": "A-1"}]))
    assert remaining(ledger, "BK01") == before - 30
    assert pending(ledger) == []


def test_a_snapshot_confirming_a_neighbours_release_clears_its_pending_draw(
    ledger: Ledger,
) -> None:
    record = release("B-1", "N00003", lane_id="lane-02", qty=4.0).as_dict()
    ledger.apply_site_pass("pass:B-1", record, now=1000.0)
    ledger.prune_outbox(before=1000.0 + 8 * 86400, keep=100_000)
    assert pending(ledger) == [("B-1", "BK03", 1, 4.0)]  # kept until central confirms it
    # the lane missed the delta confirming it; the snapshot that catches it up confirms every
    # release central counted, the neighbours' too (docs/mqtt.md)
    counted = {"op": "book_line.set", "book_id": "BK03", "line_no": 1, "remaining": 99_996.0}
    snapshot = {"schema": 1, "type": "snapshot", "site": SITE, "lane": "lane-01"}
    part = {"snapshot_id": "s9", "part": 1, "parts": 1, "issued_at": 0.0}
    ops = [counted, {"op": "pass.confirm", "pass_id": "B-1"}]
    parsed = parse_body({**snapshot, **part, "seq": ledger.applied_seq() + 1, "ops": ops})
    Replica(ledger).receive(parsed)  # type: ignore[arg-type]
    assert pending(ledger) == []
    assert remaining(ledger, "BK03") == 99_996.0


def test_a_neighbours_pass_sent_again_after_pruning_is_not_drawn_twice(ledger: Ledger) -> None:
    # of a note this lane does not hold (yet): nothing here is marked used to stop a second draw
    record = {**release("B-1", "N00003", lane_id="lane-02", qty=4.0).as_dict(), "note_id": "N9"}
    ledger.apply_site_pass("pass:B-1", record, now=1000.0)
    ledger.conn.execute("DELETE FROM site_passes")  # forgotten (pruned), its draw not yet
    ledger.apply_site_pass("pass:B-1", record, now=2000.0)
    assert remaining(ledger, "BK03") == 100_000 - 4


def test_central_may_reopen_a_trip_long_after_it_confirmed_the_pass_that_closed_it(
    tmp_path: Path,
) -> None:
    led = Ledger(tmp_path / "trip.db", synchronous="OFF")
    led.upsert_book_lines([BookLineIn("BK1", 1, 100.0)])
    led.upsert_trips([("TR1", "沪A12345", "open")])
    led.upsert_notes([NoteIn("RN1", "沪A12345", 0, 2e9, lines=(("BK1", 1, 1.0),), trip_id="TR1")])
    closing = PassRecord(
        "P1", "L1", 1.0, 2.0, Outcome.RELEASE, (), "RN1", "沪A12345", (),
        write_off=(WriteOffLine("BK1", 1, 1.0),), trip_id="TR1",
    )  # fmt: skip
    assert led.commit_pass(closing)[0] is Outcome.RELEASE
    led.upsert_trip_from_central("TR1", "沪A12345", "open")  # not counted yet: stays closed
    assert led.conn.execute("SELECT status FROM trips").fetchone()[0] == "closed"
    led.confirm_passes(["P1"], now=1000.0)
    led.prune_outbox(before=1000.0 + 8 * 86400, keep=100_000)  # a week later
    led.upsert_trip_from_central("TR1", "沪A12345", "open")  # central reopens it
    assert led.conn.execute("SELECT status FROM trips").fetchone()[0] == "open"


def test_asked_again_the_outbox_sends_what_it_still_keeps_and_says_what_it_does_not(
    ledger: Ledger,
) -> None:
    for i in range(3):
        ledger.commit_pass(release(f"A-{i}", f"N0000{i}"))
    seqs = [row.seq for row in ledger.outbox_pending()]
    ledger.mark_delivered(seqs, now=1000.0)
    assert ledger.prune_outbox(before=0.0, keep=2) == 1  # the oldest delivered one is gone
    assert ledger.requeue_outbox(seqs[0]) == (2, seqs[1])
    assert [row.key for row in ledger.outbox_pending()] == ["A-1", "A-2"]
    assert ledger.requeue_outbox(seqs[-1] + 1) == (0, seqs[1])  # nothing after the last
