"""QR release notes: a fixed serial scanner in line mode, and QR codes in camera frames.

Both paths produce ``QrScan(payload, source)``; judging the payload (signature, ledger, plate)
is the lane's job, with ``drivers.release_note``. The scanner codec is pure: bytes in, scans
or rejects out, one line per code, lines bounded. Camera decoding (zxing-cpp) is a plain
synchronous function the lane runs in an executor. ``Deduplicator`` turns the same code seen
again and again (a phone held in front of the camera, a driver pressing the scanner twice) into
one scan.

>>> d = ScannerLineDecoder(max_line=64)
>>> [s.payload for s in d.feed(b"GRN1.abc.def\\r\\nhttp://exa") + d.feed(b"mple.com\\n")]
['GRN1.abc.def', 'http://example.com']
>>> d.feed(b"\\x00\\x01garbage\\r")
[Rejected(reason='not printable text', raw=b'\\x00\\x01garbage')]

``python -m drivers.qr FILE [--key BASE64 ...]`` reads payload lines: one JSON reading per
line, then ``{"accepted": n, "rejected": m}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import zxingcpp
from pydantic import BaseModel, ConfigDict, Field

from drivers import release_note
from drivers.capture import read_capture
from drivers.codec import Rejected
from drivers.framing import LineBuffer
from drivers.serial_link import LineDevice, Port, open_line, port_supervisor
from drivers.supervisor import Backoff, Health, Supervisor

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

Source = Literal["scanner", "camera"]
MAX_TEXT = 4096  # longest payload passed on from either path; a release note is <= 1,024
RECONNECT_MAX_S = 4.0  # cap on the reopen backoff: a port that comes back is used within ~4 s
_RAW_KEEP = 96
_LAYOUT = str.maketrans("", "", "\t\r\n")

# ---------------------------------------------------------------------------------------------
# Settings


class QrScannerSettings(BaseModel):
    """A fixed QR scanner on a serial port, in line mode (one payload per line)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    port: Port = Field(
        description="Serial device (e.g. /dev/ttyACM0), a pyserial URL, or tcp://host:port."
    )
    baudrate: int = Field(default=9600, gt=0, description="Serial speed.")
    max_line: int = Field(
        default=2048,
        ge=64,
        le=MAX_TEXT,
        description="Longest line accepted, in bytes; longer lines are rejected whole.",
    )
    idle_gap_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="A line left unfinished this long (a scan cut short) is dropped, never "
        "joined to the next scan.",
    )


class QrSettings(BaseModel):
    """Where release-note QR codes come from, and how repeats are folded."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    scanner: QrScannerSettings | None = Field(
        default=None, description="The fixed serial scanner, if the lane has one."
    )
    dedup_window_s: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="A code seen again within this many seconds of its last sighting is the "
        "same scan (a phone held in front of the camera is read on every frame).",
    )


# ---------------------------------------------------------------------------------------------
# Readings


@dataclass(frozen=True)
class QrScan:
    """One code read: the payload text exactly as encoded, and which path read it."""

    payload: str
    source: Source

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view."""
        return {"payload": self.payload, "source": self.source}


# ---------------------------------------------------------------------------------------------
# Scanner line codec

_TERMINATORS = re.compile(rb"[\r\n]")


