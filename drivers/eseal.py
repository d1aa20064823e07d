"""E-seal reader on a serial line: our framed binary protocol, and a polling client.

The protocol is defined in docs/protocols/eseal.md: ``A5 LEN ADDR SEQ CMD PAYLOAD CRC16``,
CRC-16/MODBUS low byte first, one request outstanding at a time, the reader echoing ``SEQ``.
The host reads the seal in the field (id, state, battery, a fresh challenge), its event log,
and unlocks (entry) or arms (exit) it with an 8-byte MAC over the challenge, keyed per seal
from the lane's master key, so no key crosses the line and no command can be replayed.

>>> frame = encode_frame(1, 7, CMD_CODES["read_seal"])
>>> frame.hex()
'a503010710525c'
>>> dec = MessageDecoder("requests")
>>> dec.feed(b"noise" + frame[:4])  # junk is reported with the next good frame
[]
>>> [getattr(m, "command", m) for m in dec.feed(frame[4:])]
[Rejected(reason='junk before frame start', raw=b'noise'), 'read_seal']
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import logging
import re
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, TypeVar, cast

from pydantic import Field, SecretStr, field_validator

from drivers.capture import print_capture
from drivers.codec import Rejected
from drivers.framing import CheckResult, FrameScanner
from drivers.serial_link import READ_SIZE, SerialPortSettings, open_serial, port_supervisor
from drivers.supervisor import DriverError, Health, Supervisor

log = logging.getLogger(__name__)

SOF = 0xA5
MAX_PAYLOAD = 128
MIN_LEN, MAX_LEN = 3, 3 + MAX_PAYLOAD  # LEN counts ADDR SEQ CMD PAYLOAD
PROTOCOL_VERSION = 1
BROADCAST = 0xFF
CHALLENGE_SIZE = 8
MAC_SIZE = 8
MAX_LOG_ENTRIES = 16

Command = Literal["info", "read_seal", "read_log", "unlock", "arm"]
Status = Literal[
    "ok",
    "no_seal",
    "wrong_seal",
    "auth_failed",
    "bad_state",
    "bad_request",
    "unknown_command",
    "seal_no_reply",
    "busy",
]
SealState = Literal["sealed", "opened", "tampered"]
EventKind = Literal["armed", "unlocked", "tampered", "battery_low"]

CMD_CODES: dict[Command, int] = {
    "info": 0x01,
    "read_seal": 0x10,
    "read_log": 0x11,
    "unlock": 0x20,
    "arm": 0x21,
}
STATUS_CODES: dict[Status, int] = {
    "ok": 0x00,
    "no_seal": 0x01,
    "wrong_seal": 0x02,
    "auth_failed": 0x03,
    "bad_state": 0x04,
    "bad_request": 0x05,
    "unknown_command": 0x06,
    "seal_no_reply": 0x07,
    "busy": 0x08,
}
STATE_CODES: dict[SealState, int] = {"sealed": 0x01, "opened": 0x02, "tampered": 0x03}
EVENT_CODES: dict[EventKind, int] = {
    "armed": 0x01,
    "unlocked": 0x02,
    "tampered": 0x03,
    "battery_low": 0x04,
}
K = TypeVar("K")


def _invert(codes: dict[K, int]) -> dict[int, K]:
    return {code: name for name, code in codes.items()}


COMMANDS = _invert(CMD_CODES)
STATUSES = _invert(STATUS_CODES)
STATES = _invert(STATE_CODES)
EVENTS = _invert(EVENT_CODES)

SEAL_ID = re.compile(rb"[0-9A-Z-]{1,32}")
MODEL = re.compile(rb"[\x20-\x7e]{0,32}")


# --------------------------------------------------------------------------- CRC and frames


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()


def crc16_modbus(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/MODBUS (poly 0x8005 reflected, init 0xFFFF, no final XOR).

    >>> hex(crc16_modbus(b"123456789"))
    '0x4b37'
    """
    crc = 0xFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


@dataclass(frozen=True)
class Frame:
    """One frame that passed its CRC: header fields and payload."""

    addr: int
    seq: int
    cmd: int  # bit 7 set: a response from the reader
    payload: bytes
    raw: bytes


