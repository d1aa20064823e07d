"""The lane's link to central: one persistent MQTT session (aiomqtt 2.x), QoS 1 both ways.

The link runs beside the lane (``Lane(link=CentralLink(config))``) and never stands in the way
of a decision: with no broker the lane decides from its ledger and everything it owes central
waits in the outbox. Topics and payloads: docs/mqtt.md.

- Session: client id = lane id, ``clean_session=False`` (the broker keeps the subscriptions and
  queues QoS 1 messages while the lane is away), a retained status with a last will
  ``offline``; reconnecting with capped exponential backoff and jitter
  (``drivers.supervisor.Backoff``), subscribing again on every connect.
- In: messages are acknowledged (PUBACK) only after they have been handled, so a lane killed
  mid-message gets it again; the client's queue is bounded and, because the broker sends at
  most ``inflight`` unacknowledged messages, never overflows. Everything from central is checked
  (``gatewayd.envelope``): refusals are logged with a reason and counted, and change nothing;
  a message that fails in a way no check foresaw is refused alone, its traceback logged.
  Ledger deltas and neighbours' passes are applied on the lane's ledger thread.
- Out: outbox rows are published in order, marked delivered on PUBACK, and whatever was not
  acknowledged goes again after the next connect; central de-duplicates by pass id.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import socket
import sqlite3
import ssl
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

import aiomqtt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drivers import release_note
from drivers.supervisor import Backoff, Health, State, raise_if_stopping
from gatewayd.central_config import MqttSection
from gatewayd.commands import Alert
from gatewayd.config import LaneConfig
from gatewayd.envelope import (
    Refusal,
    Refused,
    lane_message,
    open_central,
    outbox_message,
)
from gatewayd.errors import first_error
from gatewayd.events import Event, Override, WatchlistChanged
from gatewayd.lane import LaneCore
from gatewayd.ledger import Ledger, OutboxRow
from gatewayd.sync import (
    Command,
    Delta,
    Head,
    LineNo,
    Replica,
    Snapshot,
    SyncReport,
    malformed,
    parse_body,
)

log = logging.getLogger(__name__)
# paho's own lines repeat what the link logs once per state change; keep them for debugging
_PAHO = logging.getLogger("gatewayd.link.paho")
_PAHO.setLevel(logging.CRITICAL)

T = TypeVar("T")
HEALTHY_AFTER_S = 5.0  # a session that lasted this long resets the backoff
RECEIVE_BATCH = 64  # messages handled (and their deltas committed) together


class Inbox(asyncio.Queue[aiomqtt.Message]):
    """The client's bounded incoming queue. A message that does not fit is dropped without
    being acknowledged and counted; the session is then restarted, and the broker sends every
    unacknowledged message again (Mosquitto 2.0 does not hold back QoS 1 messages to a client
    that acknowledges late, so the queue can fill)."""

    dropped = 0

    def put_nowait(self, item: aiomqtt.Message) -> None:
        """Queue a message, or count it dropped (aiomqtt catches the QueueFull)."""
        if self.full():
            self.dropped += 1
            raise asyncio.QueueFull
        super().put_nowait(item)


class InboxOverflow(aiomqtt.MqttError):
    """Messages were dropped by the bounded queue: reconnect at once to have them again."""


def mqtt_client(host: str, port: int, *, queue: int, calls: int, **options: Any) -> aiomqtt.Client:
    """A persistent-session client that acknowledges each message only once it is handled,
    queues at most ``queue`` incoming messages (``Inbox``) and ``calls`` publishes, and sends
    small packets at once; ``options`` go to ``aiomqtt.Client``."""
    client = aiomqtt.Client(
        host,
        port,
        clean_session=False,
        max_queued_incoming_messages=queue,
        queue_type=Inbox,
        # a pass is a small packet: without this, Nagle holds it behind an unacknowledged one
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        **options,
    )
    client.pending_calls_threshold = calls
    # Acknowledge each message only once handled (see CentralLink._receive): a client killed
    # mid-message is sent it again, and so is one the bounded queue had to drop (Inbox),
    # after the reconnect that follows. aiomqtt does not expose the option, paho does.
    client._client.manual_ack_set(True)
    return client


@contextlib.asynccontextmanager
async def mqtt_connected(client: aiomqtt.Client) -> AsyncIterator[aiomqtt.Client]:
    """``client`` connected for the block (``MqttError`` when it cannot connect). Not
    ``async with client``: aiomqtt's exit can turn a cancellation into an MqttError."""
    await client.__aenter__()
    try:
        yield client
    finally:
        with contextlib.suppress(aiomqtt.MqttError):
            await client.__aexit__(None, None, None)


