"""Writes passes off as fast as it can until killed (used by test_crash.py).

python -m tests.ledger.crash_worker LEDGER SEED
"""

from __future__ import annotations

import json
import random
import sys
import uuid

from gatewayd.commands import PassRecord, WriteOffLine
from gatewayd.ledger import Ledger
from gatewayd.reasons import Outcome


def main() -> None:
    path, seed = sys.argv[1], int(sys.argv[2])
    rng = random.Random(seed)
    ledger = Ledger(path)
    notes = [
        (row[0], row[1])
        for row in ledger.conn.execute("SELECT note_id, lines FROM notes ORDER BY note_id")
    ]
    print("ready", flush=True)
    while True:
        note_id, lines_json = rng.choice(notes)  # often one already used: must be refused
        lines = tuple(WriteOffLine(b, n, q) for b, n, q in json.loads(lines_json))
        record = PassRecord(
            pass_id=f"P-{uuid.uuid4().hex}",
            lane_id="L1",
            opened_at=0.0,
            decided_at=0.0,
            outcome=Outcome.RELEASE,
            reasons=(),
            note_id=note_id,
            plate="沪A00000",
            containers=(),
            write_off=lines,
        )
        ledger.commit_pass(record)


if __name__ == "__main__":
    main()
