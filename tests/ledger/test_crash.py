"""A process writing passes off is killed with SIGKILL at random moments, many times; after each
restart the ledger is consistent: no note used twice, balances equal the initial ones minus the
passes recorded, every pass has exactly one outbox row."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from gatewayd.ledger import BookLineIn, Ledger, NoteIn
from tests.commands import ROOT

KILLS = 50
INITIAL = {("BK1", 1): 5_000.0, ("BK1", 2): 800.0, ("BK2", 1): 3_000.0}


def _seed(path: Path) -> None:
    rng = random.Random(7)
    led = Ledger(path)
    led.upsert_book_lines(BookLineIn(b, n, q) for (b, n), q in INITIAL.items())
    notes = []
    for i in range(600):
        lines = [(b, n, float(rng.randint(1, 40))) for (b, n) in rng.sample(sorted(INITIAL), 2)]
        notes.append(NoteIn(f"RN{i:04d}", f"沪A{i:05d}", 0, 2e9, lines=tuple(lines)))
    led.upsert_notes(notes)
    led.close()


def _check(path: Path) -> int:
    """Assert the invariants on a ledger left by a killed writer; return the pass count."""
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        passes = conn.execute("SELECT pass_id, outcome, note_id, record FROM passes").fetchall()
        released = [p for p in passes if p[1] == "release"]
        per_note = Counter(p[2] for p in released)
        assert all(n == 1 for n in per_note.values()), "a note was written off twice"
        used = dict(conn.execute("SELECT note_id, used_by FROM notes WHERE status = 'used'"))
        assert used == {p[2]: p[0] for p in released}, "note status disagrees with passes"
        drawn: Counter[tuple[str, int]] = Counter()
        for p in released:
            for w in json.loads(p[3])["write_off"]:
                drawn[(w["book"], w["line"])] += w["quantity"]
        now = {
            (b, n): r
            for b, n, r in conn.execute("SELECT book_id, line_no, remaining FROM book_lines")
        }
        for key, initial in INITIAL.items():
            assert now[key] == pytest.approx(initial - drawn[key]), key
            assert now[key] >= 0
        outbox = Counter(k for (k,) in conn.execute("SELECT key FROM outbox WHERE kind = 'pass'"))
        assert set(outbox) == {p[0] for p in passes}, "pass without outbox row or the reverse"
        assert all(n == 1 for n in outbox.values()), "a pass has two outbox rows"
        return len(passes)
    finally:
        conn.close()


@pytest.mark.slow
def test_ledger_survives_sigkill_during_write_offs(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    _seed(db)
    rng = random.Random(2024)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    counts = []
    for kill in range(KILLS):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.ledger.crash_worker", str(db), str(kill)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.005, 0.15))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        counts.append(_check(db))
    assert counts[-1] > counts[0] > 0, "the writer made no progress between kills"
    # some notes were refused as used, so the test exercised the guard as well
    conn = sqlite3.connect(db)
    rejects = conn.execute("SELECT COUNT(*) FROM passes WHERE outcome = 'reject'").fetchone()[0]
    conn.close()
    assert rejects > 0
