"""The link against a real Mosquitto on loopback: delivery, outages, persistent session, resync,
refusals, neighbours, last will."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gatewayd.envelope import Refusal, Refused, seal_central
from gatewayd.link import CentralLink
from gatewayd.reasons import Code, Outcome
from sim.central_server import SimCentralServer
from sim.lane_worker import headless_config
from sim.mosquitto import Broker
from tests.central.helpers import (
    SIGNER,
    SITE,
    eventually,
    ledger_state,
    link_of,
    make_lane,
    mqtt_settings,
    new_central,
    release,
    running,
    seeded_ledger,
    serving,
)
from tests.commands import ROOT


async def test_passes_reach_central_in_order_once_and_are_marked_delivered(
    tmp_path: Path, broker: Broker
) -> None:
    central = new_central(broker.port)
    lane = make_lane(tmp_path, broker.port, central)
    async with serving(central), running(lane):
        await eventually(link_of(lane).connected.is_set, what="link up")
        for i in range(40):
            await lane.commit_pass(release(f"P{i:03d}", f"N{i:05d}"))
        ids = {f"P{i:03d}" for i in range(40)}
        await eventually(lambda: ids <= central.passes.keys(), what="all passes at central")
        await eventually(
            lambda: lane.in_ledger(lambda: lane.ledger.outbox_pending(10) == []),
            what="outbox drained",
        )
        assert central.duplicates_discarded == 0
        assert central.outbox_gaps("lane-01") == []
        seqs = sorted(central.outbox_seqs["lane-01"])
        passes_in_order = [p for p in central.passes if p.startswith("P")]
        assert passes_in_order == sorted(passes_in_order)  # arrival order = commit order
        assert seqs == list(range(seqs[0], seqs[-1] + 1))
        # central counted each release and the lane applied its confirmations
        await eventually(lambda: link_of(lane).replica.applied == central.seq)  # type: ignore[union-attr]
        assert (
            await lane.in_ledger(
                lambda: lane.ledger.conn.execute("SELECT COUNT(*) FROM pending_draws").fetchone()[0]
            )
            == 0
        )
        status = central.status["lane-01"]
        assert status["state"] == "online"
        assert status["schema"] == 1


async def test_passes_written_with_the_broker_down_are_delivered_when_it_returns(
    tmp_path: Path, broker: Broker
) -> None:
    central = new_central(broker.port)
    lane = make_lane(tmp_path, broker.port, central)
    async with serving(central, connected=False), running(lane):
        link = link_of(lane)
        await eventually(link.connected.is_set, what="link up")
        await asyncio.to_thread(broker.stop)
        await eventually(lambda: link.health.state == "down", what="link noticed")
        for i in range(30):  # the lane keeps deciding and writing off
            outcome, _ = await lane.commit_pass(release(f"P{i:03d}", f"N{i:05d}"))
            assert outcome is Outcome.RELEASE
        assert (await lane.in_ledger(lane.ledger.outbox_counts))[0] >= 30
        await asyncio.sleep(1.0)  # several failed reconnects
        await asyncio.to_thread(broker.start)
        ids = {f"P{i:03d}" for i in range(30)}
        await eventually(lambda: ids <= central.passes.keys(), 10, "delivered after the outage")
        assert link.stats.connects >= 2


async def test_deltas_published_while_the_lane_is_away_wait_in_its_persistent_session(
    tmp_path: Path, broker: Broker
) -> None:
    central = new_central(broker.port)
    async with serving(central):
        lane = make_lane(tmp_path, broker.port, central)
        async with running(lane):  # the first connection creates the session
            await eventually(link_of(lane).connected.is_set)
        for i in range(25):  # the lane is down; the broker queues these for it
            central.change([{"op": "watch.add", "kind": "plate", "value": f"沪W{i:05d}"}])
        await eventually(lambda: central.published == central.seq, what="central published")
        lane = make_lane(tmp_path, broker.port, central)
        async with running(lane):
            link = link_of(lane)
            await eventually(
                lambda: link.replica is not None and link.replica.applied == central.seq
            )
            assert link.stats.resync_requests == 0  # they came from the session, not a resync
            plates, _ = await lane.in_ledger(lane.ledger.watchlist)
            assert len(plates) == 25
            await eventually(lambda: len(lane.core.policy.watch_plates) == 25, what="core told")


@pytest.mark.parametrize("snapshot", [False, True], ids=["deltas", "snapshot"])
async def test_a_lane_that_missed_deltas_asks_and_catches_up(
    tmp_path: Path, broker: Broker, snapshot: bool
) -> None:
    central = new_central(broker.port, force_snapshot=snapshot, snapshot_part_ops=7)
    seeded_ledger(tmp_path / "lane-01.db", central)  # the lane knew central up to here...
    for i in range(30):  # ...then central changed things before the lane ever connected
        central.change([{"op": "note.revoke", "note_id": f"N{i:05d}"}])
    async with serving(central):
        await eventually(lambda: central.published == central.seq)
        lane = make_lane(tmp_path, broker.port, None)
        async with running(lane):
            link = link_of(lane)
            await eventually(
                lambda: link.replica is not None and link.replica.applied == central.seq
            )
            assert central.resyncs
            assert central.resyncs[0]["from_seq"] == 1
            assert link.stats.resync_requests >= 1
            docs = await lane.in_ledger(lane.ledger.documents)
            statuses = {row[0]: row[-1] for row in docs["notes"]}
            assert {n for n, s in statuses.items() if s == "revoked"} == {
                f"N{i:05d}" for i in range(30)
            }


def _bad(central: SimCentralServer, kind: str) -> tuple[str, bytes, Refusal]:
    base = f"gate/{SITE}"
    head = {"schema": 1, "type": "delta", "site": SITE, "issued_at": 0.0}
    evil = {**head, "seq": central.seq + 1, "ops": [{"op": "note.revoke", "note_id": "N00001"}]}
    if kind == "unsigned":
        return f"{base}/ledger", json.dumps(evil).encode(), Refusal.UNSIGNED
    if kind == "bad-signature":
        envelope = json.loads(seal_central(evil, SIGNER.key))
        envelope["body"] = envelope["body"].replace("N00001", "N00002")
        return f"{base}/ledger", json.dumps(envelope).encode(), Refusal.BAD_SIGNATURE
    if kind == "replayed":
        return f"{base}/ledger", central.deltas[1], Refusal.STALE
    if kind == "wrong-site":
        other = {**evil, "site": "site-9"}
        return f"{base}/ledger", seal_central(other, SIGNER.key), Refusal.WRONG_SITE
    if kind == "10-megabytes":
        big = {**evil, "ops": [{"op": "pass.confirm", "pass_id": "x" * 100}] * 80_000}
        return f"{base}/ledger", seal_central(big, SIGNER.key), Refusal.OVERSIZED
    if kind == "invalid-json":
        return f"{base}/ledger", b'{"v": 1, "kid": "00", "body": "{\\"seq": 2', Refusal.MALFORMED
    if kind == "command-unsigned":
        body = {**head, "type": "command", "lane": "lane-01", "command_id": "c", "action": "status"}
        return f"{base}/lane-01/cmd", json.dumps(body).encode(), Refusal.UNSIGNED
    if kind == "command-expired":
        _, payload = central.command("lane-01", "status", issued_at=time.time() - 3600)
        return f"{base}/lane-01/cmd", payload, Refusal.EXPIRED
    if kind == "command-other-lane":
        _, payload = central.command("lane-02", "status")
        return f"{base}/lane-01/cmd", payload, Refusal.WRONG_LANE
    if kind.startswith("pass-"):  # someone on lane-02's topic speaking for another lane
        claimed = {"pass-of-another-lane": "lane-03", "pass-as-this-lane": "lane-01"}[kind]
        record = {"pass_id": "X1", "lane": claimed, "decision": "release", "note_id": "N00001"}
        message = {"schema": 1, "type": "pass", "site": SITE, "lane": claimed, "pass": record}
        return f"{base}/lane-02/pass", json.dumps(message).encode(), Refusal.WRONG_LANE
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "unsigned",
        "bad-signature",
        "replayed",
        "wrong-site",
        "10-megabytes",
        "invalid-json",
        "command-unsigned",
        "command-expired",
        "command-other-lane",
        "pass-of-another-lane",
        "pass-as-this-lane",
    ],
)
async def test_refused_messages_are_counted_and_change_nothing(
    tmp_path: Path, broker: Broker, kind: str
) -> None:
    central = new_central(broker.port)
    lane = make_lane(tmp_path, broker.port, central)
    async with serving(central), running(lane):
        link = link_of(lane)
        await eventually(link.connected.is_set)
        await eventually(lambda: link.replica is not None and link.replica.applied == central.seq)
        topic, payload, reason = _bad(central, kind)
        if kind == "10-megabytes":
            assert len(payload) > 10_000_000
        await asyncio.sleep(0.3)  # let the startup alerts settle in the outbox
        before = await ledger_state(lane)
        counted = link.stats.refused[reason.value]
        await central.publish_raw(topic, payload)
        await eventually(lambda: link.stats.refused[reason.value] == counted + 1, what=kind)
        assert await ledger_state(lane) == before
        assert sum(link.stats.refused.values()) == counted + 1  # refused once, for that reason
        assert link.connected.is_set()  # and the link carried on


async def test_a_note_used_at_one_lane_is_refused_at_its_neighbour_within_a_second(
    tmp_path: Path, broker: Broker
) -> None:
    central = new_central(broker.port)
    a = make_lane(tmp_path, broker.port, central, "lane-01")
    b = make_lane(tmp_path, broker.port, central, "lane-02")
    async with running(a), running(b):  # central is away: the lanes learn from each other
        await eventually(lambda: link_of(a).connected.is_set() and link_of(b).connected.is_set())
        await asyncio.sleep(0.2)  # both subscribed

        async def used_at_b() -> bool:
            docs = await b.in_ledger(b.ledger.load_note, "N00007")
            return docs is not None and docs.status == "used"

        assert not await used_at_b()
        await a.commit_pass(release("A-7", "N00007"))
        took = await eventually(used_at_b, 1.0, "note used at the neighbour")
        outcome, reasons = await b.commit_pass(release("B-7", "N00007", lane_id="lane-02"))
        assert outcome is Outcome.REJECT
        assert Code.NOTE_USED in {r.code for r in reasons}
        assert took < 1.0
        assert link_of(b).stats.neighbour_passes == 1


def _worker(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    ledger = tmp / "worker.db"
    config = headless_config(ledger, SIGNER.public_key, mqtt_settings(port), "lane-09")
    path = tmp / "worker.json"
    path.write_text(config.model_dump_json(), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "sim.lane_worker", str(path), "0", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("how", ["sigkill", "sigterm"])
async def test_a_lane_that_goes_away_shows_offline_in_its_retained_status(
    tmp_path: Path, broker: Broker, how: str
) -> None:
    central = new_central(broker.port)
    async with serving(central):
        proc = _worker(tmp_path, broker.port)
        try:
            online = lambda: central.status.get("lane-09", {}).get("state") == "online"  # noqa: E731
            await eventually(online, 20, "lane online")
            proc.send_signal(signal.SIGKILL if how == "sigkill" else signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 10)
        finally:
            proc.kill()
        offline = lambda: central.status.get("lane-09", {}).get("state") == "offline"  # noqa: E731
        await eventually(offline, 5, "last will or goodbye")
    # retained: a newcomer sees it too
    late = SimCentralServer(SIGNER, SITE, "127.0.0.1", broker.port, client_id="observer")
    async with serving(late):
        await eventually(lambda: late.status.get("lane-09", {}).get("state") == "offline", 5)


async def test_alerts_go_to_central_through_the_outbox(tmp_path: Path, broker: Broker) -> None:
    central = new_central(broker.port)
    lane = make_lane(tmp_path, broker.port, central)  # its relay is nowhere: a device fault
    async with serving(central), running(lane):
        await eventually(
            lambda: any(a["kind"] == "DEVICE_FAULT" for a in central.alerts.values()),
            what="device fault alert at central",
        )
        alert = next(a for a in central.alerts.values() if a["kind"] == "DEVICE_FAULT")
        assert "relay" in alert["message"]
        rows = await lane.in_ledger(
            lambda: lane.ledger.conn.execute("SELECT kind, delivered_at FROM outbox").fetchall()
        )
        assert ("alert",) in {(k,) for k, _ in rows}


async def test_a_growing_outbox_raises_one_alert(tmp_path: Path, broker: Broker) -> None:
    central = new_central(broker.port)
    broker.stop()  # nothing leaves
    lane = make_lane(tmp_path, broker.port, central, outbox_alert_pending=20)
    async with running(lane):

        async def backlog_alerts() -> list[dict[str, Any]]:
            rows = await lane.in_ledger(
                lambda: lane.ledger.conn.execute(
                    "SELECT payload FROM outbox WHERE kind = 'alert'"
                ).fetchall()
            )
            return [json.loads(r[0]) for r in rows if "OUTBOX_BACKLOG" in r[0]]

        async def pending() -> int:
            return (await lane.in_ledger(lane.ledger.outbox_counts))[0]

        i = 0
        while await pending() < 19:  # passes and the relay's fault alert
            await lane.commit_pass(release(f"P{i:03d}", f"N{i:05d}"))
            i += 1
        await asyncio.sleep(0.5)  # two housekeeping rounds
        assert await backlog_alerts() == []
        for j in range(i, i + 5):
            await lane.commit_pass(release(f"P{j:03d}", f"N{j:05d}"))

        async def one() -> bool:
            return len(await backlog_alerts()) == 1

        await eventually(one, 5, "backlog alert")
        await asyncio.sleep(0.5)
        assert len(await backlog_alerts()) == 1  # once, not every round


async def test_status_requests_are_forgotten_once_no_replay_could_pass_and_overrides_kept(
    tmp_path: Path, broker: Broker
) -> None:
    central = new_central(broker.port)
    lane = make_lane(tmp_path, broker.port, central, command_max_age_s=0.5, outbox_retention_h=0)
    async with serving(central), running(lane):
        await eventually(lambda: "lane-01" in central.status, what="the lane subscribed")

        async def audited() -> dict[str, float]:
            commands = await lane.in_ledger(lane.ledger.commands)
            return {c["command_id"]: c["received_at"] for c in commands}

        status = await central.send_command("lane-01", "status")
        override = await central.send_command(
            "lane-01", "override", override={"action": "hold", "officer": "O-7", "reason": "r"}
        )

        async def both() -> bool:
            return {status, override} <= set(await audited())

        await eventually(both, 5, "both audited")
        received = (await audited())[status]

        async def pruned() -> bool:
            return list(await audited()) == [override]

        # forgotten, but only once a replay could no longer pass the age check (twice the
        # maximum age); the override (refused: no truck) stays as the audit
        await eventually(pruned, 5, "the status request forgotten")
        assert time.time() - received >= 2 * 0.5


async def test_subscriptions_are_renewed_when_the_broker_forgot_them(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "volatile", persistence=False)
    broker.start()
    try:
        central = new_central(broker.port)
        lane = make_lane(tmp_path, broker.port, central)
        async with serving(central), running(lane):
            link = link_of(lane)
            await eventually(link.connected.is_set)
            await asyncio.to_thread(broker.stop)
            await asyncio.to_thread(broker.start)  # no sessions, no subscriptions, no head
            await eventually(lambda: link.stats.connects >= 2, what="lane back")
            await eventually(central.connected.is_set, what="central back")
            await asyncio.sleep(0.2)
            central.change([{"op": "watch.add", "kind": "plate", "value": "沪R00001"}])
            await eventually(lambda: "沪R00001" in lane.core.policy.watch_plates, 5)
    finally:
        broker.kill()


def test_a_lane_allowed_larger_messages_accepts_a_delta_over_one_mebibyte(tmp_path: Path) -> None:
    # the lane's own max_message_bytes governs, not the envelope's 1 MiB default
    mqtt = mqtt_settings(1883, max_message_bytes=4 * 2**20)
    link = CentralLink(headless_config(tmp_path / "l.db", SIGNER.public_key, mqtt))
    head = {"schema": 1, "type": "delta", "site": SITE, "issued_at": 0.0, "seq": 2}
    ops = [{"op": "pass.confirm", "pass_id": f"{i:05d}" + "x" * 95} for i in range(9_000)]
    payload = seal_central({**head, "ops": ops}, SIGNER.key)
    assert 2**20 < len(payload) < 4 * 2**20
    checked = link._check("ledger", payload)
    assert not isinstance(checked, Refused), checked


class _DefaultSaveBroker(Broker):
    """Mosquitto saving its state only every 30 min (its default), as a site broker would."""

    def _config(self) -> str:
        config = super()._config()
        assert "autosave_interval 1\n" in config
        return config.replace("autosave_interval 1\n", "autosave_interval 1800\n")


async def test_passes_a_crashed_broker_lost_after_acknowledging_them_are_sent_again(
    tmp_path: Path,
) -> None:
    # The broker acknowledges a pass (the lane marks it delivered) and keeps it for central,
    # offline; the broker then loses power before saving it. Central sees the gap in the
    # lane's outbox numbers and asks for the outbox again from there.
    broker = _DefaultSaveBroker(tmp_path / "broker")
    broker.start()
    try:
        central = new_central(broker.port)
        lane = make_lane(tmp_path, broker.port, central)
        async with running(lane):
            link = link_of(lane)
            async with serving(central):
                await eventually(link.connected.is_set, what="link up")
                await lane.commit_pass(release("P-0", "N00000"))
                await eventually(lambda: "P-0" in central.passes, what="first pass at central")
            await lane.commit_pass(release("P-LOST", "N00001"))
            await eventually(
                lambda: lane.in_ledger(lambda: lane.ledger.outbox_counts()[0] == 0),
                what="acknowledged by the broker",
            )
            broker.kill()
            await asyncio.to_thread(broker.start)
            await eventually(lambda: link.stats.connects >= 2, what="reconnected")
            async with serving(central):
                await lane.commit_pass(release("P-2", "N00002"))
                await eventually(lambda: "P-2" in central.passes, what="next pass at central")
                assert "P-LOST" not in central.passes
                assert await central.ask_again("lane-01") is not None
                await eventually(lambda: "P-LOST" in central.passes, what="lost pass sent again")
                await eventually(lambda: central.outbox_gaps("lane-01") == [])
            commands = await lane.in_ledger(lane.ledger.commands)
            assert [c["action"] for c in commands] == ["resend"]
            assert (await lane.in_ledger(lane.ledger.outbox_counts))[0] == 0
    finally:
        broker.kill()
