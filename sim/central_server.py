"""Simulated central on a real broker (docs/mqtt.md): holds the site's documents, numbers every
change with the site's sequence, publishes signed deltas and a retained head, answers resync
requests with the missing deltas or a snapshot, signs commands, and records every pass, override
and alert the lanes send, discarding redeliveries by id and noting gaps and double write-offs.

Central confirms each release it counts (``pass.confirm``) in the same delta that updates the
note and the book lines, as the protocol asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt

from drivers.supervisor import Backoff, raise_if_stopping
from gatewayd.central_config import MqttSection
from gatewayd.config import LaneConfig
from gatewayd.envelope import SCHEMA, seal_central
from gatewayd.ledger import NOTE_COLUMNS, Ledger
from gatewayd.link import Inbox, InboxOverflow, mqtt_client, mqtt_connected
from gatewayd.sync import NoteBody
from sim.central import SimCentral

log = logging.getLogger(__name__)
_PAHO = logging.getLogger("sim.central.paho")
_PAHO.setLevel(logging.CRITICAL)


class SimCentralServer:
    """Central for one site, connected to a broker; ``await run()`` until cancelled."""

    def __init__(
        self,
        signer: SimCentral,
        site: str,
        host: str,
        port: int,
        *,
        root: str = "gate",
        client_id: str | None = None,
        keep_deltas: int = 100_000,
        snapshot_part_ops: int = 500,
        force_snapshot: bool = False,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signer = signer
        self.site = site
        self.host, self.port = host, port
        self.base = f"{root}/{site}"
        self.client_id = client_id or f"central-{site}"
        self.keep_deltas = keep_deltas
        self.snapshot_part_ops = snapshot_part_ops
        self.force_snapshot = force_snapshot
        self.backoff = backoff or Backoff(initial=0.1, maximum=1.0)
        self.clock = clock
        # the site's documents
        self.notes: dict[str, dict[str, Any]] = {}
        self.used_by: dict[str, str] = {}
        self.counted: list[str] = []  # releases counted in the balances, in order
        self.book_lines: dict[tuple[str, int], dict[str, Any]] = {}
        self.trips: dict[str, dict[str, Any]] = {}
        self.watch: dict[tuple[str, str], str] = {}
        self.seq = 0
        self.deltas: dict[int, bytes] = {}  # signed, by sequence (the newest keep_deltas)
        self.published = 0  # deltas acknowledged by the broker on the ledger topic
        # what the lanes sent
        self.passes: dict[str, dict[str, Any]] = {}
        self.delivery_s: dict[str, float] = {}
        self.overrides: dict[str, dict[str, Any]] = {}
        self.alerts: dict[str, dict[str, Any]] = {}
        self.status: dict[str, dict[str, Any]] = {}
        self.resyncs: list[dict[str, Any]] = []
        self.duplicates_discarded = 0
        self.refused: list[tuple[str, str]] = []  # (topic, type): a pass speaking for another lane
        self.double_write_offs: list[tuple[str, str, str]] = []
        self.outbox_seqs: dict[str, set[int]] = defaultdict(set)
        self.connected = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._opened: float | None = None
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._resync_queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue(1000)

    # -- documents -------------------------------------------------------------------------------

    def change(self, ops: list[dict[str, Any]]) -> int:
        """Apply changes to the site's documents, number them, and queue them for the lanes."""
        for op in ops:
            self._apply(op)
        self.seq += 1
        self.deltas[self.seq] = self._seal("delta", seq=self.seq, issued_at=self.clock(), ops=ops)
        self.deltas.pop(self.seq - self.keep_deltas, None)
        self._wake.set()
        return self.seq

    def _apply(self, op: dict[str, Any]) -> None:
        kind = op["op"]
        if kind == "note.upsert":
            body = NoteBody.model_validate(op["note"]).model_dump()
            self.notes[body["note_id"]] = body
        elif kind == "note.revoke":
            note = self.notes.get(op["note_id"])
            if note is not None and note["status"] == "active":
                note["status"] = "revoked"
        elif kind == "book_line.set":
            self.book_lines[(op["book_id"], op["line_no"])] = {
                k: op.get(k, "") for k in ("book_id", "line_no", "remaining", "item", "unit")
            }
        elif kind == "trip.upsert":
            self.trips[op["trip_id"]] = {k: op[k] for k in ("trip_id", "plate", "status")}
        elif kind == "watch.add":
            self.watch[(op["kind"], op["value"])] = op.get("reason", "")
        elif kind == "watch.remove":
            self.watch.pop((op["kind"], op["value"]), None)

    def snapshot_ops(self) -> list[dict[str, Any]]:
        """All documents as upserts."""
        ops: list[dict[str, Any]] = [{"op": "note.upsert", "note": n} for n in self.notes.values()]
        ops += [{"op": "book_line.set", **line} for line in self.book_lines.values()]
        ops += [{"op": "trip.upsert", **t} for t in self.trips.values()]
        ops += [
            {"op": "watch.add", "kind": k, "value": v, "reason": r}
            for (k, v), r in self.watch.items()
        ]
        # the balances above count these releases: a lane that missed their deltas must not
        # keep their draws pending (and take them off every balance central sends again)
        ops += [{"op": "pass.confirm", "pass_id": p} for p in self.counted]
        return ops

    def adopt_ledger(self, path: Path) -> None:
        """Take a seeded lane ledger's documents as the site's (sequence 1) and mark the lane's
        ledger as synced to it, as if the lane had been commissioned from central."""
        ledger = Ledger(path)
        try:
            docs = ledger.documents()
            ops: list[dict[str, Any]] = []
            for row in docs["notes"]:
                note = dict(zip(NOTE_COLUMNS, row, strict=True))
                for key in ("containers", "seals", "lines"):  # stored as JSON text
                    note[key] = json.loads(note[key])
                ops.append(
                    {"op": "note.upsert", "note": {k: note[k] for k in NoteBody.model_fields}}
                )
            for book_id, line_no, item, unit, remaining in docs["book_lines"]:
                ops.append(
                    {
                        "op": "book_line.set",
                        "book_id": book_id,
                        "line_no": line_no,
                        "remaining": remaining,
                        "item": item,
                        "unit": unit,
                    }
                )
            for trip_id, plate, status in docs["trips"]:
                ops.append(
                    {"op": "trip.upsert", "trip_id": trip_id, "plate": plate, "status": status}
                )
            for kind, value, reason in docs["watchlist"]:
                ops.append({"op": "watch.add", "kind": kind, "value": value, "reason": reason})
            seq = self.change(ops)
            ledger.apply_sync(seq, lambda: None)
        finally:
            ledger.close()

    # -- commands and raw messages ---------------------------------------------------------------

    def command(
        self,
        lane: str,
        action: str,
        *,
        override: dict[str, Any] | None = None,
        resend: dict[str, Any] | None = None,
        issued_at: float | None = None,
        command_id: str | None = None,
        site: str | None = None,
    ) -> tuple[str, bytes]:
        """A signed command for a lane: (command id, payload)."""
        command_id = command_id or uuid.uuid4().hex
        payload = self._seal(
            "command",
            site=site or self.site,
            lane=lane,
            command_id=command_id,
            issued_at=self.clock() if issued_at is None else issued_at,
            action=action,
            **({} if override is None else {"override": override}),
            **({} if resend is None else {"resend": resend}),
        )
        return command_id, payload

    def _seal(self, kind: str, **fields: Any) -> bytes:
        """A signed body of ``kind`` for this site (``fields`` may name another)."""
        body = {"schema": SCHEMA, "type": kind, "site": self.site, **fields}
        return seal_central(body, self.signer.key)

    async def send_command(self, lane: str, action: str, **kwargs: Any) -> str:
        """Sign and publish a command to a lane (central must be connected)."""
        command_id, payload = self.command(lane, action, **kwargs)
        await self.publish_raw(f"{self.base}/{lane}/cmd", payload)
        return command_id

    async def publish_raw(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish exactly these bytes (tests use it for messages central would never send)."""
        client = self._client
        if client is None:
            raise RuntimeError("central is not connected")
        await client.publish(topic, payload, qos=1, retain=retain)

    # -- what the lanes sent ---------------------------------------------------------------------

    async def wait_until(self, predicate: Callable[[], bool], within_s: float) -> bool:
        """Wait until ``predicate()`` holds (checked on every message), at most ``within_s``."""
        deadline = time.monotonic() + within_s
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, 0.2)):
                    await self._changed.wait()
        return True

    async def ask_again(self, lane: str) -> int | None:
        """Ask a lane to publish its outbox again from the first gap in what it sent here
        (messages the broker acknowledged, then lost); the gap's start, or None when none."""
        gaps = self.outbox_gaps(lane)
        if not gaps:
            return None
        await self.send_command(lane, "resend", resend={"from_outbox_seq": gaps[0]})
        return gaps[0]

    def outbox_gaps(self, lane: str) -> list[int]:
        """Outbox sequence numbers of a lane missing between the lowest and highest received."""
        seen = self.outbox_seqs.get(lane)
        if not seen:
            return []
        return [n for n in range(min(seen), max(seen) + 1) if n not in seen]

    def _on_message(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        lane, kind = parts[-2], parts[-1]
        try:
            msg = json.loads(payload)
        except json.JSONDecodeError:
            log.warning("central: %s sent something that is not JSON", topic)
            return
        if not isinstance(msg, dict):
            return
        if kind == "status":
            self.status[lane] = msg
        elif kind == "resync":
            with contextlib.suppress(asyncio.QueueFull):
                self._resync_queue.put_nowait((lane, int(msg.get("from_seq", 0))))
            self.resyncs.append(msg)
        elif kind in ("pass", "alert"):
            if isinstance(msg.get("outbox_seq"), int):
                self.outbox_seqs[lane].add(msg["outbox_seq"])
            mtype = msg.get("type")
            record = msg.get(str(mtype))
            if mtype in ("pass", "override") and not _from(lane, msg, record):
                self.refused.append((topic, mtype))
            elif mtype == "pass":
                self._on_pass(msg["pass"])
            elif mtype == "override":
                self._on_override(msg["override"])
            elif mtype == "alert":
                alert = msg["alert"]
                if alert["alert_id"] in self.alerts:
                    self.duplicates_discarded += 1
                else:
                    self.alerts[alert["alert_id"]] = alert
        self._changed.set()

    def _on_pass(self, record: dict[str, Any]) -> None:
        pass_id = record["pass_id"]
        if pass_id in self.passes:
            self.duplicates_discarded += 1  # a redelivery: discarded
            return
        now = time.time()
        self.passes[pass_id] = record
        self.delivery_s[pass_id] = now - float(record.get("decided_at", now))
        if record.get("decision") == "release":
            self._count_release(record)

    def _on_override(self, record: dict[str, Any]) -> None:
        override_id = record.get("override_id") or record["pass_id"]
        if override_id in self.overrides:
            self.duplicates_discarded += 1
            return
        self.overrides[override_id] = record
        self.passes[record["pass_id"]] = record  # the pass as it now stands
        if record.get("decision") == "release":
            self._count_release(record)

    def _count_release(self, record: dict[str, Any]) -> None:
        pass_id = record["pass_id"]
        self.counted.append(pass_id)
        ops: list[dict[str, Any]] = [{"op": "pass.confirm", "pass_id": pass_id}]
        note_id = record.get("note_id")
        note = self.notes.get(note_id) if note_id else None
        if note is not None and note_id is not None:
            first = self.used_by.setdefault(note_id, pass_id)
            if first != pass_id:
                self.double_write_offs.append((note_id, first, pass_id))
                log.warning("central: note %s written off twice (%s, %s)", note_id, first, pass_id)
            ops.append({"op": "note.upsert", "note": {**note, "status": "used"}})
        for w in record.get("write_off") or ():
            line = self.book_lines.get((w["book"], w["line"]))
            if line is not None:
                remaining = max(0.0, float(line["remaining"]) - float(w["quantity"]))
                ops.append({"op": "book_line.set", **line, "remaining": remaining})
        trip_id = record.get("trip_id")
        if trip_id and trip_id in self.trips:
            ops.append({"op": "trip.upsert", **self.trips[trip_id], "status": "closed"})
        self.change(ops)

    # -- the connection --------------------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected (reconnecting with backoff) until cancelled."""
        while True:
            self._opened = None
            attempt = asyncio.create_task(self._attempt(), name="central:session")
            quick = False
            try:
                await attempt
            except* InboxOverflow:
                quick = True  # the broker sends the dropped messages again
            except* aiomqtt.MqttError as group:
                log.info("central: broker connection lost: %s", group.exceptions[0])
            raise_if_stopping()  # see CentralLink._connection
            if self._opened is not None and time.monotonic() - self._opened > 2:
                self.backoff.reset()
            await asyncio.sleep(0 if quick else self.backoff.next())

    async def register(self) -> None:
        """Connect once, subscribe, and leave: the broker keeps central's persistent session and
        queues the lanes' messages for it from now on, even while central is away. (A broker
        that never saw central's session drops what lanes publish before central connects.)"""
        client = self._new_client()
        async with client:
            await client.subscribe(self._subscriptions())

    def _subscriptions(self) -> list[tuple[str, int]]:
        return [(f"{self.base}/+/{kind}", 1) for kind in ("pass", "alert", "status", "resync")]

    def _new_client(self) -> aiomqtt.Client:
        return mqtt_client(
            self.host,
            self.port,
            queue=1000,
            calls=1000,
            identifier=self.client_id,
            keepalive=10,
            timeout=5,
            logger=_PAHO,
        )

    async def _attempt(self) -> None:
        async with mqtt_connected(self._new_client()) as client:
            try:
                self._opened = time.monotonic()
                await client.subscribe(self._subscriptions())
                self._client = client
                self.connected.set()
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._receive(client), name="central:receive")
                    tg.create_task(self._publish(client), name="central:publish")
                    tg.create_task(self._answer_resyncs(client), name="central:resync")
            finally:
                self._client = None
                self.connected.clear()

    async def _receive(self, client: aiomqtt.Client) -> None:
        inbox = client._queue
        async for message in client.messages:
            payload = message.payload
            if isinstance(payload, bytes | bytearray):
                self._on_message(message.topic.value, bytes(payload))
            if message.qos > 0:
                client._client.ack(message.mid, message.qos)
            if isinstance(inbox, Inbox) and inbox.dropped and not len(client.messages):
                raise InboxOverflow(f"{inbox.dropped} messages dropped")

    async def _publish(self, client: aiomqtt.Client) -> None:
        await self._publish_head(client)
        while True:
            self._wake.clear()
            if self.published >= self.seq:
                await self._wake.wait()
                continue
            upto = min(self.seq, self.published + 200)
            async with asyncio.TaskGroup() as tg:
                for seq in range(self.published + 1, upto + 1):
                    payload = self.deltas.get(seq)
                    if payload is not None:  # forgotten ones reach lanes by snapshot
                        tg.create_task(client.publish(f"{self.base}/ledger", payload, qos=1))
            self.published = upto
            await self._publish_head(client)

    async def _publish_head(self, client: aiomqtt.Client) -> None:
        payload = self._seal("head", seq=self.published, issued_at=self.clock())
        await client.publish(f"{self.base}/ledger/head", payload, qos=1, retain=True)

    async def _answer_resyncs(self, client: aiomqtt.Client) -> None:
        while True:
            lane, from_seq = await self._resync_queue.get()
            topic = f"{self.base}/{lane}/sync"
            have = all(s in self.deltas for s in range(from_seq + 1, self.seq + 1))
            if have and not self.force_snapshot:
                seqs = list(range(from_seq + 1, self.seq + 1))
                for start in range(0, len(seqs), 200):
                    async with asyncio.TaskGroup() as tg:
                        for seq in seqs[start : start + 200]:
                            tg.create_task(client.publish(topic, self.deltas[seq], qos=1))
                continue
            ops = self.snapshot_ops()
            size = self.snapshot_part_ops
            chunks = [ops[i : i + size] for i in range(0, len(ops), size)] or [[]]
            snapshot_id = uuid.uuid4().hex[:16]
            for part, chunk in enumerate(chunks, start=1):
                payload = self._seal(
                    "snapshot",
                    lane=lane,
                    seq=self.seq,
                    snapshot_id=snapshot_id,
                    part=part,
                    parts=len(chunks),
                    issued_at=self.clock(),
                    ops=chunk,
                )
                await client.publish(topic, payload, qos=1)


def sim_mqtt(host: str, port: int, **overrides: Any) -> MqttSection:
    """The [mqtt] section of a simulated lane: quick reconnects and housekeeping."""
    settings: dict[str, Any] = {
        "host": host,
        "port": port,
        "reconnect_initial_s": 0.1,
        "reconnect_max_s": 1.0,
        "resync_timeout_s": 2.0,
        "status_interval_s": 5.0,
        "housekeeping_s": 5.0,
        "keepalive_s": 5,
        **overrides,
    }
    return MqttSection.model_validate(settings)


def with_mqtt(config: LaneConfig, mqtt: MqttSection) -> LaneConfig:
    """The config with its [mqtt] section replaced."""
    return LaneConfig.model_validate({**config.model_dump(), "mqtt": mqtt.model_dump()})


class SiteRun:
    """`gatewayd sim --broker`: central and the lane's link around one simulated run."""

    def __init__(self, signer: SimCentral, host: str, port: int, site: str) -> None:
        self.central = SimCentralServer(signer, site, host, port)
        self.host, self.port = host, port
        self._task: asyncio.Task[None] | None = None

    def configure(self, config: LaneConfig) -> LaneConfig:
        """The lane's config with the link to this broker."""
        return with_mqtt(config, sim_mqtt(self.host, self.port))

    async def start(self, ledger_path: Path) -> None:
        """Central takes the seeded documents and connects (or keeps trying to)."""
        await asyncio.to_thread(self.central.adopt_ledger, ledger_path)
        self._task = asyncio.create_task(self.central.run(), name="central")
        # with a broker up, let central's session exist before the lane publishes anything
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await self.central.connected.wait()

    async def finish(self, lane: Any, within_s: float = 30.0) -> dict[str, Any]:
        """Wait until central has every pass the lane wrote and the lane has central's
        changes; the figures for the report."""
        started = time.monotonic()
        passes = await lane.in_ledger(lane.ledger.passes)
        expected = {p["pass_id"] for p in passes}
        delivered_s: float | None = None
        while time.monotonic() - started < within_s:
            pending, _ = await lane.in_ledger(lane.ledger.outbox_counts)
            if pending == 0 and expected <= self.central.passes.keys():
                delivered_s = time.monotonic() - started
                break
            await asyncio.sleep(0.05)
        link = lane.link
        synced = False
        while time.monotonic() - started < within_s:
            replica = getattr(link, "replica", None)
            if replica is not None and replica.applied >= self.central.seq:
                synced = True
                break
            await asyncio.sleep(0.05)
        got = expected & self.central.passes.keys()
        stats = getattr(link, "stats", None)
        return {
            "passes": len(expected),
            "delivered": len(got),
            "missing": len(expected - got),
            "duplicates_discarded": self.central.duplicates_discarded,
            "alerts": len(self.central.alerts),
            "deltas_applied": stats.deltas_applied if stats is not None else 0,
            "ledger_synced": synced,
            "delivered_s": None if delivered_s is None else round(delivered_s, 2),
        }

    async def close(self) -> None:
        """Disconnect central."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _from(lane: str, message: dict[str, Any], record: object) -> bool:
    """A pass (or override) message whose lane and record are the lane of its topic: only that
    lane may publish there (the broker's ACL), and nothing else vouches for what it says."""
    return isinstance(record, dict) and message.get("lane") == lane and record.get("lane") == lane
