"""Ledger sync from central, without a broker: the same signed messages the link receives, fed
to the replica in any order, end in the same ledger as the ordered stream."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.release_note import public_keys
from gatewayd.envelope import Refusal, Refused, open_central, seal_central
from gatewayd.ledger import Ledger
from gatewayd.reasons import Code, Outcome
from gatewayd.sync import Replica, install, parse_body
from sim.central_server import SimCentralServer
from tests.central.helpers import SIGNER, SITE, release

KEYS = public_keys([SIGNER.public_key])
PLATES = [f"沪B{i:05d}" for i in range(8)]


def random_ops(rng: random.Random) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    for _ in range(rng.randint(1, 4)):
        r = rng.random()
        if r < 0.35:
            note = {
                "note_id": f"N{rng.randrange(15)}",
                "plate": rng.choice(PLATES),
                "valid_from": 0,
                "valid_until": rng.choice([1e9, 4e9]),
                "gross_kg": rng.choice([None, 20_000.0, 31_500.5]),
                "lines": [[f"BK{rng.randrange(5)}", 1, float(rng.randint(1, 9))]],
                "trip_id": rng.choice([None, f"T{rng.randrange(4)}"]),
            }
            ops.append({"op": "note.upsert", "note": note})
        elif r < 0.45:
            ops.append({"op": "note.revoke", "note_id": f"N{rng.randrange(15)}"})
        elif r < 0.65:
            remaining = float(rng.randint(0, 500))
            ops.append(
                {
                    "op": "book_line.set",
                    "book_id": f"BK{rng.randrange(5)}",
                    "line_no": 1,
                    "remaining": remaining,
                    "item": "steel",
                }
            )
        elif r < 0.75:
            status = rng.choice(["open", "closed"])
            ops.append(
                {
                    "op": "trip.upsert",
                    "trip_id": f"T{rng.randrange(4)}",
                    "plate": rng.choice(PLATES),
                    "status": status,
                }
            )
        elif r < 0.85:
            ops.append(
                {"op": "watch.add", "kind": "plate", "value": rng.choice(PLATES), "reason": "risk"}
            )
        elif r < 0.95:
            ops.append({"op": "watch.remove", "kind": "plate", "value": rng.choice(PLATES)})
        else:
            ops.append({"op": "pass.confirm", "pass_id": f"P{rng.randrange(9)}"})
    return ops


def central_stream(seed: int, deltas: int) -> SimCentralServer:
    central = SimCentralServer(SIGNER, SITE, "127.0.0.1", 1)
    rng = random.Random(seed)
    for _ in range(deltas):
        central.change(random_ops(rng))
    return central


class Fed:
    """A replica on its own ledger, fed signed payloads as the link would."""

    def __init__(self, path: Path, **kwargs: Any) -> None:
        self.ledger = Ledger(path, synchronous="OFF")
        self.replica = Replica(self.ledger, **kwargs)
        self.refused: list[Refusal] = []

    def feed(self, payload: bytes) -> None:
        try:
            body = open_central(payload, KEYS, site=SITE)
            parsed = parse_body(body)
            assert parsed.type != "command"
            self.replica.receive(parsed)
        except Refused as refusal:
            self.refused.append(refusal.reason)

    def resync(self, central: SimCentralServer) -> None:
        """What central answers to a resync request: every delta after the applied one."""
        for seq in range(self.replica.applied + 1, central.seq + 1):
            self.feed(central.deltas[seq])


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def ordered_documents(central: SimCentralServer, path: Path) -> dict[str, Any]:
    fed = Fed(path)
    for seq in range(1, central.seq + 1):
        fed.feed(central.deltas[seq])
    assert fed.refused == []
    assert not fed.replica.gap
    return fed.ledger.documents()


CENTRAL = central_stream(seed=11, deltas=60)


@pytest.fixture(scope="module")
def ordered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return ordered_documents(CENTRAL, tmp_path_factory.mktemp("ordered") / "lane.db")


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rng=st.randoms(use_true_random=False))
def test_shuffled_duplicated_and_gapped_deltas_end_in_the_ordered_ledger(
    ordered: dict[str, Any], rng: random.Random
) -> None:
    want = ordered
    payloads = [CENTRAL.deltas[s] for s in range(1, CENTRAL.seq + 1)]
    stream = [p for p in payloads if rng.random() > 0.15]  # gaps
    stream += rng.sample(payloads, 20)  # duplicates
    rng.shuffle(stream)
    with tempfile.TemporaryDirectory() as tmp:
        fed = Fed(Path(tmp) / "lane.db", max_pending=rng.choice([5, 100]))
        _feed_all(fed, stream, rng)
        assert not fed.replica.gap
        assert set(fed.refused) <= {Refusal.STALE}
        assert fed.ledger.documents() == want
        fed.ledger.close()
    assert want["applied_seq"] == CENTRAL.seq


def _feed_all(fed: Fed, stream: list[bytes], rng: random.Random) -> None:
    for payload in stream:
        fed.feed(payload)
        if fed.replica.gap and rng.random() < 0.05:
            fed.resync(CENTRAL)  # central answered a resync mid-stream
    # the retained head the lane gets on every connect tells it how far central is
    head = {"schema": 1, "type": "head", "site": SITE, "seq": CENTRAL.seq, "issued_at": 0.0}
    fed.feed(seal_central(head, SIGNER.key))
    if fed.replica.gap:
        fed.resync(CENTRAL)


def test_a_lane_that_missed_everything_catches_up_from_a_snapshot(workdir: Path) -> None:
    want = ordered_documents(CENTRAL, workdir / "ordered.db")
    fed = Fed(workdir / "late.db")
    fed.feed(CENTRAL.deltas[CENTRAL.seq])  # only the newest: a gap back to the start
    assert fed.replica.gap
    assert fed.replica.applied == 0
    ops = CENTRAL.snapshot_ops()
    parts = [ops[i : i + 7] for i in range(0, len(ops), 7)]
    for n, chunk in reversed(list(enumerate(parts, start=1))):  # parts in any order
        body = {
            "schema": 1,
            "type": "snapshot",
            "site": SITE,
            "lane": "lane-01",
            "seq": CENTRAL.seq - 1,
            "snapshot_id": "s1",
            "part": n,
            "parts": len(parts),
            "issued_at": 0.0,
            "ops": chunk,
        }
        # the snapshot is current to seq - 1; the newest delta, held, follows it
        fed.feed(seal_central(body, SIGNER.key))
    assert not fed.replica.gap
    assert fed.ledger.documents() == want


def test_a_replayed_old_delta_is_refused_and_changes_nothing(workdir: Path) -> None:
    fed = Fed(workdir / "lane.db")
    for seq in range(1, CENTRAL.seq + 1):
        fed.feed(CENTRAL.deltas[seq])
    before = fed.ledger.documents()
    for seq in (1, 17, CENTRAL.seq):
        fed.feed(CENTRAL.deltas[seq])
    assert fed.refused == [Refusal.STALE] * 3
    assert fed.ledger.documents() == before


def test_a_signed_delta_with_one_bad_op_is_refused_whole(workdir: Path) -> None:
    fed = Fed(workdir / "lane.db")
    fed.feed(CENTRAL.deltas[1])
    before = fed.ledger.documents()
    good = {"op": "watch.add", "kind": "plate", "value": "沪C00001", "reason": ""}
    bad = {"op": "book_line.set", "book_id": "BK1", "line_no": 1, "remaining": -5}
    body = {
        "schema": 1,
        "type": "delta",
        "site": SITE,
        "seq": 2,
        "issued_at": 0,
        "ops": [good, bad],
    }
    fed.feed(seal_central(body, SIGNER.key))
    assert fed.refused == [Refusal.MALFORMED]
    assert fed.ledger.documents() == before
    assert fed.replica.applied == 1


def test_early_deltas_held_are_bounded_and_the_rest_comes_by_resync(workdir: Path) -> None:
    fed = Fed(workdir / "lane.db", max_pending=3)
    for seq in range(5, 15):
        fed.feed(CENTRAL.deltas[seq])
    assert len(fed.replica.pending) == 3
    assert fed.replica.overflow == 7
    fed.resync(CENTRAL)
    assert fed.replica.applied == CENTRAL.seq
    assert not fed.replica.gap


def _lane_ledger(path: Path) -> tuple[Ledger, SimCentralServer]:
    central = SimCentralServer(SIGNER, SITE, "127.0.0.1", 1)
    note = {"note_id": "N00001", "plate": "沪A00001", "valid_from": 0, "valid_until": 4e9,
            "lines": [["BK01", 1, 5.0]], "trip_id": "T1"}  # fmt: skip
    central.change(
        [
            {"op": "note.upsert", "note": note},
            {"op": "book_line.set", "book_id": "BK01", "line_no": 1, "remaining": 100.0},
            {"op": "trip.upsert", "trip_id": "T1", "plate": "沪A00001", "status": "open"},
        ]
    )
    ledger = Ledger(path, synchronous="OFF")
    install(ledger, central.seq, central.snapshot_ops())
    return ledger, central


def _remaining(ledger: Ledger) -> float:
    return float(ledger.conn.execute("SELECT remaining FROM book_lines").fetchone()[0])


def test_a_balance_from_central_does_not_undo_a_draw_it_has_not_counted(workdir: Path) -> None:
    ledger, central = _lane_ledger(workdir / "lane.db")
    replica = Replica(ledger)
    record = release("P1", "N00001", qty=5.0)
    record = type(record)(**{**record.__dict__, "trip_id": "T1"})
    assert ledger.commit_pass(record)[0] is Outcome.RELEASE
    assert _remaining(ledger) == 95.0

    def deliver(ops: list[dict[str, Any]]) -> None:
        central.change(ops)
        replica.receive(parse_body(open_central(central.deltas[central.seq], KEYS)))  # type: ignore[arg-type]

    # central tops the line up to 200 before it has seen P1: the lane keeps P1's draw
    deliver([{"op": "book_line.set", "book_id": "BK01", "line_no": 1, "remaining": 200.0}])
    assert _remaining(ledger) == 195.0
    deliver([{"op": "trip.upsert", "trip_id": "T1", "plate": "沪A00001", "status": "open"}])
    assert ledger.load_note("N00001").trip.status == "closed"  # type: ignore[union-attr]
    # central counts P1 and confirms it in the same delta
    deliver(
        [
            {"op": "pass.confirm", "pass_id": "P1"},
            {"op": "book_line.set", "book_id": "BK01", "line_no": 1, "remaining": 195.0},
            {"op": "trip.upsert", "trip_id": "T1", "plate": "沪A00001", "status": "closed"},
        ]
    )
    assert _remaining(ledger) == 195.0
    assert ledger.conn.execute("SELECT COUNT(*) FROM pending_draws").fetchone()[0] == 0
    deliver([{"op": "book_line.set", "book_id": "BK01", "line_no": 1, "remaining": 50.0}])
    assert _remaining(ledger) == 50.0


def test_a_revocation_applied_after_the_note_was_loaded_still_refuses_the_release(
    workdir: Path,
) -> None:
    ledger, central = _lane_ledger(workdir / "lane.db")
    replica = Replica(ledger)
    docs = ledger.load_note("N00001")  # the lane loaded the note while the truck stood there
    assert docs is not None
    assert docs.status == "active"
    central.change([{"op": "note.revoke", "note_id": "N00001"}])
    replica.receive(parse_body(open_central(central.deltas[central.seq], KEYS)))  # type: ignore[arg-type]
    outcome, reasons = ledger.commit_pass(release("P1", "N00001", qty=5.0))
    assert outcome is Outcome.REJECT
    assert Code.NOTE_REVOKED in {r.code for r in reasons}
    assert _remaining(ledger) == 100.0


def test_watch_list_changes_are_reported_for_the_core(workdir: Path) -> None:
    ledger, central = _lane_ledger(workdir / "lane.db")
    replica = Replica(ledger)
    central.change([{"op": "watch.add", "kind": "plate", "value": "沪 a-00009", "reason": "x"}])
    report = replica.receive(parse_body(open_central(central.deltas[central.seq], KEYS)))  # type: ignore[arg-type]
    assert report.watchlist == (frozenset({"沪A00009"}), frozenset())
    central.change([{"op": "book_line.set", "book_id": "BK01", "line_no": 1, "remaining": 1.0}])
    report = replica.receive(parse_body(open_central(central.deltas[central.seq], KEYS)))  # type: ignore[arg-type]
    assert report.watchlist is None
    assert report.applied == 1