def encode_frame(addr: int, seq: int, cmd: int, payload: bytes = b"") -> bytes:
    """``A5 LEN ADDR SEQ CMD PAYLOAD CRC_LO CRC_HI`` (CRC over LEN..PAYLOAD)."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload longer than {MAX_PAYLOAD} bytes")
    body = bytes([3 + len(payload), addr & 0xFF, seq & 0xFF, cmd & 0xFF]) + payload
    crc = crc16_modbus(body)
    return bytes([SOF]) + body + bytes([crc & 0xFF, crc >> 8])


def _check_frame(buf: bytearray) -> CheckResult[Frame]:
    if len(buf) < 2:
        return None
    length = buf[1]
    if not MIN_LEN <= length <= MAX_LEN:
        return "length byte out of range"
    total = length + 4
    if len(buf) < total:
        return None
    view = memoryview(buf)[1 : total - 2]
    crc = crc16_modbus(view)
    view.release()
    if buf[total - 2] != crc & 0xFF or buf[total - 1] != crc >> 8:
        return "bad CRC"
    raw = bytes(buf[:total])
    return total, Frame(addr=raw[2], seq=raw[3], cmd=raw[4], payload=raw[5:-2], raw=raw)


class FrameDecoder:
    """Frames from a byte stream, resynchronising on junk, bad lengths and bad CRCs."""

    def __init__(self) -> None:
        self._scanner: FrameScanner[Frame] = FrameScanner(bytes([SOF]), _check_frame)

    @property
    def pending(self) -> bool:
        """Bytes are held back (a frame may be arriving)."""
        return bool(self._scanner.pending)

    def feed(self, chunk: bytes) -> list[Frame | Rejected]:
        """Decode what this chunk completes."""
        return self._scanner.feed(chunk)

    def resync(self) -> list[Frame | Rejected]:
        """The line went idle mid-frame: give up on that frame start and rescan."""
        return self._scanner.resync()

    def flush(self) -> list[Frame | Rejected]:
        """End of input: report what is still held."""
        return self._scanner.flush()


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class SealReading:
    """The seal in the reader's field."""

    seal_id: str
    state: SealState
    battery_pct: int
    events: int  # entries in the seal's event log

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view."""
        return {
            "seal_id": self.seal_id,
            "state": self.state,
            "battery_pct": self.battery_pct,
            "events": self.events,
        }


@dataclass(frozen=True)
class NoSeal:
    """No seal in the reader's field."""

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view."""
        return {"seal_id": None}


@dataclass(frozen=True)
class SealEvent:
    """One entry of a seal's event log (time by the seal's clock, seconds since the epoch)."""

    kind: EventKind
    time: int


@dataclass(frozen=True)
class SealLog:
    """A page of a seal's event log: ``events`` are entries ``start`` .. of ``total``."""

    seal_id: str
    total: int
    start: int
    events: tuple[SealEvent, ...]


@dataclass(frozen=True)
class ReaderInfo:
    """What a reader says about itself."""

    protocol: int
    firmware: str
    model: str


@dataclass(frozen=True)
class Request:
    """A host-to-reader message."""

    command: Command
    addr: int
    seq: int
    seal_id: str | None = None  # unlock, arm
    mac: bytes | None = None  # unlock, arm
    start: int = 0  # read_log
    max_count: int = 0  # read_log
    raw: bytes = b""

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view."""
        out: dict[str, object] = {
            "dir": "request",
            "command": self.command,
            "addr": self.addr,
            "seq": self.seq,
        }
        if self.seal_id is not None:
            out["seal_id"] = self.seal_id
        if self.mac is not None:
            out["mac"] = self.mac.hex()
        if self.command == "read_log":
            out |= {"start": self.start, "max_count": self.max_count}
        return out


@dataclass(frozen=True)
class Response:
    """A reader-to-host message: a status, and on success what the command returns."""

    command: Command
    addr: int
    seq: int
    status: Status
    info: ReaderInfo | None = None  # info
    seal: SealReading | None = None  # read_seal
    challenge: bytes | None = None  # read_seal
    log: SealLog | None = None  # read_log
    state: SealState | None = None  # unlock, arm
    raw: bytes = b""

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view."""
        out: dict[str, object] = {
            "dir": "response",
            "command": self.command,
            "addr": self.addr,
            "seq": self.seq,
            "status": self.status,
        }
        if self.info is not None:
            out |= {
                "protocol": self.info.protocol,
                "firmware": self.info.firmware,
                "model": self.info.model,
            }
        if self.seal is not None:
            out |= self.seal.as_dict()
        if self.challenge is not None:
            out["challenge"] = self.challenge.hex()
        if self.log is not None:
            out |= {
                "seal_id": self.log.seal_id,
                "total": self.log.total,
                "start": self.log.start,
                "log": [{"event": e.kind, "time": e.time} for e in self.log.events],
            }
        if self.state is not None:
            out["state"] = self.state
        return out