class LaneHost(Protocol):
    """What the link needs of the lane it serves (gatewayd.daemon.Lane)."""

    config: LaneConfig
    core: LaneCore
    dropped: int

    @property
    def ledger(self) -> Ledger:
        """The lane's open ledger."""
        ...

    async def in_ledger(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a call on the lane's ledger thread."""
        ...

    def emit(self, event: Event) -> None:
        """Queue an event for the lane core."""
        ...

    def alert(self, alert: Alert) -> None:
        """Log an alert and queue it for central through the outbox."""
        ...


@dataclass
class LinkStats:
    """Counters a technician (and the status message) sees."""

    connects: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    deltas_applied: int = 0
    neighbour_passes: int = 0
    commands: int = 0
    resync_requests: int = 0
    overflows: int = 0  # sessions restarted because the incoming queue was full
    published: int = 0  # outbox rows acknowledged by the broker
    max_delivery_s: float = 0.0  # row written -> PUBACK, the longest seen
    puback_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1000))  # the latest

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready snapshot."""
        return {
            "connects": self.connects,
            "refused": dict(self.refused),
            "deltas_applied": self.deltas_applied,
            "neighbour_passes": self.neighbour_passes,
            "commands": self.commands,
            "resync_requests": self.resync_requests,
            "overflows": self.overflows,
            "published": self.published,
            "max_delivery_s": round(self.max_delivery_s, 3),
        }


class Topics:
    """The topic names of one lane (docs/mqtt.md)."""

    def __init__(self, root: str, site: str, lane: str) -> None:
        self.base = f"{root}/{site}"
        self.lane = lane
        self.ledger = f"{self.base}/ledger"
        self.head = f"{self.base}/ledger/head"
        self.site_passes = f"{self.base}/+/pass"
        self.cmd = f"{self.base}/{lane}/cmd"
        self.sync = f"{self.base}/{lane}/sync"
        self.status = f"{self.base}/{lane}/status"
        self.resync = f"{self.base}/{lane}/resync"
        self._named = {self.ledger: "ledger", self.head: "head", self.sync: "sync", self.cmd: "cmd"}

    def subscriptions(self) -> list[str]:
        """What the lane subscribes to, at QoS 1."""
        return [self.ledger, self.head, self.sync, self.cmd, self.site_passes]

    def outbox(self, kind: str) -> str:
        """Where an outbox row of this kind is published."""
        suffix = {"pass": "pass", "override": "pass", "alert": "alert"}.get(kind, kind)
        return f"{self.base}/{self.lane}/{suffix}"

    def classify(self, topic: str) -> str | None:
        """What arrived: ledger, head, sync, cmd, pass (a neighbour's), own, or None."""
        if topic in self._named:
            return self._named[topic]
        lane = self.sender(topic)
        if lane is not None:
            return "own" if lane == self.lane else "pass"
        return None

    def sender(self, topic: str) -> str | None:
        """The lane whose pass topic this is (the broker's ACL lets only that lane publish
        there), or None."""
        prefix = self.base + "/"
        if topic.startswith(prefix) and topic.endswith("/pass"):
            lane = topic[len(prefix) : -len("/pass")]
            if lane and "/" not in lane:
                return lane
        return None


# -- neighbours' passes (lane messages: not signed, the broker's ACL says who may publish) -------


class _Loose(BaseModel):
    model_config = ConfigDict(
        extra="ignore", frozen=True, populate_by_name=True, allow_inf_nan=False
    )


class _WriteOff(_Loose):
    book: str = Field(min_length=1, max_length=64, description="Account book.")
    line: LineNo = Field(description="Line number.")
    quantity: float = Field(ge=0, description="Quantity drawn.")


class _SitePassRecord(_Loose):
    pass_id: str = Field(min_length=1, max_length=128, description="Pass id.")
    lane: str = Field(min_length=1, max_length=64, description="Lane that decided it.")
    decision: str = Field(description="release, hold or reject.")
    note_id: str | None = Field(None, max_length=64, description="Release note used.")
    write_off: list[_WriteOff] = Field(default_factory=list, max_length=100, description="Draws.")
    trip_id: str | None = Field(None, max_length=64, description="Trip closed.")
    override_id: str | None = Field(None, max_length=128, description="Override, if any.")


class _SitePass(_Loose):
    schema_version: Literal[1] = Field(alias="schema", description="Schema version.")
    type: Literal["pass", "override"] = Field(description="A pass or an override of one.")
    site: str = Field(description="Site.")
    lane: str = Field(description="Lane that sent it.")
    pass_: _SitePassRecord | None = Field(None, alias="pass", description="The pass.")
    override: _SitePassRecord | None = Field(None, description="The overridden pass.")


@dataclass(frozen=True)
class _SitePassIn:
    """A neighbour's pass or override, checked, to be taken into the ledger once per key."""

    key: str
    record: _SitePassRecord


# what may arrive on each topic from central
_ALLOWED: dict[str, tuple[type, ...]] = {
    "ledger": (Delta,),
    "head": (Head,),
    "sync": (Delta, Snapshot),
}

Checked = Delta | Snapshot | Head | _SitePassIn | Refused


@dataclass
class _Handled:
    """The ledger thread's answer for one message."""

    kind: str
    refused: Refused | None = None
    report: SyncReport | None = None
    site_pass: str | None = None
    detail: str = ""


class CentralLink:
    """The central link of one lane; ``await link.run(lane)`` until cancelled."""

    def __init__(
        self,
        config: LaneConfig,
        *,
        clock: Callable[[], float] = time.time,
        backoff: Backoff | None = None,
    ) -> None:
        if config.mqtt is None:
            raise ValueError("the lane config has no [mqtt] section")
        self.settings: MqttSection = config.mqtt
        s = self.settings
        self.site, self.lane_id = config.lane.site, config.lane.id
        self.topics = Topics(s.topic_root, self.site, self.lane_id)
        # the last will, and what the lane says itself when it stops
        self._offline = lane_message("status", self.site, self.lane_id, state="offline")
        self.keys = release_note.public_keys(config.central.public_keys)
        self.clock = clock
        self.backoff = backoff or Backoff(initial=s.reconnect_initial_s, maximum=s.reconnect_max_s)
        self.health = Health("central link")
        self.stats = LinkStats()
        self.connected = asyncio.Event()  # set while a session is up (tests and status wait on it)
        self.replica: Replica | None = None
        self._opened: float | None = None  # when the current session's connection opened
        self._password = s.secret()
        self._wake = asyncio.Event()
        self._gap = asyncio.Event()

    # -- the lane's side ---------------------------------------------------------------------

    def outbox_changed(self) -> None:
        """The lane wrote to the outbox: send it now rather than at the next poll."""
        self._wake.set()

    async def run(self, lane: LaneHost) -> None:
        """Keep the session up and the outbox draining until cancelled; never raises else."""
        make = functools.partial(Replica, max_pending=self.settings.max_pending_deltas)
        self.replica = await lane.in_ledger(make, lane.ledger)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._connection(lane), name="link:connection")
            tg.create_task(self._housekeeping(lane), name="link:housekeeping")

    # -- connection --------------------------------------------------------------------------

    def _set(self, state: State, detail: str) -> None:
        self.health.change(state, detail)

    def _client(self) -> aiomqtt.Client:
        s = self.settings
        tls_params = None
        if s.tls is not None:
            tls_params = aiomqtt.TLSParameters(
                ca_certs=str(s.tls.ca_file),
                certfile=str(s.tls.cert_file) if s.tls.cert_file else None,
                keyfile=str(s.tls.key_file) if s.tls.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        return mqtt_client(
            s.host,
            s.effective_port,
            queue=s.incoming_queue,
            calls=s.publish_batch + 20,
            username=s.username,
            password=self._password,
            identifier=s.client_id or self.lane_id,
            keepalive=s.keepalive_s,
            will=aiomqtt.Will(self.topics.status, self._offline, qos=1, retain=True),
            max_inflight_messages=s.inflight,
            timeout=s.connect_timeout_s,  # CONNACK and SUBACK; publishes give their own
            logger=_PAHO,
            tls_params=tls_params,
            tls_insecure=None if s.tls is None else not s.tls.server_name_check,
        )

    async def _connection(self, lane: LaneHost) -> None:
        s = self.settings
        where = f"{s.host}:{s.effective_port}"
        while True:
            self._opened = None
            attempt = asyncio.create_task(self._attempt(lane, where), name="link:session")
            quick = False
            try:
                await attempt
            except InboxOverflow as exc:
                log.info("central link: %s; reconnecting", exc)
                self.stats.overflows += 1
                quick = True
            except aiomqtt.MqttError as exc:
                self._set("down", f"{where}: {exc or type(exc).__name__}")
            except Exception as exc:  # a fault in the link must never stop the lane
                log.exception("central link failed")
                self._set("down", f"{type(exc).__name__}: {exc}")
            finally:
                self.connected.clear()
            # aiomqtt's connect and disconnect wait with wait_for, which can swallow a
            # cancellation. This task hosts no TaskGroup (the session runs in its own
            # task), so its cancel count is only ever raised by someone stopping the link.
            raise_if_stopping()
            opened = self._opened
            if opened is not None and time.monotonic() - opened >= HEALTHY_AFTER_S:
                self.backoff.reset()
            await asyncio.sleep(0 if quick else self.backoff.next())

    async def _attempt(self, lane: LaneHost, where: str) -> None:
        """One connection: connect, run the session until it fails, disconnect."""
        async with mqtt_connected(self._client()) as client:
            self._opened = time.monotonic()
            self.stats.connects += 1
            self._set("up", where)
            self.connected.set()
            await self._session(client, lane)

    async def _session(self, client: aiomqtt.Client, lane: LaneHost) -> None:
        try:
            topics = self.topics.subscriptions()
            codes = await client.subscribe([(t, 1) for t in topics])
            refused = [t for t, c in zip(topics, codes, strict=False) if _code(c) >= 0x80]
            if refused:
                log.error("broker refused subscriptions to %s", ", ".join(refused))
            await self._publish_status(client, lane)
            self._gap.set()  # look at the sync state once per session
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._receive(client, lane), name="link:receive")
                tg.create_task(self._publish_outbox(client, lane), name="link:outbox")
                tg.create_task(self._keep_status(client, lane), name="link:status")
                tg.create_task(self._ask_resync(client), name="link:resync")
        except asyncio.CancelledError:
            # the lane is stopping: say so, as the last will would if the lane just vanished
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await client.publish(self.topics.status, self._offline, qos=1, retain=True)
            raise
        except BaseExceptionGroup as group:
            lost = first_error(group, aiomqtt.MqttError)
            if lost is None:
                raise
            raise lost from None

    # -- in ----------------------------------------------------------------------------------

    async def _receive(self, client: aiomqtt.Client, lane: LaneHost) -> None:
        messages = client.messages
        inbox = client._queue
        while True:
            batch = [await anext(messages)]
            while len(messages) and len(batch) < RECEIVE_BATCH:
                batch.append(await anext(messages))
            await self._handle(client, lane, batch)
            for message in batch:
                if message.qos > 0:
                    client._client.ack(message.mid, message.qos)
            if isinstance(inbox, Inbox) and inbox.dropped and not len(messages):
                raise InboxOverflow(f"{inbox.dropped} incoming messages did not fit the queue")

    async def _handle(
        self, client: aiomqtt.Client, lane: LaneHost, batch: list[aiomqtt.Message]
    ) -> None:
        items: list[tuple[str, bytes, str | None]] = []
        commands: list[bytes] = []
        for message in batch:
            topic = message.topic.value
            kind = self.topics.classify(topic)
            if kind is None or kind == "own":
                continue
            payload = message.payload
            if not isinstance(payload, bytes | bytearray):
                payload = str(payload).encode()
            if len(payload) > self.settings.max_message_bytes:
                limit = self.settings.max_message_bytes
                self._refused(kind, Refused(Refusal.OVERSIZED, f"{len(payload)} > {limit} bytes"))
                continue
            if kind == "cmd":
                commands.append(bytes(payload))
            else:
                items.append((kind, bytes(payload), self.topics.sender(topic)))
        if not items and not commands:
            return
        # signatures and parsing off the loop, and off the ledger thread, where a truck's pass
        # may be waiting
        checked, orders = await asyncio.to_thread(
            lambda: (
                [(k, self._guarded(k, self._check, k, p, lane)) for k, p, lane in items],
                [self._guarded("command", self._check_command, p) for p in commands],
            )
        )
        if checked:
            for handled in await lane.in_ledger(self._ingest, lane.ledger, checked):
                try:
                    self._after(lane, handled)
                except Exception:  # what was applied stays applied; the next message goes on
                    log.exception("after a %s message", handled.kind)
        for order in orders:
            try:
                await self._command(client, lane, order)
            except aiomqtt.MqttError:
                raise  # the session is gone, not the command: it comes again
            except Exception as exc:
                self._refused("command", self._unexpected("command", exc))

    def _guarded(self, kind: str, check: Callable[..., T], *args: Any) -> T | Refused:
        """``check(*args)``, or a refusal if it fails unexpectedly: a message that raised
        would never be acknowledged, and the broker would send it again forever."""
        try:
            return check(*args)
        except Exception as exc:
            return self._unexpected(kind, exc)

    @staticmethod
    def _unexpected(kind: str, exc: Exception) -> Refused:
        """The refusal of a message that failed in a way no check foresaw (logged in full)."""
        log.error("a %s message could not be handled", kind, exc_info=exc)
        detail = f"could not be handled: {type(exc).__name__}: {str(exc)[:200]}"
        return Refused(Refusal.MALFORMED, detail)

    def _open(self, payload: bytes) -> dict[str, Any]:
        """A message from central checked (size under the lane's own limit, signature,
        site) and opened; raises ``Refused``."""
        return open_central(
            payload, self.keys, site=self.site, max_bytes=self.settings.max_message_bytes
        )

    def _check(self, kind: str, payload: bytes, sender: str | None = None) -> Checked:
        """Check one message from the broker (no ledger needed): its model, or why not.
        ``sender`` is the lane whose topic a neighbour's pass came on."""
        try:
            if kind == "pass":
                return self._check_site_pass(payload, sender)
            parsed = parse_body(self._open(payload))
            if not isinstance(parsed, _ALLOWED[kind]):
                raise Refused(Refusal.WRONG_TOPIC, f"a {parsed.type} on the {kind} topic")
            if isinstance(parsed, Snapshot) and parsed.lane != self.lane_id:
                raise Refused(Refusal.WRONG_LANE, f"snapshot for lane {parsed.lane!r}")
            assert not isinstance(parsed, Command)
            return parsed
        except Refused as refusal:
            return refusal

    def _check_site_pass(self, payload: bytes, sender: str | None) -> _SitePassIn:
        try:
            message = _SitePass.model_validate_json(payload)
        except ValidationError as exc:
            raise malformed(exc) from None
        if message.site != self.site:
            raise Refused(Refusal.WRONG_SITE, f"pass for site {message.site!r}")
        record = message.pass_ if message.type == "pass" else message.override
        if record is None:
            raise Refused(Refusal.MALFORMED, f"{message.type} message without its record")
        # Neighbours' passes are not signed: what vouches for one is that only its lane may
        # publish on its topic. A message speaking for another lane, or for this one, is
        # someone else's word, and taking it could use up a note this lane holds.
        if sender is None or message.lane != sender or record.lane != sender:
            claimed = record.lane if message.lane == sender else message.lane
            raise Refused(Refusal.WRONG_LANE, f"pass of lane {claimed!r} on {sender!r}'s topic")
        ident = record.override_id if message.type == "override" else record.pass_id
        return _SitePassIn(f"{message.type}:{ident}", record)

    def _ingest(self, ledger: Ledger, checked: list[tuple[str, Checked]]) -> list[_Handled]:
        """On the ledger thread: apply a checked batch in one transaction."""
        replica = self.replica
        assert replica is not None
        out: list[_Handled] = []
        try:
            with ledger.batch():
                for kind, item in checked:
                    if isinstance(item, Refused):
                        out.append(_Handled(kind, refused=item))
                        continue
                    try:
                        if isinstance(item, _SitePassIn):
                            out.append(self._take_site_pass(ledger, item))
                        else:
                            out.append(_Handled(kind, report=replica.receive(item)))
                    except Refused as refusal:
                        out.append(_Handled(kind, refused=refusal))
                    except Exception as exc:  # refused alone; the rest of the batch goes on
                        if not isinstance(item, _SitePassIn):
                            replica.reload()  # believe the ledger about what was applied
                        out.append(_Handled(kind, refused=self._unexpected(kind, exc)))
        except BaseException:  # whatever it was, the batch was rolled back
            replica.reload()  # so nothing of it counts as applied: it comes again
            raise
        return out

    @staticmethod
    def _take_site_pass(ledger: Ledger, item: _SitePassIn) -> _Handled:
        record = item.record
        try:
            result = ledger.apply_site_pass(item.key, record.model_dump())
        except sqlite3.Error as exc:  # undone; refusing it keeps it from coming back forever
            raise Refused(
                Refusal.MALFORMED, f"pass {record.pass_id} cannot be taken: {exc}"
            ) from exc
        detail = f"{record.pass_id} at {record.lane} used note {record.note_id}"
        return _Handled("pass", site_pass=result, detail=detail)

    def _after(self, lane: LaneHost, handled: _Handled) -> None:
        if handled.refused is not None:
            self._refused(handled.kind, handled.refused)
            return
        report = handled.report
        if report is not None:
            for refusal in report.refused:  # held deltas it could not apply after it
                self._refused(handled.kind, refusal)
            self.stats.deltas_applied += report.applied
            if report.watchlist is not None:
                lane.emit(WatchlistChanged(*report.watchlist))
            if report.gap:
                self._gap.set()
        if handled.site_pass in ("used", "double"):
            self.stats.neighbour_passes += 1
        if handled.site_pass == "double":
            lane.alert(Alert("DOUBLE_WRITE_OFF", handled.detail + ", as did this lane"))

    def _refused(self, kind: str, refusal: Refused) -> None:
        self.stats.refused[refusal.reason.value] += 1
        level = logging.INFO if refusal.reason is Refusal.STALE else logging.WARNING
        log.log(level, "refused a %s message: %s", kind, refusal)

    def _check_command(self, payload: bytes) -> tuple[Command, dict[str, Any]] | Refused:
        """Check a command from central (no ledger needed): it and its signed body, or why
        it is refused."""
        try:
            body = self._open(payload)
            command = parse_body(body)
            if not isinstance(command, Command):
                raise Refused(Refusal.WRONG_TOPIC, f"a {command.type} on the command topic")
            if command.lane != self.lane_id:
                raise Refused(Refusal.WRONG_LANE, f"command for lane {command.lane!r}")
        except Refused as refusal:
            return refusal
        return command, body

    async def _command(
        self,
        client: aiomqtt.Client,
        lane: LaneHost,
        order: tuple[Command, dict[str, Any]] | Refused,
    ) -> None:
        if isinstance(order, Refused):
            self._refused("command", order)
            return
        command, body = order
        try:
            age = self.clock() - command.issued_at
            if abs(age) > self.settings.command_max_age_s:
                raise Refused(Refusal.EXPIRED, f"issued {age:.0f} s from now")
            result = "accepted"
            wanted = command.override.pass_id if command.override else None
            tx = lane.core.tx
            if command.override is not None and (
                tx is None or (wanted is not None and tx.pass_id != wanted)
            ):
                result = "not_current"
            # an override is bound to the pass at the lane now: if the truck changes while the
            # ledger records the command, the core refuses it rather than apply it to the next
            bound = wanted or (tx.pass_id if tx else "")
            fresh = await lane.in_ledger(
                lane.ledger.record_command,
                command.command_id,
                command.action,
                command.issued_at,
                body,
                result,
            )
            if not fresh:
                raise Refused(Refusal.REPLAYED, f"command {command.command_id} already seen")
            if result != "accepted":
                at = tx.pass_id if tx else "no pass"
                raise Refused(Refusal.NOT_CURRENT, f"override for {wanted}, lane has {at}")
        except Refused as refusal:
            self._refused("command", refusal)
            return
        self.stats.commands += 1
        log.info("command %s from central: %s", command.command_id, command.action)
        if command.override is not None:
            o = command.override
            lane.emit(
                Override(
                    o.action, o.officer, o.reason, command.command_id, bound, "central command"
                )
            )
        elif command.resend is not None:
            await self._resend(lane, command.resend.from_outbox_seq)
        else:
            await self._publish_status(client, lane, request_id=command.command_id)

    async def _resend(self, lane: LaneHost, from_seq: int) -> None:
        """Central lost messages the broker acknowledged (a broker that crashed before it
        saved them): publish the kept ones from ``from_seq`` on again."""
        count, oldest = await lane.in_ledger(lane.ledger.requeue_outbox, from_seq)
        log.warning("central asked for the outbox again from %d: %d messages", from_seq, count)
        if oldest is None or oldest > from_seq:
            gone = f"{from_seq}-{oldest - 1}" if oldest is not None else f"{from_seq} on"
            lane.alert(Alert("OUTBOX_PRUNED", f"asked again for outbox {gone}: no longer kept"))
        self._wake.set()

    # -- out ---------------------------------------------------------------------------------

    async def _publish_outbox(self, client: aiomqtt.Client, lane: LaneHost) -> None:
        s = self.settings
        while True:
            self._wake.clear()
            rows = await lane.in_ledger(lane.ledger.outbox_pending, s.publish_batch)
            if not rows:
                with contextlib.suppress(TimeoutError):  # a poll as a safety net
                    async with asyncio.timeout(1.0):
                        await self._wake.wait()
                continue
            acked: list[int] = []
            created = {r.seq: r.created_at for r in rows}
            try:
                # paho sends in call order; up to `inflight` wait for their PUBACK at once
                async with asyncio.TaskGroup() as tg:
                    for row in rows:
                        tg.create_task(self._send(client, row, acked))
            finally:
                if acked:
                    now = self.clock()
                    await lane.in_ledger(lane.ledger.mark_delivered, sorted(acked), now)
                    self.stats.published += len(acked)
                    oldest = min(created[seq] for seq in acked)
                    self.stats.max_delivery_s = max(self.stats.max_delivery_s, now - oldest)

    async def _send(self, client: aiomqtt.Client, row: OutboxRow, acked: list[int]) -> None:
        message = outbox_message(self.site, self.lane_id, row.kind, row.seq, row.payload)
        started = time.monotonic()
        await client.publish(
            self.topics.outbox(row.kind), message, qos=1, timeout=self.settings.publish_timeout_s
        )
        puback_ms = (time.monotonic() - started) * 1000
        self.stats.puback_ms.append(puback_ms)
        acked.append(row.seq)

    async def _publish_status(
        self, client: aiomqtt.Client, lane: LaneHost, request_id: str | None = None
    ) -> None:
        """Publish the lane's retained status (online, with its figures)."""
        pending, delivered = await lane.in_ledger(lane.ledger.outbox_counts)
        core, replica = lane.core, self.replica
        status = lane_message(
            "status",
            self.site,
            self.lane_id,
            state="online",
            at=self.clock(),
            phase=core.phase.value,
            pass_id=core.tx.pass_id if core.tx else None,
            faults=dict(core.faults),
            events_dropped=lane.dropped,
            outbox={"pending": pending, "delivered": delivered},
            sync={
                "applied_seq": replica.applied if replica else None,
                "head": replica.head if replica else None,
                "gap": replica.gap if replica else None,
            },
            link=self.stats.as_dict(),
            request_id=request_id,
        )
        await client.publish(self.topics.status, status, qos=1, retain=True)

    async def _keep_status(self, client: aiomqtt.Client, lane: LaneHost) -> None:
        while True:
            await asyncio.sleep(self.settings.status_interval_s)
            await self._publish_status(client, lane)

    async def _ask_resync(self, client: aiomqtt.Client) -> None:
        """Ask central for what follows the applied sequence when a gap has not narrowed for
        ``resync_grace_s`` (redeliveries usually fill it first), and again each
        ``resync_timeout_s`` in which nothing was applied."""
        s = self.settings
        asked_at = -math.inf
        progress_at, seen = time.monotonic(), -1
        while True:
            # without a gap, sleep until whatever opens one sets it; with one, look again soon
            gap = self.replica is not None and self.replica.gap
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(0.2, s.resync_grace_s) if gap else None):
                    await self._gap.wait()
            self._gap.clear()
            replica = self.replica
            now = time.monotonic()
            if replica is None or not replica.gap:
                asked_at, seen = -math.inf, -1
                continue
            if replica.applied != seen:
                progress_at, seen = now, replica.applied
            if now - progress_at < s.resync_grace_s:
                continue  # deltas are still arriving
            if asked_at > progress_at and now - asked_at < s.resync_timeout_s:
                continue  # asked since the last progress: give central time to answer
            asked_at = now
            self.stats.resync_requests += 1
            request = lane_message(
                "resync",
                self.site,
                self.lane_id,
                from_seq=replica.applied,
                request_id=uuid.uuid4().hex,
                at=self.clock(),
            )
            log.info("asking central for the ledger after %d", replica.applied)
            await client.publish(self.topics.resync, request, qos=1)

    # -- housekeeping ------------------------------------------------------------------------

    async def _housekeeping(self, lane: LaneHost) -> None:
        s = self.settings
        backlog_alerted = False
        while True:
            try:
                pending, _ = await lane.in_ledger(lane.ledger.outbox_counts)
                if pending >= s.outbox_alert_pending and not backlog_alerted:
                    backlog_alerted = True
                    message = f"{pending} messages wait for central (link {self.health.state})"
                    lane.alert(Alert("OUTBOX_BACKLOG", message))
                elif pending < s.outbox_alert_pending // 2:
                    backlog_alerted = False
                before = self.clock() - s.outbox_retention_h * 3600
                pruned = await lane.in_ledger(
                    lane.ledger.prune_outbox, before, s.outbox_keep_delivered
                )
                if pruned:
                    log.info("pruned %d delivered outbox rows", pruned)
                # a command passes the age check until max_age after it was issued, and it was
                # received at most max_age before that: its id must be kept that long
                replayable = self.clock() - 2 * s.command_max_age_s
                await lane.in_ledger(lane.ledger.prune_commands, min(before, replayable))
            except Exception:  # never stop the lane over it; try again next round
                log.exception("outbox housekeeping failed")
            await asyncio.sleep(s.housekeeping_s)


def _code(code: object) -> int:
    value = getattr(code, "value", code)
    return value if isinstance(value, int) else 0