class ScannerLineDecoder:
    """Serial scanner in line mode: a payload ends at CR, LF or CRLF; bounded, no I/O.

    Blank lines (the LF of a CRLF, a scanner's keep-alive) are skipped. A line longer than
    ``max_line`` is rejected whole, up to its terminator. A line that is not UTF-8 text, or that
    carries control or other unprintable characters (line noise, a baud-rate mismatch), is
    rejected, never passed on. A scanner sends a line in one go: given the time of each chunk,
    a line still unfinished ``idle_gap_s`` after its last byte was cut short, and is rejected
    rather than joined to the next scan (which would spoil that driver's note).

    >>> d = ScannerLineDecoder(idle_gap_s=1.0)
    >>> d.feed(b"GRN1.eyJ2Ijox", now=0.0)
    []
    >>> [type(x).__name__ for x in d.feed(b"GRN1.e30.c2ln\\r", now=60.0)]
    ['Rejected', 'QrScan']
    """

    def __init__(self, max_line: int = 2048, *, idle_gap_s: float | None = None) -> None:
        self.max_line = max_line
        self.idle_gap_s = idle_gap_s
        self._line = LineBuffer(max_line, keep=_RAW_KEEP)
        self._last: float | None = None  # when the last chunk came (given times only)

    @property
    def buffered(self) -> int:
        """Bytes held for an unfinished line (never more than ``max_line``)."""
        return len(self._line)

    def feed(self, chunk: bytes, now: float | None = None) -> list[QrScan | Rejected]:
        """Scans completed by ``chunk`` (which came at ``now``, if the caller keeps time)."""
        out: list[QrScan | Rejected] = []
        gap = self.idle_gap_s
        if now is not None:
            last, self._last = self._last, now
            if gap is not None and last is not None and now - last > gap and len(self._line):
                line, overflowed = self._line.end()
                if not overflowed:
                    out.append(Rejected("line cut short (no end before a pause)", line[:_RAW_KEEP]))
        pos = 0
        for match in _TERMINATORS.finditer(chunk):
            self._append(chunk[pos : match.start()], out)
            self._end_line(out)
            pos = match.end()
        self._append(chunk[pos:], out)
        return out

    def flush(self) -> list[QrScan | Rejected]:
        """End of input: an unterminated last line is a truncated scan."""
        out: list[QrScan | Rejected] = []
        line, overflowed = self._line.end()
        if line and not overflowed:
            out.append(Rejected("unterminated line at end of input", line[:_RAW_KEEP]))
        return out

    def _append(self, piece: bytes, out: list[QrScan | Rejected]) -> None:
        head = self._line.add(piece)
        if head is not None:
            out.append(Rejected("line too long", head))

    def _end_line(self, out: list[QrScan | Rejected]) -> None:
        line, overflow = self._line.end()
        if overflow or not line.strip():
            return
        scan = _scan_from_bytes(line, "scanner")
        out.append(scan if scan is not None else Rejected("not printable text", line[:_RAW_KEEP]))


def _scan_from_bytes(data: bytes, source: Source) -> QrScan | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return _scan_from_text(text, source)


def _scan_from_text(text: str, source: Source) -> QrScan | None:
    # isprintable() refuses control, format (bidi overrides), private-use and unassigned
    # characters: none belongs in a code a person or the lane reads as text. Tabs and line
    # breaks are kept: a contact card read by the camera has them (a scanner line cannot).
    if not text.strip() or len(text) > MAX_TEXT or not text.translate(_LAYOUT).isprintable():
        return None
    return QrScan(text, source)


# ---------------------------------------------------------------------------------------------
# Camera frames


def decode_frame(frame: object) -> list[QrScan]:
    """QR codes in one camera frame (numpy grey or BGR array, or a PIL image).

    Blocking (a few ms per frame): run it in an executor, see ``decode_frame_async``. Only codes
    zxing-cpp read with a valid error correction are returned; texts with unprintable
    characters (binary payloads) are dropped, as on the scanner path. Each distinct payload once.
    """
    # a format set built per call: one kept for the life of the module outlives zxing-cpp's
    # bindings at interpreter exit, which then report it as leaked
    only_qr = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
    results = zxingcpp.read_barcodes(frame, formats=only_qr)
    scans: list[QrScan] = []
    seen: set[str] = set()
    for result in results:
        if not result.valid or result.text in seen:
            continue
        seen.add(result.text)
        scan = _scan_from_text(result.text, "camera")
        if scan is not None:
            scans.append(scan)
    return scans


