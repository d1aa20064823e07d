"""The lane daemon: drivers put events on a bounded queue, the core answers, commands run.

One TaskGroup per lane with named tasks: the relay (through the supervisor), each reading
source, the ticker and the dispatcher. The dispatcher is the only caller of the core. Ledger
work runs on one dedicated thread (SQLite connections belong to a thread, and a commit's fsync
must not stall the loop); answers from the ledger go straight back into the core, so a release
moves from its last reading to the barrier command without waiting behind other events.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import gc
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from drivers import release_note
from drivers.modbus_io import RelayIO, SignalChanged
from drivers.supervisor import Backoff, DriverError, Health, Supervisor
from gatewayd.commands import (
    Alert,
    ArmSeal,
    AuditOverride,
    Capture,
    CloseBarrier,
    Command,
    CommitPass,
    Display,
    LoadDocuments,
    OpenBarrier,
    PassClosed,
    PassRecord,
    SetLight,
    StopBarrier,
    UnlockSeal,
)
from gatewayd.config import LaneConfig
from gatewayd.envelope import alert_row
from gatewayd.events import (
    BarrierChanged,
    BarrierPosition,
    DeviceFault,
    DeviceRecovered,
    DocumentsLoaded,
    Event,
    LoopChanged,
    PassCommitted,
    Reading,
    Tick,
    WatchlistChanged,
)
from gatewayd.judge import Policy, ReadingKind
from gatewayd.lane import RELAY, LaneCore, LaneSettings, Phase
from gatewayd.ledger import Ledger
from gatewayd.reasons import Code, Outcome, Reason
from gatewayd.sources import DisplaySink, PassAware, ReadingSource, SealActuator, Triggered

log = logging.getLogger(__name__)

T = TypeVar("T")
QUEUE_SIZE = 4096
# a stopping lane waits this long for the event in hand (a ledger write waits up to 5 s for a
# busy database); the unit's TimeoutStopSec (10 s) covers it
STOP_GRACE_S = 7.0


@functools.cache
def _freeze_startup_heap() -> None:
    """Keep what start-up built out of the garbage collector's full passes, whose pauses
    would otherwise grow with it. Once per process (cached): a second lane in the same
    process (the simulator, tests) must not pin everything the first one left behind."""
    gc.collect()
    gc.freeze()


class LaneClock:
    """Wall-clock seconds that never jump within a pass: anchored to the wall clock, then
    monotonic; ``resync`` (between passes) follows a step of the wall clock, as when time
    sync corrects a clock that booted behind: notes' validity is judged in real time."""

    STEP_S = 2.0  # drift beyond this is a step to follow; less is left to the slewing

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._wall, self._monotonic = wall, monotonic
        self._wall0 = wall()
        self._mono0 = monotonic()

    def __call__(self) -> float:
        return self._wall0 + (self._monotonic() - self._mono0)

    def resync(self) -> float:
        """Re-anchor on the wall clock if it is more than ``STEP_S`` away; the step taken
        (0.0 when none)."""
        wall, mono = self._wall(), self._monotonic()
        step = wall - (self._wall0 + (mono - self._mono0))
        if abs(step) <= self.STEP_S:
            return 0.0
        self._wall0, self._mono0 = wall, mono
        return step


def new_pass_id(lane_id: str) -> Callable[[float], str]:
    """Pass ids readable by an officer and unique across restarts: lane, UTC time, random."""

    def make(now: float) -> str:
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%S")
        return f"{lane_id}-{stamp}-{uuid.uuid4().hex[:6]}"

    return make


@dataclass
class PassTiming:
    """How long one pass took, as the lane saw it (monotonic seconds)."""

    pass_id: str
    arrived: float
    decided_from: float | None = None  # when the reading that completed the pass came in
    decision_ms: float | None = None  # that reading -> barrier command (or hold display)
    record: PassRecord | None = None
    outcome: Outcome | None = None
    finished: float | None = None

    @property
    def lane_s(self) -> float | None:
        """Arrival to the barrier closed behind the truck (or the truck gone)."""
        return None if self.finished is None else self.finished - self.arrived


