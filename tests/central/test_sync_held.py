"""A held delta that cannot be applied when its turn comes does not take down what was applied
just before it: that change still reaches the lane core, and the gap is asked for again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gatewayd.commands import Alert
from gatewayd.envelope import seal_central
from gatewayd.events import Event, WatchlistChanged
from gatewayd.ledger import Ledger
from gatewayd.link import CentralLink
from gatewayd.sync import Replica, parse_body
from sim.lane_worker import headless_config
from tests.central.helpers import SIGNER, SITE, mqtt_settings

BLOCKED = "refused by the ledger"  # a watch entry with this reason cannot be inserted


def watch(plate: str, reason: str = "risk") -> dict[str, Any]:
    return {"op": "watch.add", "kind": "plate", "value": plate, "reason": reason}


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = Ledger(tmp_path / "lane.db")
    led.conn.execute(
        "CREATE TRIGGER blocked BEFORE INSERT ON watchlist "
        f"WHEN NEW.reason = '{BLOCKED}' BEGIN SELECT RAISE(ABORT, 'blocked'); END"
    )
    yield led
    led.close()


class _Lane:
    """What CentralLink._after needs of a lane: the events it emits."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def alert(self, alert: Alert) -> None:
        raise AssertionError(f"no alert expected: {alert}")


def test_a_failing_held_delta_leaves_the_one_before_it_applied_and_reported(
    tmp_path: Path, ledger: Ledger
) -> None:
    config = headless_config(tmp_path / "lane.db", SIGNER.public_key, mqtt_settings(1), "lane-01")
    link = CentralLink(config)
    link.replica = Replica(ledger)

    def delta(seq: int, *ops: dict[str, Any]) -> tuple[str, Any]:
        body = {"schema": 1, "type": "delta", "site": SITE, "seq": seq, "issued_at": 0}
        return "ledger", link._check("ledger", seal_central({**body, "ops": list(ops)}, SIGNER.key))

    lane = _Lane()
    for batch in ([delta(2, watch("沪W00002", BLOCKED))], [delta(1, watch("沪W00001"))]):
        for handled in link._ingest(ledger, batch):
            link._after(lane, handled)  # type: ignore[arg-type]

    assert ledger.applied_seq() == 1
    assert lane.events == [WatchlistChanged(frozenset({"沪W00001"}), frozenset())]
    assert link.stats.deltas_applied == 1
    assert link.stats.refused == {"malformed": 1}  # delta 2, counted once
    assert link.replica.gap  # so delta 2 is asked for again
    assert link._gap.is_set()


def test_a_snapshot_followed_by_a_failing_held_delta_is_still_reported(ledger: Ledger) -> None:
    replica = Replica(ledger)

    def body(kind: str, seq: int, *ops: dict[str, Any], **extra: Any) -> Any:
        fields = {"schema": 1, "type": kind, "site": SITE, "seq": seq, "issued_at": 0, **extra}
        return parse_body({**fields, "ops": list(ops)})

    assert replica.receive(body("delta", 6, watch("沪W00006", BLOCKED))).gap  # held
    snapshot = {"lane": "lane-01", "snapshot_id": "s1", "part": 1, "parts": 1}
    report = replica.receive(body("snapshot", 5, watch("沪W00005"), **snapshot))
    assert report.applied == 1
    assert report.watchlist == (frozenset({"沪W00005"}), frozenset())
    assert [r.reason.value for r in report.refused] == ["malformed"]
    assert report.gap
    assert ledger.applied_seq() == 5