async def decode_frame_async(frame: object, executor: Executor | None = None) -> list[QrScan]:
    """``decode_frame`` off the event loop (on ``executor``, or the loop's default)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, decode_frame, frame)


# ---------------------------------------------------------------------------------------------
# Repeats


class Deduplicator:
    """The same payload seen again within ``window_s`` of its last sighting is one scan.

    Pure: the caller passes the time. Every sighting refreshes the window, so a code held in
    view for a minute is still one scan; ``reset()`` at the start of a pass. Memory is bounded
    by ``max_entries`` (oldest sighting evicted first). For a release note, key on the note id
    once decoded rather than the payload text: base64 lets up to 16 texts differ only in the
    signature's unused last bits and still verify as the same signed note.

    >>> d = Deduplicator(window_s=5.0)
    >>> [d.accept("A", t) for t in (0.0, 1.0, 5.5, 11.0)]
    [True, False, False, True]
    """

    def __init__(self, window_s: float, max_entries: int = 64) -> None:
        if window_s <= 0 or max_entries <= 0:
            raise ValueError("window_s and max_entries must be positive")
        self.window_s = window_s
        self.max_entries = max_entries
        self._last_seen: dict[str, float] = {}

    def accept(self, payload: str, now: float) -> bool:
        """True when ``payload`` is a new scan at ``now``; False for a repeat."""
        for old, seen_at in list(self._last_seen.items()):
            if now - seen_at > self.window_s:
                del self._last_seen[old]
        last = self._last_seen.pop(payload, None)
        self._last_seen[payload] = now  # re-inserted: dict order is sighting order
        while len(self._last_seen) > self.max_entries:
            del self._last_seen[next(iter(self._last_seen))]
        return last is None

    def reset(self) -> None:
        """Forget every payload (a new pass begins)."""
        self._last_seen.clear()


# ---------------------------------------------------------------------------------------------
# Payloads, for people


def describe(payload: str, keys: Mapping[str, Ed25519PublicKey] | None = None) -> dict[str, object]:
    """What a payload is, for technicians: release-note fields and, given keys, verified or not.

    ``verified`` is True or False when keys are given, None otherwise; ``kind`` is
    ``release_note`` or ``foreign`` (another QR code in view, ignored by the lane).
    """
    if not release_note.is_release_note(payload):
        return {"kind": "foreign", "payload": payload}
    out: dict[str, object] = {"kind": "release_note", "payload": payload, "verified": None}
    try:
        note = release_note.parse_unverified(payload)
    except release_note.ReleaseNoteError as exc:
        out.update(note=None, error=str(exc))
        if keys is not None:
            out["verified"] = False
        return out
    out["note"] = {
        "id": note.note_id,
        "plate": note.plate,
        "containers": list(note.containers),
        "valid_from": note.valid_from,
        "valid_until": note.valid_until,
    }
    if keys is not None:
        try:
            release_note.decode(payload, keys)
            out["verified"] = True
        except release_note.ReleaseNoteError as exc:
            out.update(verified=False, error=str(exc))
    return out


# ---------------------------------------------------------------------------------------------
# Scanner driver


@contextlib.asynccontextmanager
async def open_qr_scanner(
    settings: QrScannerSettings, *, on_raw: Callable[[bytes], None] | None = None
) -> AsyncIterator[LineDevice[QrScan | Rejected]]:
    """Open the scanner's port; its ``readings()`` are scans and rejects. A new decoder each
    time, so a half line from before a gap is never joined to one after it. ``on_raw`` sees
    every chunk of bytes as read."""
    decoder = ScannerLineDecoder(settings.max_line, idle_gap_s=settings.idle_gap_s)
    async with open_line(settings.port, settings.baudrate) as (reader, _writer):
        yield LineDevice(reader, lambda chunk: decoder.feed(chunk, time.monotonic()), on_raw=on_raw)


def qr_scanner_supervisor(
    settings: QrScannerSettings,
    on_reading: Callable[[QrScan], None],
    *,
    on_state: Callable[[Health], None] = lambda health: None,
    name: str = "qr",
    backoff: Backoff | None = None,
) -> Supervisor[QrScan]:
    """A supervisor that keeps the scanner open. A scanner is silent between scans, so there
    is no silence timeout: a pulled cable shows as a read error on the port."""
    return port_supervisor(
        name,
        lambda: open_qr_scanner(settings),
        on_reading,
        on_state,
        reconnect_max_s=RECONNECT_MAX_S,
        backoff=backoff,
    )


# ---------------------------------------------------------------------------------------------
# Capture decoding


def main(argv: list[str] | None = None) -> int:
    """``python -m drivers.qr FILE``: one JSON reading per payload line, then the counts."""
    parser = argparse.ArgumentParser(prog="python -m drivers.qr", description=main.__doc__)
    parser.add_argument("file", help="scanner capture: payload lines ('-' for stdin)")
    parser.add_argument(
        "--key",
        action="append",
        default=None,
        help="central's public key (base64 of the raw 32 bytes); repeat for several",
    )
    parser.add_argument("--all", action="store_true", help="also print rejected lines")
    args = parser.parse_args(argv)
    keys = release_note.public_keys(args.key) if args.key else None
    data = read_capture(args.file)
    if data is None:
        return 2
    if data and data[-1:] not in (b"\r", b"\n"):
        data += b"\n"  # a file's last line needs no terminator; a live line does
    decoder = ScannerLineDecoder(max_line=MAX_TEXT)
    accepted = rejected = 0
    for item in decoder.feed(data) + decoder.flush():
        if isinstance(item, Rejected):
            rejected += 1
            if args.all:
                print(json.dumps(item.as_dict()))
            continue
        accepted += 1
        print(json.dumps(describe(item.payload, keys), ensure_ascii=False))
    print(json.dumps({"accepted": accepted, "rejected": rejected}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
