"""A simulated e-seal reader answering our protocol (docs/protocols/eseal.md) over a pty.

The world puts a seal in the field with ``set_seal(id, state, battery)`` (or takes it away),
tampers with it, and reads ``executed`` to see which unlock / arm commands the lane sent. The
reader checks each command's MAC against the seal's current challenge and the key it was
built with, exactly as a real reader with the lane's key would.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from drivers.codec import Rejected
from drivers.eseal import (
    BROADCAST,
    CHALLENGE_SIZE,
    COMMANDS,
    Command,
    EventKind,
    FrameDecoder,
    Request,
    SealEvent,
    SealLog,
    SealReading,
    SealState,
    Status,
    encode_frame,
    info_payload,
    mac_ok,
    parse_request,
    read_log_payload,
    read_seal_payload,
    state_payload,
    status_payload,
)
from sim.ptyport import PtyPort


@dataclass
class SimSeal:
    """A seal as the simulated reader sees it."""

    seal_id: str
    state: SealState
    battery_pct: int
    events: list[SealEvent] = field(default_factory=list)
    challenge: bytes = bytes(CHALLENGE_SIZE)

    def reading(self) -> SealReading:
        """What a ``read_seal`` reports."""
        return SealReading(self.seal_id, self.state, self.battery_pct, len(self.events))


class EsealReaderSim:
    """An e-seal reader on the master side of a pty; the driver opens ``path``."""

    def __init__(
        self,
        key: bytes,
        *,
        address: int = 1,
        model: str = "SIM-ESR1",
        firmware: tuple[int, int] = (1, 0),
        reply_delay_s: float = 0.0,
        seed: int = 0,
        link: str | Path | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.address = address
        self.model = model
        self.firmware = firmware
        self.reply_delay_s = reply_delay_s
        self._rng = random.Random(seed)
        self._wall_clock = wall_clock
        self.port = PtyPort(self._on_data, link=link)
        self._decoder = FrameDecoder()
        self.seal: SimSeal | None = None
        self._muted = False
        # a lock that does not move: the seal answers "ok" with the state it stayed in
        self.jammed = False
        self._radio_failures = 0
        self.executed: list[tuple[Command, str, Status]] = []  # unlock/arm: what and outcome
        # (when, what, request number)
        self.received: deque[tuple[float, Command | None, int]] = deque(maxlen=1000)
        self.requests = 0
        self.rejected = 0

    # -- lifecycle

    @property
    def path(self) -> str:
        """The serial port path the driver opens."""
        return self.port.path

    async def start(self) -> None:
        """Plug in."""
        self.port.open()

    async def stop(self) -> None:
        """Remove the port."""
        self.port.close()

    async def __aenter__(self) -> EsealReaderSim:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- what the world sets

    def set_seal(self, seal_id: str, state: SealState = "sealed", battery_pct: int = 90) -> None:
        """Put a seal in the field (replacing any other)."""
        self.seal = SimSeal(seal_id, state, battery_pct, challenge=self._challenge())

    def remove_seal(self) -> None:
        """No seal in the field."""
        self.seal = None

    def tamper(self) -> None:
        """The seal in the field is forced open: it says so and logs it."""
        if self.seal is not None:
            self.seal.state = "tampered"
            self._log("tampered")

    def fail_radio(self, count: int) -> None:
        """The next ``count`` seal operations get ``seal_no_reply`` (a weak radio link)."""
        self._radio_failures = count

    def mute(self, on: bool) -> None:
        """Stop answering (the port stays open), or answer again."""
        self._muted = on

    def unplug(self) -> None:
        """Pull the cable."""
        self.port.unplug()
        self._decoder = FrameDecoder()

    def replug(self) -> None:
        """Plug the cable back in."""
        self.port.replug()

    def inject(self, data: bytes) -> None:
        """Put raw bytes on the line (noise, a broken frame)."""
        self.port.write(data)

    # -- the reader

    def _challenge(self) -> bytes:
        return self._rng.randbytes(CHALLENGE_SIZE)

    def _log(self, kind: EventKind) -> None:
        if self.seal is not None:
            self.seal.events.append(SealEvent(kind, int(self._wall_clock())))

    def _on_data(self, data: bytes) -> None:
        for item in self._decoder.feed(data):
            if isinstance(item, Rejected):
                self.rejected += 1  # a reader stays silent on a bad frame; the host retries
                continue
            if item.addr not in (self.address, BROADCAST) or item.cmd & 0x80:
                continue
            self.requests += 1
            self.received.append((time.monotonic(), COMMANDS.get(item.cmd), item.seq))
            if self._muted:
                continue
            if item.cmd not in COMMANDS:
                payload = status_payload("unknown_command")
            else:
                payload = self._answer(parse_request(item))
            reply = encode_frame(self.address, item.seq, item.cmd | 0x80, payload)
            if self.reply_delay_s > 0:
                asyncio.get_running_loop().call_later(self.reply_delay_s, self.port.write, reply)
            else:
                self.port.write(reply)

    def _answer(self, request: Request | Rejected) -> bytes:
        if isinstance(request, Rejected):
            return status_payload("bad_request")
        command = request.command
        if command == "info":
            return info_payload(self.firmware, self.model)
        seal = self.seal
        if seal is None:
            return status_payload("no_seal")
        if self._radio_failures > 0:
            self._radio_failures -= 1
            return status_payload("seal_no_reply")
        if command == "read_seal":
            return read_seal_payload(seal.reading(), seal.challenge)
        if command == "read_log":
            total = len(seal.events)
            if request.start > total:
                return status_payload("bad_request")
            page = seal.events[request.start : request.start + request.max_count]
            return read_log_payload(SealLog(seal.seal_id, total, request.start, tuple(page)))
        if command not in ("unlock", "arm") or request.seal_id is None:
            return status_payload("bad_request")
        status = self._set_state(seal, command, request.seal_id, request.mac or b"")
        self.executed.append((command, request.seal_id, status))
        if status != "ok":
            return status_payload(status)
        return state_payload(seal.state)

    def _set_state(
        self, seal: SimSeal, command: Literal["unlock", "arm"], seal_id: str, mac: bytes
    ) -> Status:
        if seal_id != seal.seal_id:
            return "wrong_seal"
        challenge, seal.challenge = seal.challenge, self._challenge()  # one use per challenge
        if not mac_ok(self.key, command, seal_id, challenge, mac):
            return "auth_failed"
        if seal.state == "tampered":
            return "bad_state"
        wanted: SealState = "opened" if command == "unlock" else "sealed"
        if seal.state != wanted and not self.jammed:
            seal.state = wanted
            self._log("unlocked" if command == "unlock" else "armed")
        return "ok"