class _Malformed(Exception):
    pass


class _Cursor:
    """Reads fields off a payload; any shortfall or bad value is ``_Malformed``."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, count: int) -> bytes:
        if self.at + count > len(self.data):
            raise _Malformed("payload too short")
        chunk = self.data[self.at : self.at + count]
        self.at += count
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def seal_id(self) -> str:
        raw = self.take(self.u8())
        if not SEAL_ID.fullmatch(raw):
            raise _Malformed("seal id is not 1-32 of 0-9 A-Z -")
        return raw.decode("ascii")

    def end(self) -> None:
        if self.at != len(self.data):
            raise _Malformed("payload longer than its fields")


def check_seal_id(seal_id: str) -> None:
    """Raise ``ValueError`` unless ``seal_id`` is one the protocol carries (1-32 of 0-9 A-Z -)."""
    _seal_id_field(seal_id)


def _seal_id_field(seal_id: str) -> bytes:
    raw = seal_id.encode("ascii", "replace")
    if not SEAL_ID.fullmatch(raw):
        raise ValueError(f"seal id {seal_id!r} is not 1-32 of 0-9 A-Z -")
    return bytes([len(raw)]) + raw


def parse_request(frame: Frame) -> Request | Rejected:
    """A request frame as a ``Request``, or why not."""
    if frame.cmd & 0x80:
        return Rejected("a response where a request was expected", frame.raw)
    command = COMMANDS.get(frame.cmd)
    if command is None:
        return Rejected(f"unknown command 0x{frame.cmd:02x}", frame.raw)
    cur = _Cursor(frame.payload)
    try:
        seal_id = mac = None
        start = max_count = 0
        if command == "read_log":
            start, max_count = cur.u16(), cur.u8()
            if not 1 <= max_count <= MAX_LOG_ENTRIES:
                raise _Malformed(f"read_log asks for 1-{MAX_LOG_ENTRIES} entries")
        elif command in ("unlock", "arm"):
            seal_id, mac = cur.seal_id(), cur.take(MAC_SIZE)
        cur.end()
    except _Malformed as exc:
        return Rejected(f"{command} request: {exc}", frame.raw)
    return Request(command, frame.addr, frame.seq, seal_id, mac, start, max_count, frame.raw)


def parse_response(frame: Frame) -> Response | Rejected:
    """A response frame as a ``Response``, or why not."""
    if not frame.cmd & 0x80:
        return Rejected("a request where a response was expected", frame.raw)
    command = COMMANDS.get(frame.cmd & 0x7F)
    if command is None:
        return Rejected(f"unknown command 0x{frame.cmd & 0x7F:02x}", frame.raw)
    cur = _Cursor(frame.payload)
    try:
        status = STATUSES.get(cur.u8())
        if status is None:
            raise _Malformed("unknown status code")
        response = Response(command, frame.addr, frame.seq, status, raw=frame.raw)
        if status == "ok":
            response = _with_ok_fields(response, cur)
        cur.end()
    except _Malformed as exc:
        return Rejected(f"{command} response: {exc}", frame.raw)
    return response


def _state(cur: _Cursor) -> SealState:
    state = STATES.get(cur.u8())
    if state is None:
        raise _Malformed("unknown seal state")
    return state


def _with_ok_fields(response: Response, cur: _Cursor) -> Response:
    command = response.command
    if command == "info":
        protocol, major, minor = cur.u8(), cur.u8(), cur.u8()
        model = cur.take(cur.u8())
        if not MODEL.fullmatch(model):
            raise _Malformed("model is not printable ASCII")
        info = ReaderInfo(protocol, f"{major}.{minor}", model.decode("ascii"))
        return replace(response, info=info)
    if command == "read_seal":
        seal_id = cur.seal_id()
        state = _state(cur)
        battery = cur.u8()
        if battery > 100:
            raise _Malformed("battery above 100 %")
        seal = SealReading(seal_id, state, battery, cur.u16())
        return replace(response, seal=seal, challenge=cur.take(CHALLENGE_SIZE))
    if command == "read_log":
        seal_id = cur.seal_id()
        total, start, count = cur.u16(), cur.u16(), cur.u8()
        if count > MAX_LOG_ENTRIES or start + count > total:
            raise _Malformed("log page outside the log")
        events = []
        for _ in range(count):
            kind = EVENTS.get(cur.u8())
            if kind is None:
                raise _Malformed("unknown event kind")
            events.append(SealEvent(kind, int.from_bytes(cur.take(4), "big")))
        return replace(response, log=SealLog(seal_id, total, start, tuple(events)))
    return replace(response, state=_state(cur))  # unlock, arm


Direction = Literal["requests", "responses", "both"]


class MessageDecoder:
    """Requests and/or responses from a byte stream (frames that fail to parse are rejects)."""

    def __init__(self, direction: Direction = "both") -> None:
        self.direction = direction
        self._frames = FrameDecoder()

    @property
    def pending(self) -> bool:
        """Bytes are held back (a frame may be arriving)."""
        return self._frames.pending

    def _parse(self, items: list[Frame | Rejected]) -> list[Request | Response | Rejected]:
        out: list[Request | Response | Rejected] = []
        for item in items:
            if isinstance(item, Rejected):
                out.append(item)
            elif self.direction == "requests" or (self.direction == "both" and not item.cmd & 0x80):
                out.append(parse_request(item))
            else:
                out.append(parse_response(item))
        return out

    def feed(self, chunk: bytes) -> list[Request | Response | Rejected]:
        """Decode what this chunk completes."""
        return self._parse(self._frames.feed(chunk))

    def resync(self) -> list[Request | Response | Rejected]:
        """The line went idle mid-frame: give up on that frame start and rescan."""
        return self._parse(self._frames.resync())

    def flush(self) -> list[Request | Response | Rejected]:
        """End of input: report what is still held."""
        return self._parse(self._frames.flush())


# --------------------------------------------------------------------------- encoders


def info_payload(firmware: tuple[int, int], model: str) -> bytes:
    """OK payload of an ``info`` response (status byte included)."""
    raw = model.encode("ascii")
    return bytes([0, PROTOCOL_VERSION, *firmware, len(raw)]) + raw


def read_seal_payload(seal: SealReading, challenge: bytes) -> bytes:
    """OK payload of a ``read_seal`` response."""
    return (
        b"\x00"
        + _seal_id_field(seal.seal_id)
        + bytes([STATE_CODES[seal.state], seal.battery_pct])
        + seal.events.to_bytes(2, "big")
        + challenge
    )


def read_log_payload(log_page: SealLog) -> bytes:
    """OK payload of a ``read_log`` response."""
    out = (
        b"\x00"
        + _seal_id_field(log_page.seal_id)
        + log_page.total.to_bytes(2, "big")
        + log_page.start.to_bytes(2, "big")
        + bytes([len(log_page.events)])
    )
    for event in log_page.events:
        out += bytes([EVENT_CODES[event.kind]]) + event.time.to_bytes(4, "big")
    return out


def state_payload(state: SealState) -> bytes:
    """OK payload of an ``unlock`` / ``arm`` response."""
    return bytes([0, STATE_CODES[state]])


def status_payload(status: Status) -> bytes:
    """Payload of a refusal (any status but ok)."""
    return bytes([STATUS_CODES[status]])


def set_state_payload(seal_id: str, mac: bytes) -> bytes:
    """Payload of an ``unlock`` / ``arm`` request."""
    if len(mac) != MAC_SIZE:
        raise ValueError(f"a MAC is {MAC_SIZE} bytes")
    return _seal_id_field(seal_id) + mac


def read_log_request_payload(start: int, max_count: int) -> bytes:
    """Payload of a ``read_log`` request."""
    return start.to_bytes(2, "big") + bytes([max_count])


# --------------------------------------------------------------------------- keys


def seal_key(master_key: bytes, seal_id: str) -> bytes:
    """The seal's own key, derived from the lane's master key (one seal leaks only itself)."""
    return hmac.new(master_key, b"ESK1" + seal_id.encode("ascii"), hashlib.sha256).digest()


def command_mac(
    master_key: bytes, command: Literal["unlock", "arm"], seal_id: str, challenge: bytes
) -> bytes:
    """The 8-byte MAC that authorises ``command`` on ``seal_id`` for this challenge only.

    >>> command_mac(bytes(16), "unlock", "CN123", bytes(8)).hex()
    'aa8dffbe9662d68e'
    """
    message = b"ESL1" + bytes([CMD_CODES[command]]) + _seal_id_field(seal_id) + challenge
    return hmac.new(seal_key(master_key, seal_id), message, hashlib.sha256).digest()[:MAC_SIZE]


def mac_ok(
    master_key: bytes,
    command: Literal["unlock", "arm"],
    seal_id: str,
    challenge: bytes,
    mac: bytes,
) -> bool:
    """Constant-time check of a command's MAC."""
    return hmac.compare_digest(command_mac(master_key, command, seal_id, challenge), mac)


