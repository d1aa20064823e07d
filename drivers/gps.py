"""GPS receiver: NMEA 0183 over a serial port or TCP, decoded into fixes.

The codec is pure: ``NmeaFramer`` cuts a byte stream into candidate sentences (bounded buffer,
junk and over-long lines rejected), pynmea2 checks each sentence's checksum and names its
fields, and ``GpsDecoder`` checks RMC and GGA fields strictly and joins the two sentences of
one receiver epoch into a ``GpsFix``. A fix is ``valid`` only when RMC says ``A`` (and its mode
is a measured one), GGA's quality is a measured fix, HDOP is under the limit, RMC and GGA agree
on the position, and the fix is fresh against the time the caller passes in. The codec never
reads a clock.

>>> d = GpsDecoder(GpsLimits(max_hdop=4.0, max_age_s=5.0))
>>> out = d.feed(
...     b"$GPRMC,081412.000,A,5541.1956,N,03737.2877,E,0.52,301.26,260514,,,A*61\\r\\n"
...     b"$GPGGA,081412.000,5541.1956,N,03737.2877,E,1,5,1.87,66.2,M,14.5,M,,*6F\\r\\n",
...     now=1401092052.0,
... )
>>> fix = out[0]
>>> (fix.time, round(fix.lat, 6), round(fix.lon, 6), fix.valid)
('2014-05-26T08:14:12.000Z', 55.686593, 37.621462, True)
>>> d.feed(b"$GPRMC,081413.000,A,5541.19*00\\r\\n", now=1401092053.0)[0].reason
'bad checksum'

``python -m drivers.gps FILE`` decodes a capture: one JSON fix per line, then
``{"accepted": n, "rejected": m}``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import asdict, dataclass

import pynmea2
from pydantic import BaseModel, ConfigDict, Field

from drivers.capture import read_capture
from drivers.codec import Rejected
from drivers.framing import LineBuffer
from drivers.serial_link import LineDevice, Port, open_line, port_supervisor
from drivers.supervisor import Backoff, Health, Supervisor

# ---------------------------------------------------------------------------------------------
# Settings


class GpsLimits(BaseModel):
    """When a fix counts as valid; shared by the codec and the driver."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    max_hdop: float = Field(
        default=4.0, gt=0, le=50, description="A fix is valid only with HDOP strictly below this."
    )
    max_age_s: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="A fix is valid only when its GPS time is within this many seconds of the "
        "lane's clock (either way): a receiver repeating an old position, or one whose date "
        "is garbage after a cold start, is not trusted.",
    )


class GpsSettings(BaseModel):
    """One GPS receiver: where it is and when its fixes count."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    port: Port = Field(
        description="Serial device (e.g. /dev/ttyUSB0), a pyserial URL, or tcp://host:port "
        "for a receiver streaming NMEA over TCP."
    )
    baudrate: int = Field(
        default=9600, gt=0, description="Serial speed; NMEA 0183 says 4800, most modules use 9600."
    )
    limits: GpsLimits = Field(default=GpsLimits(), description="When a fix counts as valid.")
    silence_s: float = Field(
        default=5.0,
        gt=0,
        description="A receiver sends every second, fix or not: this long without a "
        "sentence we can use means the line is dead and the port is reopened.",
    )
    max_line: int = Field(
        default=256,
        ge=82,
        le=4096,
        description="Longest sentence kept, in bytes (NMEA allows 82; some receivers exceed "
        "it). Longer runs are rejected as garbage.",
    )


# ---------------------------------------------------------------------------------------------
# Readings


@dataclass(frozen=True)
class GpsFix:
    """One receiver epoch: RMC, joined with GGA of the same time when there is one.

    ``valid`` is the only thing the lane should act on; ``reason`` says why a fix is not
    valid ("" when it is). Positions are decimal degrees, south and west negative.
    """

    time: str  # ISO 8601 UTC, e.g. 2019-04-07T00:03:45.030Z
    timestamp: float  # the same instant, seconds since the epoch
    lat: float
    lon: float
    valid: bool
    reason: str = ""
    hdop: float | None = None
    quality: int | None = None  # GGA fix quality: 1 GPS, 2 DGPS, 4 RTK fixed, ...
    satellites: int | None = None
    speed_kmh: float | None = None
    received_at: float | None = None  # the lane time the fix was judged at; None on replay

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view, leaving out fields the receiver did not send."""
        return {k: v for k, v in asdict(self).items() if v is not None and v != ""}


