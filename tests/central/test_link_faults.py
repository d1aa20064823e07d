"""A message the lane cannot handle is refused on its own: it is acknowledged (so the broker
does not send it again forever), counted, and the messages after it are still taken."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.release_note import key_id
from gatewayd.daemon import Lane
from gatewayd.envelope import seal_central
from gatewayd.ledger import Ledger
from gatewayd.link import CentralLink, Checked
from gatewayd.sync import Replica
from sim.central_server import SimCentralServer
from sim.lane_worker import headless_config
from sim.mosquitto import Broker
from tests.central.helpers import (
    SIGNER,
    SITE,
    eventually,
    link_of,
    make_lane,
    mqtt_settings,
    new_central,
    running,
    serving,
)


def neighbour_pass(pass_id: str, note_id: str, line: int = 1) -> bytes:
    record = {
        "pass_id": pass_id,
        "lane": "lane-02",
        "decision": "release",
        "note_id": note_id,
        "write_off": [{"book": "BK00", "line": line, "quantity": 1.0}],
    }
    return json.dumps(
        {"schema": 1, "type": "pass", "site": SITE, "lane": "lane-02", "pass": record}
    ).encode()


def _poison(kind: str) -> tuple[str, bytes]:
    kid = key_id(SIGNER.key.public_key())
    return {
        "line-2**70": ("lane-02/pass", neighbour_pass("X1", "N00003", line=2**70)),
        "lone-surrogate": (
            "ledger",
            b'{"v":1,"kid":"%s","body":"\\ud800","sig":"AAAA"}' % kid.encode(),
        ),
        "nested-json": ("ledger", b"[" * 100_000),
        "nested-command": ("lane-01/cmd", b"[" * 100_000),
    }[kind]


@pytest.mark.parametrize("kind", ["line-2**70", "lone-surrogate", "nested-json", "nested-command"])
async def test_after_a_poisoned_message_the_next_delta_is_applied_in_the_same_session(
    tmp_path: Path, broker: Broker, kind: str
) -> None:
    async with session(tmp_path, broker) as (central, lane, link):
        connects = link.stats.connects
        topic, payload = _poison(kind)
        await central.publish_raw(f"gate/{SITE}/{topic}", payload)
        central.change([{"op": "watch.add", "kind": "plate", "value": "沪W00001"}])

        async def watched() -> bool:
            plates, _ = await lane.in_ledger(lane.ledger.watchlist)
            return "沪W00001" in plates

        await eventually(watched, 5.0, "the delta after the poisoned message applied")
        await eventually(lambda: link.stats.refused["malformed"] == 1, 5.0, "poison refused")
        assert link.stats.connects == connects  # one session throughout


@contextlib.asynccontextmanager
async def session(
    tmp_path: Path, broker: Broker
) -> AsyncIterator[tuple[SimCentralServer, Lane, CentralLink]]:
    """Central and a lane on the broker, the lane subscribed (its first status is published
    once it has)."""
    central = new_central(broker.port)
    lane = make_lane(tmp_path, broker.port, central)
    async with serving(central), running(lane):
        await eventually(lambda: "lane-01" in central.status, what="the lane subscribed")
        yield central, lane, link_of(lane)


async def _used(lane: Lane, note_id: str) -> bool:
    docs = await lane.in_ledger(lane.ledger.load_note, note_id)
    return docs is not None and docs.status == "used"


@pytest.mark.parametrize("stage", ["check", "apply"])
async def test_a_neighbours_pass_that_fails_unexpectedly_is_refused_and_the_next_one_taken(
    tmp_path: Path, broker: Broker, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    def failing(real: Any, where: int) -> Any:
        def call(*args: Any) -> Any:
            if b"POISON" in str(args[where]).encode():
                raise RuntimeError("a fault no check foresaw")
            return real(*args)

        return call

    if stage == "check":
        real = CentralLink._check_site_pass
        monkeypatch.setattr(CentralLink, "_check_site_pass", failing(real, 1))
    else:
        monkeypatch.setattr(Ledger, "apply_site_pass", failing(Ledger.apply_site_pass, 1))
    async with session(tmp_path, broker) as (central, lane, link):
        connects = link.stats.connects
        await central.publish_raw(f"gate/{SITE}/lane-02/pass", neighbour_pass("POISON", "N00003"))
        await central.publish_raw(f"gate/{SITE}/lane-02/pass", neighbour_pass("P4", "N00004"))
        await eventually(lambda: _used(lane, "N00004"), 5.0, "the next pass taken")
        taken = await lane.in_ledger(
            lambda: lane.ledger.conn.execute("SELECT pass_id FROM site_passes").fetchall()
        )
        assert taken == [("P4",)]  # the failed one left nothing behind
        assert link.stats.refused["malformed"] == 1
        assert link.stats.connects == connects


async def test_a_command_that_fails_unexpectedly_is_refused_and_the_next_one_carried_out(
    tmp_path: Path, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Ledger.record_command
    failed: list[str] = []

    def record_command(self: Ledger, command_id: str, *args: Any, **kwargs: Any) -> bool:
        if not failed:
            failed.append(command_id)
            raise RuntimeError("a fault no check foresaw")
        return real(self, command_id, *args, **kwargs)

    monkeypatch.setattr(Ledger, "record_command", record_command)
    async with session(tmp_path, broker) as (central, _lane, link):
        connects = link.stats.connects
        await central.send_command("lane-01", "status")
        second = await central.send_command("lane-01", "status")
        await eventually(
            lambda: central.status.get("lane-01", {}).get("request_id") == second,
            5.0,
            "the second command answered",
        )
        assert failed
        assert link.stats.refused["malformed"] == 1
        assert link.stats.connects == connects


def test_a_batch_that_fails_to_commit_is_applied_when_it_comes_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "lane.db"
    link = CentralLink(headless_config(path, SIGNER.public_key, mqtt_settings(1883), "lane-01"))
    ledger = Ledger(path)
    link.replica = Replica(ledger)

    def delta(seq: int, plate: str) -> list[tuple[str, Checked]]:
        ops = [{"op": "watch.add", "kind": "plate", "value": plate}]
        body = {"schema": 1, "type": "delta", "site": SITE, "seq": seq, "issued_at": 0, "ops": ops}
        return [("ledger", link._check("ledger", seal_central(body, SIGNER.key)))]

    batch = ledger.batch

    @contextlib.contextmanager
    def failing_batch() -> Iterator[None]:
        with batch():
            yield
            raise RuntimeError("the commit failed")  # rolls the batch back

    monkeypatch.setattr(ledger, "batch", failing_batch)
    with pytest.raises(RuntimeError):
        link._ingest(ledger, delta(1, "沪W00001"))
    monkeypatch.undo()
    # the broker sends the unacknowledged delta again, then the next one
    again = link._ingest(ledger, delta(1, "沪W00001")) + link._ingest(ledger, delta(2, "沪W00002"))
    assert [h.refused for h in again] == [None, None]
    assert ledger.applied_seq() == 2
    assert ledger.watchlist()[0] == {"沪W00001", "沪W00002"}
    ledger.close()