class LaneObserver(Protocol):
    """Gets each pass's outcome and timings (the simulator and status reporting use it)."""

    def pass_opened(self, timing: PassTiming) -> None:
        """A vehicle was noticed on the arrival loop and greeted."""

    def pass_decided(self, timing: PassTiming) -> None:
        """A pass's decision was carried out (barrier commanded, or hold/reject shown)."""

    def pass_finished(self, timing: PassTiming) -> None:
        """The pass is over: barrier closed behind it, or the truck left the lane."""


class LaneLink(Protocol):
    """A companion that runs beside the lane: the central link (gatewayd.link.CentralLink)."""

    async def run(self, lane: Lane) -> None:
        """Run until cancelled; must not raise otherwise (the lane would stop with it)."""

    def outbox_changed(self) -> None:
        """The lane wrote to the outbox (a pass, an override, an alert)."""


@dataclass
class Lane:
    """One running lane: config, relay, reading sources, ledger, and the pure core."""

    config: LaneConfig
    relay: RelayIO
    sources: list[ReadingSource]
    display: DisplaySink | None = None
    observer: LaneObserver | None = None
    clock: Callable[[], float] = field(default_factory=LaneClock)
    relay_backoff: Backoff = field(default_factory=lambda: Backoff(initial=0.2, maximum=5.0))
    link: LaneLink | None = None  # the central link; None: the lane works alone

    def __post_init__(self) -> None:
        c = self.config
        profile = c.profile
        devices: dict[ReadingKind, str] = {kind: kind for kind in profile.required}
        for source in self.sources:
            devices[source.kind] = source.name
        settings = LaneSettings(
            lane_id=c.lane.id,
            policy=Policy(
                required=frozenset(profile.required),
                direction=c.lane.direction,
                geofence=tuple(c.geofence.polygon),
                min_confidence=c.decision.min_confidence,
                default_tolerance_kg=c.decision.default_tolerance_kg,
            ),
            keys=release_note.public_keys(c.central.public_keys),
            devices=devices,
            seal_action=profile.seal_action,
            decision_deadline_s=c.timing.decision_deadline_s,
            barrier_timeout_s=c.timing.barrier_timeout_s,
            settle_s=c.timing.settle_s,
            withdraw_s=c.timing.withdraw_s,
            leave_s=c.timing.leave_s,
            ledger_timeout_s=c.timing.ledger_timeout_s,
        )
        self.core = LaneCore(settings, new_pass_id(c.lane.id))
        # unbounded: ``emit`` bounds what may be dropped, and a change of state never is
        self.queue: asyncio.Queue[tuple[Event, float]] = asyncio.Queue()
        self.dropped = 0
        self._idle = asyncio.Event()  # no event is being handled
        self._idle.set()
        self._stopping = False
        self.relay_health = Health("relay")
        self._db_thread = ThreadPoolExecutor(1, thread_name_prefix="ledger")
        self._ledger: Ledger | None = None
        self._timings: dict[str, PassTiming] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._switches: dict[str, bool] = {}
        self.ready = asyncio.Event()
        self._handled = asyncio.Event()  # pulsed after every event the core handled

    # -- events in ---------------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        """Queue an event from any driver (never blocks).

        With ``QUEUE_SIZE`` events waiting, readings and ticks are dropped and counted: they
        repeat, and a flood of them is what the bound is for. A change of state (a loop, the
        arm, a device, an officer's word, the ledger's answer) is always queued: without it the
        core's picture of the lane would stay wrong, and it could lower the arm onto a vehicle
        whose arrival on the safety loop it never heard of.
        """
        if self.queue.qsize() >= QUEUE_SIZE and isinstance(event, Reading | Tick):
            self.dropped += 1
            log.error(
                "event queue full: dropped %s (%d so far)", type(event).__name__, self.dropped
            )
            return
        self.queue.put_nowait((event, time.monotonic()))

    def _on_signal(self, change: SignalChanged) -> None:
        if change.signal in ("arrival", "safety", "exit"):
            self.emit(LoopChanged(change.signal, change.value))
            return
        self._switches[change.signal] = change.value
        if len(self._switches) == 2:
            self.emit(BarrierChanged(_position(self._switches)))

    def _on_relay_state(self, health: Health) -> None:
        if health.state == "up":
            self.emit(DeviceRecovered(RELAY))
        else:
            self._switches.clear()
            self.emit(DeviceFault(RELAY, health.detail))

    # -- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the lane until cancelled; ``LedgerError`` when its ledger cannot be had."""
        ledger_path = Path(self.config.ledger.path)
        with _only_lane_on(ledger_path):
            try:
                self._ledger = await self._db(
                    Ledger, ledger_path, synchronous=self.config.ledger.synchronous
                )
            except sqlite3.Error as exc:
                self._db_thread.shutdown(wait=False)
                raise LedgerError(f"ledger {ledger_path}: {exc}") from None
            await self._run()

    async def _run(self) -> None:
        try:
            plates, containers = await self._db(self.ledger.watchlist)
            self.emit(WatchlistChanged(plates, containers))
            supervisor = Supervisor(
                self.relay_health,
                self.relay.open_device,
                self._on_signal,
                on_state=self._on_relay_state,
                backoff=self.relay_backoff,
            )
            async with asyncio.TaskGroup() as tg:
                tg.create_task(supervisor.run(), name="relay")
                for source in self.sources:
                    tg.create_task(source.run(self.emit), name=f"source:{source.name}")
                tg.create_task(self._tick(), name="ticker")
                tg.create_task(self._dispatch(), name="dispatcher")
                _freeze_startup_heap()
                if self.config.control is not None:
                    from gatewayd import control

                    c = self.config.control
                    served = control.serve(self, c.socket, officers_group=c.officers_group)
                    tg.create_task(served, name="control")
                if self.link is not None:
                    tg.create_task(self.link.run(self), name="link")
                self.ready.set()
        finally:
            for task in list(self._background):
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
            await self._db(self.ledger.close)
            self._db_thread.shutdown(wait=True)

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db_thread, lambda: fn(*args, **kwargs))

    @property
    def ledger(self) -> Ledger:
        """The open ledger (call its methods through the lane, on the ledger thread)."""
        assert self._ledger is not None, "lane not running"
        return self._ledger

    async def in_ledger(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a ledger call on the ledger thread (for the control socket and the simulator)."""
        return await self._db(fn, *args)

    async def commit_pass(self, record: PassRecord) -> tuple[Outcome, tuple[Reason, ...]]:
        """Write a pass off against the ledger (on its thread) and wake the link to send it."""
        result = await self._db(self.ledger.commit_pass, record)
        self._outbox_changed()
        return result

    async def _tick(self) -> None:
        period = self.config.timing.tick_ms / 1000
        while True:
            await asyncio.sleep(period)
            self.emit(Tick())

    async def _dispatch(self) -> None:
        while not self._stopping:
            event, queued_at = await self.queue.get()
            if self._stopping:
                break  # stop() began while this one was awaited: it is not taken
            self._idle.clear()
            try:
                await self._handle(event, queued_at)
            except Exception:  # one bad event must not stop the lane
                # The core refuses to move the barrier on doubt by construction; an error here
                # is a bug, logged loudly, and the lane goes on with the next event.
                log.exception("lane failed handling %s", type(event).__name__)
                self.alert(Alert("INTERNAL_ERROR", f"failed handling {type(event).__name__}"))
            finally:
                self._idle.set()

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Get ready to be cancelled: take no new event, finish the one in hand (a pass being
        written reaches its barrier command: cancelled mid-write, its note was used up and
        its truck never let through), then turn the light red, since nobody will be watching
        the lane. Waits at most ``grace_s`` for the event in hand."""
        self._stopping = True
        try:
            async with asyncio.timeout(grace_s):
                await self._idle.wait()
        except TimeoutError:
            tx = self.core.tx
            log.error(
                "stopping in the middle of %s (phase %s): see to the truck at the lane by hand",
                tx.pass_id if tx else "no pass",
                self.core.phase.value,
            )
        try:
            async with asyncio.timeout(1.0):
                await self.relay.set_light("red")
        except (DriverError, TimeoutError) as exc:
            log.warning("could not turn the light red on stopping: %s", exc or "no answer")

    async def _handle(self, event: Event, queued_at: float, cause: float | None = None) -> None:
        # A decision's latency counts from the reading (or ledger answer, or device fault)
        # that completed the pass; a decision forced by the deadline (a Tick) has none.
        if cause is None and not isinstance(event, Tick):
            cause = queued_at
        if isinstance(event, Tick):
            self._follow_wall_clock()
        commands = self.core.handle(event, self.clock())
        for command in commands:
            try:
                await self._execute(command, cause)
            except Exception:
                # One command failing (a ledger read on a failing disk) must not drop the rest
                # of its batch: a CommitPass after it is what ends the pass.
                log.exception("lane failed carrying out %s", type(command).__name__)
                self.alert(Alert("INTERNAL_ERROR", f"failed carrying out {type(command).__name__}"))
        self._handled.set()
        self._handled = asyncio.Event()

    def _follow_wall_clock(self) -> None:
        """Take a step of the wall clock (time sync) only with no pass and no barrier move
        under way, whose deadlines it would shift."""
        clock = self.clock
        if not isinstance(clock, LaneClock) or self.core.phase is not Phase.IDLE:
            return
        if self.core.expect is not None:
            return
        step = clock.resync()
        if step:
            self.alert(Alert("CLOCK_STEPPED", f"wall clock stepped by {step:+.1f} s; followed"))

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds, checked after each event (bound it with a timeout)."""
        while not condition():
            await self._handled.wait()

    def _decided(self, pass_id: str, outcome: Outcome) -> None:
        timing = self._timings.get(pass_id)
        if timing is None or timing.outcome is not None:
            return
        timing.outcome = outcome
        if timing.decided_from is not None:
            timing.decision_ms = (time.monotonic() - timing.decided_from) * 1000
        if self.observer:
            self.observer.pass_decided(timing)

    # -- commands out ------------------------------------------------------------------------

    async def _execute(self, command: Command, cause: float | None) -> None:
        match command:
            case OpenBarrier():
                if await self._relay(self.relay.set_barrier(True), "lift barrier"):
                    self._decided(command.pass_id, Outcome.RELEASE)
            case CloseBarrier():
                await self._relay(self.relay.set_barrier(False), "lower barrier")
            case StopBarrier():
                await self._relay(self.relay.stop_barrier(), "stop barrier")
            case SetLight():
                await self._relay(self.relay.set_light(command.color), "set light")
            case Display():
                if self.display is not None:
                    self.display.show(command.text)
            case Capture():
                timing = PassTiming(command.pass_id, time.monotonic())
                self._timings[command.pass_id] = timing
                if self.observer:
                    self.observer.pass_opened(timing)
                for source in self.sources:
                    if isinstance(source, Triggered):
                        source.trigger(command.pass_id)
            case LoadDocuments():
                docs = await self._db(self.ledger.load_note, command.note_id)
                await self._handle(DocumentsLoaded(command.note_id, docs), 0.0, cause)
            case CommitPass():
                self._timings_start(command.record, cause)
                outcome, reasons = await self._ledger_write(
                    command.record, self.commit_pass(command.record)
                )
                await self._committed(command.record.pass_id, outcome, reasons, cause)
            case AuditOverride():
                self._timings_start(command.record, cause)
                outcome, reasons = await self._ledger_write(
                    command.record, self._db(self.ledger.audit_override, command)
                )
                self._outbox_changed()
                await self._committed(command.pass_id, outcome, reasons, cause)
            case PassClosed():
                for source in self.sources:
                    if isinstance(source, PassAware):
                        source.pass_closed(command.pass_id)
                self._spawn(self._db(self.ledger.checkpoint), "checkpoint")
                closed = self._timings.pop(command.pass_id, None)
                if closed is not None:
                    closed.finished = time.monotonic()
                    if self.observer:
                        self.observer.pass_finished(closed)
            case UnlockSeal() | ArmSeal():
                self._spawn(self._seal(command), f"seal:{command.seal_id}")
            case Alert():
                self.alert(command)

    def _timings_start(self, record: PassRecord, cause: float | None) -> None:
        timing = self._timings.get(record.pass_id)
        if timing is not None:
            timing.record, timing.outcome, timing.decided_from = record, None, cause

    async def _committed(
        self, pass_id: str, outcome: Outcome, reasons: tuple[Reason, ...], cause: float | None
    ) -> None:
        timing = self._timings.get(pass_id)
        if timing is not None and timing.record is not None:
            timing.record = replace(timing.record, outcome=outcome, reasons=reasons)
        await self._handle(PassCommitted(pass_id, outcome, reasons), 0.0, cause)
        if outcome is not Outcome.RELEASE:
            self._decided(pass_id, outcome)

    async def _ledger_write(
        self, record: PassRecord, write: Awaitable[tuple[Outcome, tuple[Reason, ...]]]
    ) -> tuple[Outcome, tuple[Reason, ...]]:
        """A pass written to the ledger, or, when the ledger fails (disk full, I/O error), a
        hold: the core must hear an answer, or it would wait for one forever."""
        try:
            return await write
        except Exception:
            # the record goes to the log whole: the ledger could not keep it
            log.exception("ledger could not write pass %s: %r", record.pass_id, record)
            return Outcome.HOLD, (*record.reasons, Reason(Code.DEVICE_FAULT, "ledger"))

    async def _relay(self, action: Any, what: str) -> bool:
        try:
            await action
        except DriverError as exc:
            log.warning("could not %s: %s", what, exc)
            return False
        return True

    async def _seal(self, command: UnlockSeal | ArmSeal) -> None:
        actuator = next((s for s in self.sources if isinstance(s, SealActuator)), None)
        if actuator is None:
            return
        try:
            if isinstance(command, UnlockSeal):
                await actuator.unlock(command.seal_id)
            else:
                await actuator.arm(command.seal_id)
        except Exception as exc:
            self.alert(Alert("SEAL_ACTION_FAILED", f"{command.seal_id}: {exc}"))

    def alert(self, alert: Alert) -> None:
        """Log an alert and queue it for central through the outbox (in order with passes)."""
        # holds and rejects are the lane doing its job; everything else wants attention
        level = logging.INFO if alert.kind in ("HOLD", "REJECT") else logging.WARNING
        log.log(
            level,
            "alert %s: %s%s",
            alert.kind,
            alert.message,
            f" [{alert.pass_id}]" if alert.pass_id else "",
        )
        self._alert_to_outbox(alert)

    # -- to central (through the outbox; sent by the link when there is one) -----------------

    def _outbox_changed(self) -> None:
        if self.link is not None:
            self.link.outbox_changed()

    def _alert_to_outbox(self, alert: Alert) -> None:
        if self._ledger is None:
            return
        key, payload = alert_row(alert, self.config.lane.id, self.clock())
        # queued on the ledger thread now, so alerts and passes keep their order in the outbox
        try:
            written = asyncio.get_running_loop().run_in_executor(
                self._db_thread, self._ledger.enqueue, "alert", key, payload
            )
        except RuntimeError:  # the lane is shutting down: the log line above has it
            return
        self._spawn(self._alert_written(written, alert.kind), f"alert:{alert.kind}")

    async def _alert_written(self, written: asyncio.Future[None], kind: str) -> None:
        try:
            await written
        except Exception:
            log.exception("could not queue alert %s for central", kind)
            return
        self._outbox_changed()

    def _spawn(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


class LedgerError(ValueError):
    """The lane's ledger cannot be opened, or another lane process has it."""


@contextlib.contextmanager
def _only_lane_on(ledger: Path) -> Iterator[None]:
    """Hold ``LEDGER.lock`` for as long as the lane runs: a second lane on the same ledger
    (started twice, or two configs naming one file) would drive the same relay and write the
    same outbox. Taken before any device or the ledger is opened."""
    lock_path = ledger.with_name(ledger.name + ".lock")
    try:
        ledger.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o640)
    except OSError as exc:
        raise LedgerError(f"ledger {ledger}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LedgerError(
                f"ledger {ledger} is in use by another lane process (is this lane started twice?)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # and with it the lock


def _position(switches: dict[str, bool]) -> BarrierPosition:
    is_open, is_closed = switches.get("barrier_open"), switches.get("barrier_closed")
    if is_open and not is_closed:
        return "open"
    if is_closed and not is_open:
        return "closed"
    if not is_open and not is_closed:
        return "moving"
    return "unknown"  # both limit switches at once: wiring fault