@dataclass(frozen=True)
class GpsNoFix:
    """The receiver is talking but has no position this epoch (cold start, indoors)."""

    reason: str
    time: str | None = None

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view."""
        return {"nofix": self.reason, **({"time": self.time} if self.time else {})}


GpsReading = GpsFix | GpsNoFix

# ---------------------------------------------------------------------------------------------
# Framing

_DELIMS = re.compile(rb"[$\r\n]")
_RAW_KEEP = 96  # bytes of a rejected frame kept for the log


class NmeaFramer:
    """Cuts a byte stream into candidate sentences ``$...``; never holds more than max_line.

    A sentence runs from ``$`` to CR, LF or the next ``$`` (receivers do drop line ends).
    Bytes outside a sentence are junk; a run longer than ``max_line`` is rejected whole.

    >>> f = NmeaFramer()
    >>> f.feed(b"xx$GPGGA,1*00\\r\\n$GPR") + f.feed(b"MC,2*00\\n")
    [Rejected(reason='junk outside a sentence', raw=b'xx'), b'$GPGGA,1*00', b'$GPRMC,2*00']
    """

    def __init__(self, max_line: int = 256) -> None:
        self.max_line = max_line
        self._line = LineBuffer(max_line, keep=_RAW_KEEP)
        self._in_frame = False

    @property
    def buffered(self) -> int:
        """Bytes held for an unfinished sentence (never more than ``max_line``)."""
        return len(self._line)

    def feed(self, chunk: bytes) -> list[bytes | Rejected]:
        """Frames completed by ``chunk`` (candidate sentences as bytes, or rejects)."""
        out: list[bytes | Rejected] = []
        pos = 0
        for match in _DELIMS.finditer(chunk):
            at = match.start()
            self._append(chunk[pos:at], out)
            self._end_segment(out)
            self._in_frame = chunk[at] == 0x24  # '$'
            if self._in_frame:
                self._line.add(b"$")
            pos = at + 1
        self._append(chunk[pos:], out)
        return out

    def flush(self) -> list[bytes | Rejected]:
        """End of input: whatever is left is a truncated sentence or junk."""
        out: list[bytes | Rejected] = []
        line, overflowed = self._line.end()
        if self._in_frame and not overflowed and line:
            out.append(Rejected("truncated at end of input", line[:_RAW_KEEP]))
        elif not overflowed and line.strip():
            out.append(Rejected("junk outside a sentence", line[:_RAW_KEEP]))
        self._in_frame = False
        return out

    def _append(self, piece: bytes, out: list[bytes | Rejected]) -> None:
        head = self._line.add(piece)
        if head is not None:
            kind = "sentence too long" if self._in_frame else "junk outside a sentence"
            out.append(Rejected(kind, head))

    def _end_segment(self, out: list[bytes | Rejected]) -> None:
        line, overflowed = self._line.end()
        if overflowed:
            return
        if self._in_frame:
            out.append(line)
        elif line.strip():
            out.append(Rejected("junk outside a sentence", line[:_RAW_KEEP]))


# ---------------------------------------------------------------------------------------------
# Sentences

_PRINTABLE = re.compile(rb"^[\x20-\x7e]+$")
_CHECKSUM_TAIL = re.compile(rb"^\$[^*]*\*[0-9A-Fa-f]{2}$")
# talker + sentence (GPRMC), or P + maker + type (PSRFEPE): upper case, as NMEA writes them;
# pynmea2 would also take "GpRmC"
_ADDRESS = re.compile(rb"^\$[A-Z0-9]{3,10},")
_TIME = re.compile(r"^([01]\d|2[0-3])([0-5]\d)([0-5]\d)(\.\d{1,6})?$")
_LAT = re.compile(r"^(\d{2})([0-5]\d(?:\.\d{1,10})?)$")
_LON = re.compile(r"^(\d{3})([0-5]\d(?:\.\d{1,10})?)$")
_DATE = re.compile(r"^(\d{2})(\d{2})(\d{2})$")
_DECIMAL = re.compile(r"^\d{1,6}(\.\d{1,6})?$")
_INT = re.compile(r"^\d{1,3}$")

# RMC mode indicator (NMEA 2.3+): A autonomous, D differential, P precise, R RTK, F float RTK.
# E (dead reckoning), M (manual), S (simulator) and N (not valid) are not measured positions.
_MEASURED_MODES = frozenset({"", "A", "D", "P", "R", "F"})
# GGA quality: 1 GPS, 2 DGPS, 3 PPS, 4 RTK fixed, 5 RTK float. 6 estimated, 7 manual input and
# 8 simulation are "> 0" but not measured, so they never make a fix valid.
_MEASURED_QUALITIES = frozenset({1, 2, 3, 4, 5})
_KNOT_KMH = 1.852
_AGREE_DEG = 1e-4  # RMC and GGA of one epoch carry the same position; ~11 m of slack


class _Malformed(ValueError):
    """A field that a well-behaved receiver would never send."""


@dataclass(frozen=True)
class _Rmc:
    key: int  # time of day in milliseconds: the epoch RMC and GGA share
    status: str
    mode: str
    lat: float | None
    lon: float | None
    date: dt.date | None
    speed_kmh: float | None


@dataclass(frozen=True)
class _Gga:
    key: int
    lat: float | None
    lon: float | None
    quality: int
    satellites: int | None
    hdop: float | None


def _time_key(text: str) -> int | None:
    if not text:
        return None
    m = _TIME.match(text)
    if m is None:
        raise _Malformed(f"time {text!r}")
    hh, mm, ss, frac = m.groups()
    ms = round(float(frac) * 1000) if frac else 0
    return ((int(hh) * 60 + int(mm)) * 60 + int(ss)) * 1000 + ms


def _coordinate(value: str, hemi: str, *, lat: bool) -> float | None:
    if not value and not hemi:
        return None
    m = (_LAT if lat else _LON).match(value)
    if m is None or hemi not in (("N", "S") if lat else ("E", "W")):
        raise _Malformed(f"{'latitude' if lat else 'longitude'} {value!r},{hemi!r}")
    degrees = int(m.group(1)) + float(m.group(2)) / 60.0
    if degrees > (90.0 if lat else 180.0):
        raise _Malformed(f"{'latitude' if lat else 'longitude'} {value!r} out of range")
    return -degrees if hemi in ("S", "W") else degrees


def _date(text: str) -> dt.date | None:
    if not text:
        return None
    m = _DATE.match(text)
    if m is None:
        raise _Malformed(f"date {text!r}")
    day, month, yy = (int(g) for g in m.groups())
    # two-digit years: GPS receivers report 1980 onwards
    year = 2000 + yy if yy < 80 else 1900 + yy
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise _Malformed(f"date {text!r}") from None


def _decimal(text: str, what: str) -> float | None:
    if not text:
        return None
    if _DECIMAL.match(text) is None:
        raise _Malformed(f"{what} {text!r}")
    return float(text)


def _fields(msg: pynmea2.NMEASentence, low: int, high: int) -> list[str]:
    data: list[str] = list(msg.data)
    if not low <= len(data) <= high:
        raise _Malformed(f"{len(data)} fields")
    return data


def _parse_rmc(msg: pynmea2.NMEASentence) -> _Rmc | None:
    # time,status,lat,N/S,lon,E/W,speed kn,course,date,magvar,E/W[,mode[,nav status]]
    f = _fields(msg, 11, 13)
    key = _time_key(f[0])
    if f[1] not in ("A", "V"):
        raise _Malformed(f"status {f[1]!r}")
    mode = f[11] if len(f) > 11 else ""
    if mode not in ("", "A", "D", "E", "F", "M", "N", "P", "R", "S"):
        raise _Malformed(f"mode {mode!r}")
    lat = _coordinate(f[2], f[3], lat=True)
    lon = _coordinate(f[4], f[5], lat=False)
    speed = _decimal(f[6], "speed")
    _decimal(f[7], "course")
    date = _date(f[8])
    if key is None:
        return None
    return _Rmc(
        key,
        f[1],
        mode,
        lat,
        lon,
        date,
        None if speed is None else round(speed * _KNOT_KMH, 3),
    )


def _parse_gga(msg: pynmea2.NMEASentence) -> _Gga | None:
    # time,lat,N/S,lon,E/W,quality,sats,hdop,alt,M,geoid sep,M,dgps age,station[,...]
    f = _fields(msg, 14, 15)
    key = _time_key(f[0])
    lat = _coordinate(f[1], f[2], lat=True)
    lon = _coordinate(f[3], f[4], lat=False)
    if not f[5].isdigit() or len(f[5]) != 1:
        raise _Malformed(f"quality {f[5]!r}")
    if f[6] and _INT.match(f[6]) is None:
        raise _Malformed(f"satellites {f[6]!r}")
    hdop = _decimal(f[7], "hdop")
    if key is None:
        return None
    return _Gga(key, lat, lon, int(f[5]), int(f[6]) if f[6] else None, hdop)


# ---------------------------------------------------------------------------------------------
# Decoder


@dataclass
class _Epoch:
    key: int
    rmc: _Rmc | None = None
    gga: _Gga | None = None


class GpsDecoder:
    """Bytes in, ``GpsFix`` / ``GpsNoFix`` / ``Rejected`` out; bounded, no I/O, no clock.

    Sentences other than RMC and GGA are checked (checksum) and otherwise ignored.
    """

    def __init__(self, limits: GpsLimits | None = None, *, max_line: int = 256) -> None:
        self.limits = limits or GpsLimits()
        self._framer = NmeaFramer(max_line)
        self._pending: _Epoch | None = None
        self._last_key: int | None = None
        self.sentences = 0  # checksum-valid sentences seen
        self.ignored = 0  # of those, ones we have no use for (GSV, VTG, proprietary, ...)

    @property
    def buffered(self) -> int:
        """Bytes held for an unfinished sentence (never more than ``max_line``)."""
        return self._framer.buffered

    def feed(self, chunk: bytes, now: float) -> list[GpsReading | Rejected]:
        """Decode ``chunk``; judge freshness against ``now`` (seconds since the epoch, UTC)."""
        return self._feed(chunk, now)

    def replay(self, chunk: bytes) -> list[GpsReading | Rejected]:
        """Decode a capture: each fix is judged as if it had just arrived (``received_at``
        stays None). For files and tests; a live driver uses ``feed``."""
        return self._feed(chunk, None)

    def flush(self, now: float | None = None) -> list[GpsReading | Rejected]:
        """End of input: report a truncated last sentence and a half-finished epoch."""
        out: list[GpsReading | Rejected] = [
            r for r in self._framer.flush() if isinstance(r, Rejected)
        ]
        out.extend(self._close_pending(now))
        return out

    def _feed(self, chunk: bytes, now: float | None) -> list[GpsReading | Rejected]:
        out: list[GpsReading | Rejected] = []
        for frame in self._framer.feed(chunk):
            if isinstance(frame, Rejected):
                out.append(frame)
            else:
                self._sentence(frame, now, out)
        return out

    def _sentence(self, frame: bytes, now: float | None, out: list[GpsReading | Rejected]) -> None:
        raw = frame[:_RAW_KEEP]
        if _PRINTABLE.match(frame) is None:
            out.append(Rejected("not printable ASCII", raw))
            return
        if _CHECKSUM_TAIL.match(frame) is None:
            out.append(Rejected("truncated or no checksum", raw))
            return
        if _ADDRESS.match(frame) is None:
            out.append(Rejected("malformed sentence", raw))
            return
        try:
            msg = pynmea2.parse(frame.decode("ascii"), check=True)
        except pynmea2.ChecksumError:
            out.append(Rejected("bad checksum", raw))
            return
        except pynmea2.SentenceTypeError:
            self.sentences += 1
            self.ignored += 1  # well formed, just a kind pynmea2 does not know
            return
        except Exception:
            # ParseError for a bad shape; pynmea2's proprietary parsers (PUBX, PASH, PTNL, ...)
            # raise IndexError on a sentence without fields ("$PUBX*1F", stopped above by the
            # address check). Whatever the parser trips on is a reject, never a crash.
            out.append(Rejected("malformed sentence", raw))
            return
        self.sentences += 1
        kind = getattr(msg, "sentence_type", "")
        try:
            if kind == "RMC":
                rmc = _parse_rmc(msg)
                if rmc is None:
                    out.append(GpsNoFix("RMC without time"))
                else:
                    self._add(rmc, None, now, out)
            elif kind == "GGA":
                gga = _parse_gga(msg)
                if gga is not None:
                    self._add(None, gga, now, out)
            else:
                self.ignored += 1
        except _Malformed as exc:
            out.append(Rejected(f"malformed {kind}: {exc}", raw))

    def _add(
        self,
        rmc: _Rmc | None,
        gga: _Gga | None,
        now: float | None,
        out: list[GpsReading | Rejected],
    ) -> None:
        key = rmc.key if rmc is not None else gga.key if gga is not None else 0
        if key == self._last_key:
            return  # a second talker repeating an epoch we already reported
        if self._pending is not None and self._pending.key != key:
            out.extend(self._close_pending(now))
        epoch = self._pending = self._pending or _Epoch(key)
        if rmc is not None and epoch.rmc is None:
            epoch.rmc = rmc
        if gga is not None and epoch.gga is None:
            epoch.gga = gga
        if epoch.rmc is not None and epoch.gga is not None:
            out.extend(self._close_pending(now))

    def _close_pending(self, now: float | None) -> list[GpsReading]:
        epoch, self._pending = self._pending, None
        if epoch is None:
            return []
        self._last_key = epoch.key
        if epoch.rmc is None:
            return [GpsNoFix("GGA without RMC: no date")]
        return [self._judge(epoch.rmc, epoch.gga, now)]

    def _judge(self, rmc: _Rmc, gga: _Gga | None, now: float | None) -> GpsReading:
        lat, lon = (gga.lat, gga.lon) if gga is not None else (None, None)
        if lat is None or lon is None:
            lat, lon = rmc.lat, rmc.lon
        stamp = _iso_time(rmc.date, rmc.key)
        if rmc.date is None:
            return GpsNoFix("RMC without date")
        if lat is None or lon is None:
            return GpsNoFix(f"no position (RMC status {rmc.status})", stamp)
        timestamp = _epoch_seconds(rmc.date, rmc.key)
        reasons: list[str] = []
        if rmc.status != "A":
            reasons.append(f"RMC status {rmc.status}")
        if rmc.mode not in _MEASURED_MODES:
            reasons.append(f"RMC mode {rmc.mode}")
        if gga is None:
            reasons.append("no GGA in epoch")
        else:
            if gga.quality not in _MEASURED_QUALITIES:
                reasons.append(f"GGA quality {gga.quality}")
            if gga.hdop is None or gga.hdop <= 0:
                reasons.append("no HDOP")  # receivers send 0.0 when they have none
            elif not gga.hdop < self.limits.max_hdop:
                reasons.append(f"HDOP {gga.hdop:g} not under {self.limits.max_hdop:g}")
            if gga.lat is None or gga.lon is None:
                reasons.append("GGA without position")
            elif (
                rmc.lat is None
                or rmc.lon is None
                or abs(rmc.lat - gga.lat) > _AGREE_DEG
                or abs(rmc.lon - gga.lon) > _AGREE_DEG
            ):
                reasons.append("RMC and GGA positions differ")
        if now is not None and not abs(now - timestamp) <= self.limits.max_age_s:
            reasons.append(f"not fresh: {now - timestamp:+.0f} s from the lane's clock")
        return GpsFix(
            time=stamp or "",
            timestamp=timestamp,
            lat=lat,
            lon=lon,
            valid=not reasons,
            reason="; ".join(reasons),
            hdop=gga.hdop if gga else None,
            quality=gga.quality if gga else None,
            satellites=gga.satellites if gga else None,
            speed_kmh=rmc.speed_kmh,
            received_at=now,
        )


def _epoch_seconds(date: dt.date, key: int) -> float:
    midnight = dt.datetime(date.year, date.month, date.day, tzinfo=dt.UTC)
    return midnight.timestamp() + key / 1000.0


def _iso_time(date: dt.date | None, key: int) -> str | None:
    if date is None:
        return None
    moment = dt.datetime.fromtimestamp(_epoch_seconds(date, key), dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---------------------------------------------------------------------------------------------
# Driver


# the longest wait between reopen attempts: a port that comes back is in use within ~4 s
RECONNECT_MAX_S = 4.0


@contextlib.asynccontextmanager
async def open_gps(
    settings: GpsSettings,
    *,
    clock: Callable[[], float] = time.time,
    on_raw: Callable[[bytes], None] | None = None,
) -> AsyncIterator[LineDevice[GpsReading | Rejected]]:
    """Open the receiver's port; its ``readings()`` are fixes, no-fix notices and rejects.
    A new decoder each time, so nothing from before a gap survives it. ``clock`` gives the
    lane's UTC time (seconds) for the freshness check; ``on_raw`` sees every chunk of bytes as
    read (a technician's ``--raw``)."""
    decoder = GpsDecoder(settings.limits, max_line=settings.max_line)
    async with open_line(settings.port, settings.baudrate) as (reader, _writer):
        yield LineDevice(reader, lambda chunk: decoder.feed(chunk, clock()), on_raw=on_raw)


def gps_supervisor(
    settings: GpsSettings,
    on_reading: Callable[[GpsReading], None],
    *,
    on_state: Callable[[Health], None] = lambda health: None,
    clock: Callable[[], float] = time.time,
    name: str = "gps",
    backoff: Backoff | None = None,
) -> Supervisor[GpsReading]:
    """A supervisor that keeps the receiver open; ``await sup.run()`` in a named task."""
    return port_supervisor(
        name,
        lambda: open_gps(settings, clock=clock),
        on_reading,
        on_state,
        reconnect_max_s=RECONNECT_MAX_S,
        silence_s=settings.silence_s,
        backoff=backoff,
    )


# ---------------------------------------------------------------------------------------------
# Capture decoding


def decode_capture(
    data: bytes, limits: GpsLimits | None = None, *, now: float | None = None
) -> list[GpsReading | Rejected]:
    """Decode a whole capture; ``now`` None judges each fix as of its own time."""
    decoder = GpsDecoder(limits)
    out = decoder.replay(data) if now is None else decoder.feed(data, now)
    out.extend(decoder.flush(now))
    return out


def strip_comments(lines: Iterable[bytes]) -> bytes:
    """Drop ``#`` comment lines (gpsd's test logs carry them); keep everything else."""
    return b"".join(line for line in lines if not line.startswith(b"#"))


def main(argv: list[str] | None = None) -> int:
    """``python -m drivers.gps FILE``: one JSON fix per line, then the counts."""
    parser = argparse.ArgumentParser(prog="python -m drivers.gps", description=main.__doc__)
    parser.add_argument("file", help="raw NMEA capture ('-' for stdin)")
    parser.add_argument("--max-hdop", type=float, default=GpsLimits().max_hdop)
    parser.add_argument(
        "--now",
        help="judge freshness against this ISO 8601 UTC time (default: each fix as of its "
        "own time, as when it was received)",
    )
    parser.add_argument(
        "--strip-comments", action="store_true", help="drop lines starting with '#'"
    )
    parser.add_argument(
        "--all", action="store_true", help="also print no-fix notices and rejected frames"
    )
    args = parser.parse_args(argv)
    data = read_capture(args.file)
    if data is None:
        return 2
    if args.strip_comments:
        data = strip_comments(data.splitlines(keepends=True))
    now = None
    if args.now:
        now = dt.datetime.fromisoformat(args.now.replace("Z", "+00:00")).timestamp()
    limits = GpsLimits(max_hdop=args.max_hdop)
    accepted = rejected = 0
    for item in decode_capture(data, limits, now=now):
        if isinstance(item, GpsFix):
            accepted += 1
            print(json.dumps(item.as_dict(), ensure_ascii=False))
        elif isinstance(item, Rejected):
            rejected += 1
            if args.all:
                print(json.dumps(item.as_dict()))
        elif args.all:
            print(json.dumps(item.as_dict()))
    print(json.dumps({"accepted": accepted, "rejected": rejected}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