# --------------------------------------------------------------------------- settings


class EsealSettings(SerialPortSettings):
    """An e-seal reader on a serial line."""

    baudrate: int = Field(default=115200, gt=0, description="Line speed in bits per second")
    address: int = Field(
        default=1, ge=1, le=255, description="Reader address (255: whichever reader answers)"
    )
    key: SecretStr = Field(
        description="Master key for unlock/arm MACs, hex (16 to 32 bytes); per-seal keys are "
        "derived from it"
    )
    poll_s: float = Field(
        default=0.25, gt=0, description="How often the field is read when idle, seconds"
    )
    response_timeout_s: float = Field(
        default=0.3, gt=0, description="Longest wait for the reader's answer to one request"
    )
    idle_gap_s: float = Field(
        default=0.05,
        gt=0,
        description="Line silence that ends a partial frame (it is dropped and rescanned)",
    )
    max_missed: int = Field(
        default=3, ge=1, description="Unanswered requests in a row that mark the reader down"
    )
    command_attempts: int = Field(
        default=2,
        ge=1,
        description="Tries of an unlock/arm that got no answer (they are safe "
        "to repeat: the reader confirms a seal already in the wanted state)",
    )
    command_timeout_s: float = Field(
        default=3.0, gt=0, description="Longest an unlock/arm/read_log call waits in all"
    )

    @field_validator("key")
    @classmethod
    def _key_hex(cls, value: SecretStr) -> SecretStr:
        try:
            raw = bytes.fromhex(value.get_secret_value())
        except ValueError:
            raise ValueError("key must be hex digits") from None
        if not 16 <= len(raw) <= 32:
            raise ValueError("key must be 16 to 32 bytes (32 to 64 hex digits)")
        return value

    def key_bytes(self) -> bytes:
        """The master key."""
        return bytes.fromhex(self.key.get_secret_value())


