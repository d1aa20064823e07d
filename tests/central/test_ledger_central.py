"""The ledger's side of the link: neighbours' passes, pending draws, command audit, pruning."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from gatewayd.commands import AuditOverride
from gatewayd.ledger import Ledger
from gatewayd.reasons import Code, Outcome, Reason
from gatewayd.sync import install
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