# --------------------------------------------------------------------------- client


class EsealError(Exception):
    """An unlock, arm or log read did not happen."""


class EsealUnavailable(EsealError):
    """The reader is down, did not answer, or has too many commands waiting."""


class EsealRefused(EsealError):
    """The reader answered and refused; ``status`` says why (``wrong_seal``, ``auth_failed``...)."""

    def __init__(self, status: Status | str, message: str = "") -> None:
        super().__init__(f"{status}: {message}" if message else status)
        self.status = status


class _NoAnswer(Exception):
    pass


EsealReaderReading = SealReading | NoSeal | Rejected

_T = TypeVar("_T")
# what a seal reports after each command done (docs/protocols/eseal.md)
_AFTER: dict[Literal["unlock", "arm"], SealState] = {"unlock": "opened", "arm": "sealed"}


@dataclass
class _Job:
    action: Callable[[], Awaitable[object]]
    future: asyncio.Future[object]


MAX_WAITING = 4  # lane commands waiting for the line; more fail at once as "busy"
MAX_OUT = 64  # readings not yet taken by readings(); past this, rejects go first (_emit)


class EsealConnection:
    """One open reader line (a supervisor ``Device``).

    One task owns the line: it sends one request at a time and waits for its answer. Lane
    commands (unlock, arm, read_log) go into a short queue that the owner takes from before
    every poll, so a command waits at most for the exchange already in flight (one response
    timeout), never behind polls: polls are not queued, the owner polls only when no command
    is waiting. ``readings()`` yields the seal in the field each time it changes.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        settings: EsealSettings,
        clock: Callable[[], float] = time.monotonic,
        *,
        last_seq: int = 0,
    ) -> None:
        self._reader, self._writer = reader, writer
        self.settings = settings
        self._clock = clock
        self._key = settings.key_bytes()
        self._decoder = MessageDecoder("responses")
        self._inbox: deque[Response | Rejected] = deque()
        self._out: deque[EsealReaderReading] = deque()
        self._out_ready = asyncio.Event()
        self._jobs: deque[_Job] = deque()
        self._wake = asyncio.Event()
        # request numbers go on from the last connection's: an answer from before a reconnect
        # (still in a serial server's buffer, or late) can never match a request after it
        self._seq = last_seq & 0xFF
        self._missed = 0
        self._last: SealReading | NoSeal | None = None
        self._task: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._closed = False
        self.info: ReaderInfo | None = None

    # -- lifecycle

    async def start(self) -> None:
        """Greet the reader (``info``) and start the owner task; raises when it never answers."""
        while True:
            try:
                response = await self._exchange("info")
                break
            except _NoAnswer:
                continue
        if response.status != "ok" or response.info is None:
            raise DriverError(f"reader refused info: {response.status}")
        if response.info.protocol != PROTOCOL_VERSION:
            raise DriverError(f"reader speaks protocol {response.info.protocol}, not 1")
        self.info = response.info
        self._task = asyncio.create_task(self._own(), name="eseal-line-owner")

    async def stop(self) -> None:
        """Stop the owner task; commands still waiting fail as unavailable."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._fail_jobs(EsealUnavailable("e-seal reader connection closed"))

    @property
    def alive(self) -> bool:
        """The line is open and its owner task running."""
        return not self._closed and self._failure is None and self._task is not None

    # -- what the supervisor and the lane call

    async def readings(self) -> AsyncIterator[EsealReaderReading]:
        """The seal in the field on every change (and rejected frames); raises on failure."""
        while True:
            while self._out:
                yield self._out.popleft()
            if self._failure is not None:
                raise self._failure
            if self._closed:
                return
            self._out_ready.clear()
            await self._out_ready.wait()

    async def unlock(self, seal_id: str) -> SealState:
        """Unlock ``seal_id`` (entry); returns its new state or raises ``EsealError``."""
        _seal_id_field(seal_id)
        return await self._submit(lambda: self._set_state("unlock", seal_id))

    async def arm(self, seal_id: str) -> SealState:
        """Arm ``seal_id`` (exit); returns its new state or raises ``EsealError``."""
        _seal_id_field(seal_id)
        return await self._submit(lambda: self._set_state("arm", seal_id))

    async def read_log(self, start: int = 0, max_count: int = MAX_LOG_ENTRIES) -> SealLog:
        """One page of the event log of the seal in the field."""
        if not 1 <= max_count <= MAX_LOG_ENTRIES or not 0 <= start <= 0xFFFF:
            raise ValueError(f"read 1-{MAX_LOG_ENTRIES} entries from 0-65535")
        return await self._submit(lambda: self._read_log(start, max_count))

    async def _submit(self, action: Callable[[], Awaitable[_T]]) -> _T:
        if not self.alive:
            raise EsealUnavailable("e-seal reader is down")
        if len(self._jobs) >= MAX_WAITING:
            raise EsealUnavailable("e-seal reader busy: too many commands waiting")
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._jobs.append(_Job(action, future))
        self._wake.set()
        try:
            async with asyncio.timeout(self.settings.command_timeout_s):
                result = await future  # cancelled on timeout: the owner then skips it
        except TimeoutError:
            raise EsealUnavailable(
                f"no result within {self.settings.command_timeout_s:g} s"
            ) from None
        return cast(_T, result)

    # -- the owner task

    async def _own(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except (OSError, TimeoutError, EOFError, DriverError) as exc:
            self._failure = exc
        except Exception as exc:  # a bug must take the line down, not the lane
            log.exception("e-seal line owner failed")
            self._failure = DriverError(f"e-seal line owner failed: {exc!r}")
        finally:
            self._fail_jobs(EsealUnavailable(f"e-seal reader down: {self._failure or 'closed'}"))
            self._out_ready.set()

    async def _run(self) -> None:
        next_poll = self._clock()
        while True:
            if self._jobs:
                job = self._jobs[0]
                if not job.future.done():
                    try:
                        result = await job.action()
                    except EsealError as exc:
                        if not job.future.done():
                            job.future.set_exception(exc)
                    else:
                        if not job.future.done():
                            job.future.set_result(result)
                self._jobs.popleft()
                continue
            delay = next_poll - self._clock()
            if delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                continue
            next_poll = self._clock() + self.settings.poll_s
            with contextlib.suppress(_NoAnswer):
                self._observe(await self._exchange("read_seal"))

    def _fail_jobs(self, exc: EsealError) -> None:
        while self._jobs:
            job = self._jobs.popleft()
            if not job.future.done():
                job.future.set_exception(exc)
                job.future.exception()  # retrieved: a caller that gave up is not an error

    @property
    def last_seq(self) -> int:
        """The number of the last request sent."""
        return self._seq

    def _emit(self, item: EsealReaderReading) -> None:
        if len(self._out) >= MAX_OUT:
            # a seal change is reported once (``_observe``): line noise must never push it
            # out, so a reject goes first; only changes nobody took yet give way to newer ones
            reject = next((i for i in self._out if isinstance(i, Rejected)), None)
            if reject is not None:
                self._out.remove(reject)
            else:
                self._out.popleft()
        self._out.append(item)
        self._out_ready.set()

    def _observe(self, response: Response) -> None:
        """Report the field's content when a read shows it changed (transient errors such as
        ``seal_no_reply`` say nothing about the field)."""
        seen: SealReading | NoSeal | None = None
        if response.status == "ok" and response.seal is not None:
            seen = response.seal
        elif response.status == "no_seal":
            seen = NoSeal()
        if seen is not None and seen != self._last:
            self._last = seen
            self._emit(seen)

    async def _set_state(self, command: Literal["unlock", "arm"], seal_id: str) -> SealState:
        last = "no answer"
        for _ in range(self.settings.command_attempts):
            try:
                read = await self._exchange("read_seal")
                self._observe(read)
                if read.status == "no_seal":
                    raise EsealRefused("no_seal", "no seal in the reader's field")
                if read.status != "ok" or read.seal is None or read.challenge is None:
                    last = read.status
                    continue
                if read.seal.seal_id != seal_id:
                    raise EsealRefused(
                        "wrong_seal", f"the seal in the field is {read.seal.seal_id}"
                    )
                mac = command_mac(self._key, command, seal_id, read.challenge)
                done = await self._exchange(command, set_state_payload(seal_id, mac))
            except _NoAnswer:
                last = "no answer"
                continue
            if done.status == "ok" and done.state is not None:
                # read the seal back, so the lane sees its new state and log count at once
                with contextlib.suppress(_NoAnswer):
                    self._observe(await self._exchange("read_seal"))
                wanted = _AFTER[command]
                if done.state != wanted:  # "ok", but the seal did not do it: not done
                    raise EsealRefused("bad_state", f"{command} {seal_id}: seal is {done.state}")
                return done.state
            if done.status in ("seal_no_reply", "busy"):
                last = done.status
                continue
            raise EsealRefused(done.status, f"{command} {seal_id}")
        raise EsealUnavailable(
            f"{command} {seal_id}: {last} after {self.settings.command_attempts} attempts"
        )

    async def _read_log(self, start: int, max_count: int) -> SealLog:
        try:
            response = await self._exchange("read_log", read_log_request_payload(start, max_count))
        except _NoAnswer:
            raise EsealUnavailable("no answer to read_log") from None
        if response.status != "ok" or response.log is None:
            raise EsealRefused(response.status, "read_log")
        return response.log

    # -- one request, one answer

    async def _exchange(self, command: Command, payload: bytes = b"") -> Response:
        self._seq = (self._seq + 1) & 0xFF
        seq = self._seq
        self._writer.write(encode_frame(self.settings.address, seq, CMD_CODES[command], payload))
        deadline = self._clock() + self.settings.response_timeout_s
        try:
            while True:
                response = await self._receive(deadline)
                if (
                    response.seq == seq
                    and response.command == command
                    and (self.settings.address in (BROADCAST, response.addr))
                ):
                    self._missed = 0
                    return response
                self._emit(Rejected("stale or stray response", response.raw))
        except _NoAnswer:
            self._missed += 1
            if self._missed >= self.settings.max_missed:
                raise TimeoutError(
                    f"no answer from the reader to {self._missed} requests in a row"
                ) from None
            raise

    async def _receive(self, deadline: float) -> Response:
        while True:
            while self._inbox:
                item = self._inbox.popleft()
                if isinstance(item, Response):
                    return item
                self._emit(item)
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise _NoAnswer
            try:
                async with asyncio.timeout(min(remaining, self.settings.idle_gap_s)):
                    chunk = await self._reader.read(READ_SIZE)
            except TimeoutError:
                if self._decoder.pending:
                    self._inbox.extend(_responses(self._decoder.resync()))
                continue
            if not chunk:
                raise EOFError("port closed")
            self._inbox.extend(_responses(self._decoder.feed(chunk)))


def _responses(items: list[Request | Response | Rejected]) -> list[Response | Rejected]:
    # the decoder runs in "responses" mode, so a Request never comes out of it
    return [item for item in items if not isinstance(item, Request)]


class EsealReader:
    """The e-seal reader driver: the supervisor opens and reopens it; the lane calls
    ``unlock`` / ``arm`` / ``read_log`` on it at any time, and they fail at once with
    ``EsealUnavailable`` while the reader is down."""

    def __init__(
        self, settings: EsealSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._current: EsealConnection | None = None
        self._last_seq = 0

    @property
    def connected(self) -> bool:
        """A reader is open and answering."""
        return self._current is not None and self._current.alive

    @contextlib.asynccontextmanager
    async def open_device(self) -> AsyncIterator[EsealConnection]:
        """Open the port and greet the reader; raises ``TimeoutError`` if it never answers."""
        async with open_serial(self.settings) as (reader, writer):
            connection = EsealConnection(
                reader, writer, self.settings, self.clock, last_seq=self._last_seq
            )
            try:
                await connection.start()
                self._current = connection
                yield connection
            finally:
                if self._current is connection:
                    self._current = None
                await connection.stop()
                self._last_seq = connection.last_seq

    def _connection(self) -> EsealConnection:
        connection = self._current
        if connection is None or not connection.alive:
            raise EsealUnavailable("e-seal reader is down")
        return connection

    async def unlock(self, seal_id: str) -> SealState:
        """Unlock ``seal_id`` (entry, after a release); raises ``EsealError``."""
        return await self._connection().unlock(seal_id)

    async def arm(self, seal_id: str) -> SealState:
        """Arm ``seal_id`` (exit, after a release); raises ``EsealError``."""
        return await self._connection().arm(seal_id)

    async def read_log(self, start: int = 0, max_count: int = MAX_LOG_ENTRIES) -> SealLog:
        """A page of the event log of the seal in the field; raises ``EsealError``."""
        return await self._connection().read_log(start, max_count)

    def supervisor(
        self,
        on_reading: Callable[[EsealReaderReading], None],
        on_state: Callable[[Health], None] = lambda health: None,
        *,
        name: str = "eseal",
    ) -> Supervisor[EsealReaderReading]:
        """A supervisor keeping this reader open (silence is caught by request timeouts)."""
        return port_supervisor(
            name,
            self.open_device,
            on_reading,
            on_state,
            reconnect_max_s=self.settings.reconnect_max_s,
        )


# --------------------------------------------------------------------------- capture files


def main(argv: list[str] | None = None) -> int:
    """``python -m drivers.eseal FILE``: decode a capture of the reader line.

    Prints one JSON object per frame and a last line ``{"accepted": n, "rejected": m}``;
    rejected stretches go to standard error as JSON.
    """
    parser = argparse.ArgumentParser(
        prog="python -m drivers.eseal", description="Decode an e-seal reader capture file."
    )
    parser.add_argument("--direction", choices=["both", "requests", "responses"], default="both")
    parser.add_argument("file", type=Path, help="raw bytes as captured from the line ('-': stdin)")
    args = parser.parse_args(argv)
    decoder = MessageDecoder(args.direction)
    return print_capture(args.file, lambda data: [*decoder.feed(data), *decoder.flush()])


if __name__ == "__main__":
    sys.exit(main())
