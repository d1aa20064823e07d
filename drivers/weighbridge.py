"""Weighbridge indicator on a serial line: two continuous-output codecs, stability, a driver.

Formats (layouts in docs/protocols/weighbridge.md):

- ``toledo``: Mettler Toledo standard continuous output. ``STX SWA SWB SWC`` then 6 digits of
  displayed weight, 6 digits of tare (absent in the short form), ``CR`` and an optional
  checksum. Status word A holds the decimal position; B holds net, sign, out of range, motion
  and the unit; C the gram flag.
- ``xk3190``: Yaohua XK3190-A9 continuous output, both of its framings: ``tF=0`` is
  ``STX sign 6-digits dp xorH xorL ETX`` with an XOR checksum; ``tF=1`` is ``=`` followed by the
  displayed value with its decimal point, lowest digit first, and a sign (``0`` or ``-``).

A codec turns bytes into ``WeightReading`` (one per frame) or ``Rejected``. ``StabilityFilter``
turns readings (with the time passed in) into ``StableWeight`` once the scale has settled, and
``ScaleStatus`` when it is moving, overloaded, under range or negative: those are never a weight.

>>> dec = Xk3190Decoder()
>>> [r.kg for r in dec.feed(bytes.fromhex("022b303031353630303139 03".replace(" ", "")))]
[1560.0]
>>> dec.feed(b"=000.3000")[0].kg
3.0
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.capture import print_capture
from drivers.codec import Rejected
from drivers.framing import CheckResult, FrameScanner
from drivers.serial_link import (
    READ_SIZE,
    AsyncReader,
    SerialPortSettings,
    open_serial,
    port_supervisor,
)
from drivers.supervisor import DriverError, Health, Supervisor

Unit = Literal["kg", "t", "lb", "g"]
KG_PER_UNIT: dict[str, float] = {"kg": 1.0, "t": 1000.0, "lb": 0.45359237, "g": 0.001}

STX, ETX, CR = 0x02, 0x03, 0x0D
DIGITS = frozenset(b"0123456789")
HEX_UPPER = frozenset(b"0123456789ABCDEF")


# --------------------------------------------------------------------------- readings


@dataclass(frozen=True)
class WeightReading:
    """One frame from the indicator, as it showed it, converted to kilograms.

    ``kg`` is the displayed weight (gross, or net when ``net``), signed; ``None`` when the
    indicator reports its range exceeded. ``motion`` is ``None`` for formats that do not say.
    """

    kg: float | None
    motion: bool | None
    overload: bool = False
    underload: bool = False
    net: bool = False
    tare_kg: float | None = None
    unzeroed: bool = False  # Toledo: scale not zeroed since power-up
    raw: bytes = b""

    @property
    def gross_kg(self) -> float | None:
        """The gross weight this frame shows, if it shows one."""
        if self.kg is None:
            return None
        if not self.net:
            return self.kg
        if self.tare_kg is None:
            return None
        return _round(self.kg + self.tare_kg)

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view."""
        return {
            "kg": self.kg,
            "motion": self.motion,
            "overload": self.overload,
            "underload": self.underload,
            "net": self.net,
            "tare_kg": self.tare_kg,
            "unzeroed": self.unzeroed,
            "raw": self.raw.hex(),
        }


@dataclass(frozen=True)
class StableWeight:
    """A settled gross weight: no motion, readings within the band for the hold time."""

    kg: float
    since: float  # when the readings entered the band (the caller's clock)
    at: float  # when stability was declared
    frames: int  # frames inside the band so far
    spread_kg: float  # max - min of those frames
    motion: bool = False

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view."""
        return {
            "stable": True,
            "kg": self.kg,
            "motion": False,
            "since": self.since,
            "at": self.at,
            "frames": self.frames,
            "spread_kg": self.spread_kg,
        }


ScaleState = Literal["motion", "overload", "underload", "negative", "no_gross", "unzeroed"]


@dataclass(frozen=True)
class ScaleStatus:
    """The scale shows no usable weight right now, and why. Sent once per change."""

    state: ScaleState
    at: float

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view."""
        return {"status": self.state, "at": self.at}


WeighbridgeReading = WeightReading | StableWeight | ScaleStatus | Rejected


def _round(value: float) -> float:
    value = round(value, 6)
    return 0.0 if value == 0 else value  # no "-0.0"


# --------------------------------------------------------------------------- codecs


class WeightDecoder(Protocol):
    """A weighbridge codec: bytes in, readings or rejects out."""

    def feed(self, chunk: bytes) -> list[WeightReading | Rejected]:
        """Decode what this chunk completes."""
        ...

    def flush(self) -> list[WeightReading | Rejected]:
        """End of input: report what is still held."""
        ...


_MASK_7BIT = bytes(b & 0x7F for b in range(256))


def _digits_value(field_bytes: bytes | bytearray) -> int | None:
    """Six-digit field: digits, optionally blank-padded on the left."""
    text = bytes(field_bytes).lstrip(b" ")
    if not text or not all(b in DIGITS for b in text):
        return None
    return int(text)


def _scaled(value: int, decimal_code: int) -> float:
    # code 0 = XXXX00, 1 = XXXXX0, 2 = XXXXXX, 3 = XXXXX.X ... 7 = X.XXXXX
    if decimal_code <= 2:
        return float(value * 10 ** (2 - decimal_code))
    return value / float(10 ** (decimal_code - 2))


class ToledoDecoder:
    """Mettler Toledo standard continuous output.

    ``tare``: frames carry the 6-digit tare field (17 bytes + checksum) or not (short form,
    11 bytes + checksum). ``checksum``: a checksum byte follows CR. ``mask_parity``: clear
    bit 7 of every byte (a 7E1 line read as 8N1 shows the parity there). ``strict_status``:
    hold status words to Mettler's fixed bits (A: bit 5 = 1, bit 6 = 0; B: bit 5 = 1;
    C: bit 5 = 1, bit 6 = 0); clones that set them differently need ``False``.
    ``unit``: force the unit instead of reading it from status words B and C (with
    ``strict_status``, a frame whose status words name another of kg, lb and g is rejected).

    >>> frame = b"\\x02" + bytes([0x22, 0x30, 0x20]) + b"012340000000\\r"
    >>> frame += bytes([-sum(frame) & 0x7F])
    >>> r = ToledoDecoder().feed(frame)[0]
    >>> (r.kg, r.motion, r.net)
    (12340.0, False, False)
    """

    def __init__(
        self,
        *,
        tare: bool = True,
        checksum: bool = True,
        mask_parity: bool = True,
        strict_status: bool = True,
        unit: Unit | None = None,
    ) -> None:
        self.tare = tare
        self.checksum = checksum
        self.mask_parity = mask_parity
        self.strict_status = strict_status
        self.unit = unit
        self._cr_at = 16 if tare else 10
        self.length = self._cr_at + 1 + (1 if checksum else 0)
        self._scanner: FrameScanner[WeightReading] = FrameScanner(b"\x02", self._check)

    def feed(self, chunk: bytes) -> list[WeightReading | Rejected]:
        """Decode what this chunk completes."""
        if self.mask_parity:
            chunk = chunk.translate(_MASK_7BIT)
        return self._scanner.feed(chunk)

    def flush(self) -> list[WeightReading | Rejected]:
        """End of input: report what is still held."""
        return self._scanner.flush()

    def _status_ok(self, index: int, byte: int) -> str | None:
        if byte < 0x20 or byte > 0x7F:
            return f"status word {'ABC'[index - 1]} is a control character"
        if not self.strict_status:
            return None
        if index == 1 and not 0x20 <= byte <= 0x3F:
            return "status word A: bits 5/6 not 1/0 (clone? set strict_status false)"
        if index == 2 and not byte & 0x20:
            return "status word B: bit 5 not set (clone? set strict_status false)"
        if index == 3 and not 0x20 <= byte <= 0x3F:
            return "status word C: bits 5/6 not 1/0 (clone? set strict_status false)"
        return None

    def _check(self, buf: bytearray) -> CheckResult[WeightReading]:
        have = min(len(buf), self.length)
        cr_at = self._cr_at
        for i in range(1, have):
            byte = buf[i]
            if i <= 3:
                bad = self._status_ok(i, byte)
                if bad:
                    return bad
            elif i < cr_at:
                if byte not in DIGITS and byte != 0x20:
                    return "weight field holds a non-digit"
            elif i == cr_at and byte != CR:
                return "no CR where the frame ends"
            elif i > cr_at and byte > 0x7F:
                # the 7-bit sum cannot see bit 7, so it must be clear
                return "checksum byte has bit 7 set (a 7E1 line? set mask_parity)"
        if len(buf) < self.length:
            return None
        frame = bytes(buf[: self.length])
        if self.checksum and (sum(frame) & 0x7F) != 0:
            if frame[-1] == STX:
                return "bad checksum (a frame starts right after CR: is the checksum off?)"
            return "bad checksum"
        parsed = self._parse(frame)
        if isinstance(parsed, str):
            return parsed
        return self.length, parsed

    def _parse(self, frame: bytes) -> WeightReading | str:
        swa, swb, swc = frame[1], frame[2], frame[3]
        shown = _digits_value(frame[4:10])
        tare = _digits_value(frame[10:16]) if self.tare else 0
        if shown is None or tare is None:
            return "weight field is not a blank-padded number"
        stated: Unit | None = None  # the unit the status words name
        if swc & 0x07 == 0:
            stated = "kg" if swb & 0x10 else "lb"
        elif swc & 0x07 == 1:
            stated = "g"
        unit = self.unit
        if unit is None:
            if stated is None:
                return f"status word C unit code {swc & 0x07} unknown: set the unit in config"
            unit = stated
        elif self.strict_status and unit != "t" and stated is not None and stated != unit:
            # the indicator says what it shows: a forced unit it contradicts would misweigh by
            # a factor (lb read as kg is 2.2 times too heavy)
            return f"status words say {stated}, the config says {unit}"
        per_unit = KG_PER_UNIT[unit]
        code = swa & 0x07
        negative = bool(swb & 0x02)
        out_of_range = bool(swb & 0x04)
        kg = None
        if not out_of_range:
            kg = _round(_scaled(shown, code) * per_unit * (-1 if negative else 1))
        return WeightReading(
            kg=kg,
            motion=bool(swb & 0x08),
            overload=out_of_range and not negative,
            underload=out_of_range and negative,
            net=bool(swb & 0x01),
            tare_kg=_round(_scaled(tare, code) * per_unit) if self.tare else None,
            unzeroed=bool(swb & 0x40),
            raw=frame,
        )


class Xk3190Decoder:
    """Yaohua XK3190-A9 continuous output, ``tF=0`` (STX, XOR-checked) and ``tF=1`` (``=``).

    ``frames``: accept ``"any"`` framing, or only ``"stx"`` (tF=0) or ``"equals"`` (tF=1).
    The frames carry no unit and no motion flag: ``unit`` is what the indicator displays in.
    """

    def __init__(
        self, *, frames: Literal["any", "stx", "equals"] = "any", unit: Unit = "kg"
    ) -> None:
        self.frames = frames
        self.unit = unit
        starts = {"any": b"\x02=", "stx": b"\x02", "equals": b"="}[frames]
        self._scanner: FrameScanner[WeightReading] = FrameScanner(starts, self._check)

    def feed(self, chunk: bytes) -> list[WeightReading | Rejected]:
        """Decode what this chunk completes."""
        return self._scanner.feed(chunk)

    def flush(self) -> list[WeightReading | Rejected]:
        """End of input: report what is still held."""
        return self._scanner.flush()

    def _check(self, buf: bytearray) -> CheckResult[WeightReading]:
        if buf[0] == STX:
            return self._check_stx(buf)
        return self._check_equals(buf)

    def _reading(self, value: float, negative: bool, frame: bytes) -> WeightReading:
        kg = _round(value * KG_PER_UNIT[self.unit] * (-1 if negative else 1))
        return WeightReading(kg=kg, motion=None, raw=frame)

    def _check_stx(self, buf: bytearray) -> CheckResult[WeightReading]:
        have = min(len(buf), 12)
        for i in range(1, have):
            byte = buf[i]
            if i == 1:
                ok = byte in b"+-"
            elif i <= 7:
                ok = byte in DIGITS
            elif i == 8:
                ok = 0x30 <= byte <= 0x34
            elif i <= 10:
                ok = byte in HEX_UPPER
            else:
                ok = byte == ETX
            if not ok:
                return f"byte {i + 1} of an STX frame is malformed"
        if len(buf) < 12:
            return None
        frame = bytes(buf[:12])
        xor = 0
        for byte in frame[1:9]:
            xor ^= byte
        if xor != int(frame[9:11], 16):
            return "bad XOR checksum"
        decimals = frame[8] - 0x30
        value = int(frame[2:8]) / 10**decimals
        return 12, self._reading(value, frame[1] == ord("-"), frame)

    def _check_equals(self, buf: bytearray) -> CheckResult[WeightReading]:
        have = min(len(buf), 9)
        dots = 0
        for i in range(1, have):
            byte = buf[i]
            if i <= 7:
                if byte == ord("."):
                    dots += 1
                    if dots > 1:
                        return "two decimal points in an '=' frame"
                elif byte not in DIGITS:
                    return f"byte {i + 1} of an '=' frame is not a digit"
            elif byte not in b"0-":
                return "no sign ('0' or '-') ending an '=' frame"
        if len(buf) < 9:
            return None
        frame = bytes(buf[:9])
        shown = frame[1:8][::-1]  # sent lowest digit first
        whole, _, fraction = shown.partition(b".")
        if dots and (not whole or not fraction):
            return "decimal point at the edge of an '=' frame"
        value = int(whole + fraction) / 10 ** len(fraction)
        return 9, self._reading(value, frame[8] == ord("-"), frame)


# --------------------------------------------------------------------------- encoders


def toledo_frame(
    shown: int,
    *,
    tare: int | None = 0,
    decimal_code: int = 2,
    net: bool = False,
    negative: bool = False,
    out_of_range: bool = False,
    motion: bool = False,
    kg: bool = True,
    checksum: bool = True,
) -> bytes:
    """Build a Toledo continuous frame (for the simulator and tests).

    ``shown`` and ``tare`` are the digit fields (no decimal point, no sign); ``tare=None``
    builds the short form.

    >>> ToledoDecoder().feed(toledo_frame(2480, motion=True))[0].motion
    True
    """
    if not 0 <= shown <= 999_999 or (tare is not None and not 0 <= tare <= 999_999):
        raise ValueError("Toledo fields hold 6 digits")
    swa = 0x20 | 0x08 | (decimal_code & 0x07)  # increment x1
    swb = 0x20 | net | negative << 1 | out_of_range << 2 | motion << 3 | kg << 4
    swc = 0x20
    frame = bytes([STX, swa, swb, swc]) + b"%06d" % shown
    if tare is not None:
        frame += b"%06d" % tare
    frame += b"\r"
    if checksum:
        frame += bytes([-sum(frame) & 0x7F])
    return frame


def xk3190_frame(shown: int, *, decimals: int = 0, negative: bool = False) -> bytes:
    """Build an XK3190 ``tF=0`` frame: STX, sign, 6 digits, decimals, XOR as hex, ETX.

    >>> xk3190_frame(1560).hex()
    '022b30303135363030313903'
    """
    if not 0 <= shown <= 999_999 or not 0 <= decimals <= 4:
        raise ValueError("XK3190 frames hold 6 digits and 0-4 decimals")
    body = (b"-" if negative else b"+") + b"%06d" % shown + b"%d" % decimals
    xor = 0
    for byte in body:
        xor ^= byte
    return b"\x02" + body + b"%02X" % xor + b"\x03"


def xk3190_equals_frame(shown: int, *, decimals: int = 0, negative: bool = False) -> bytes:
    """Build an XK3190 ``tF=1`` frame: ``=``, 7 characters lowest digit first, sign.

    >>> xk3190_equals_frame(3000, decimals=3)
    b'=000.3000'
    """
    if decimals:
        text = b"%0*d" % (7 - 1, shown)
        text = text[: len(text) - decimals] + b"." + text[len(text) - decimals :]
    else:
        text = b"%07d" % shown
    if len(text) != 7:
        raise ValueError("the value does not fit 7 characters")
    return b"=" + text[::-1] + (b"-" if negative else b"0")


# --------------------------------------------------------------------------- stability


@dataclass
class StabilityFilter:
    """Reports a gross weight once the scale has settled; pure (time is passed in).

    A weight is stable when the indicator does not report motion, the gross readings have
    stayed within ``band_kg`` (max - min) for at least ``hold_s`` and ``min_frames`` frames,
    and no gap longer than ``max_gap_s`` broke the run. It is reported once; the next report
    needs the run to break and settle again. Overload (a flag, or a reading above
    ``capacity_kg``), under range, a negative gross, a net reading without its tare, a scale not
    zeroed since power-up and motion are reported as ``ScaleStatus`` on each change, never as a
    weight.

    >>> f = StabilityFilter(band_kg=20, hold_s=1.0)
    >>> [f.update(WeightReading(kg=w, motion=False), t) for w, t in [(100, 0.0), (110, 0.5),
    ...  (105, 1.0)]][-1].kg
    105.0
    """

    band_kg: float
    hold_s: float
    min_frames: int = 3
    capacity_kg: float | None = None
    max_gap_s: float = 1.0
    _state: str | None = None
    _since: float | None = None
    _lo: float = 0.0
    _hi: float = 0.0
    _count: int = 0
    _values: deque[float] = field(default_factory=lambda: deque(maxlen=512))
    _reported: bool = False
    _last_at: float | None = None

    def reset(self) -> None:
        """Forget everything (the line was lost: nothing before the gap may count)."""
        self._state = None
        self._last_at = None
        self._clear()

    def _clear(self) -> None:
        self._since = None
        self._count = 0
        self._values.clear()
        self._reported = False

    def _enter(self, state: ScaleState, now: float) -> ScaleStatus | None:
        self._clear()
        if state == self._state:
            return None
        self._state = state
        return ScaleStatus(state, now)

    def update(self, reading: WeightReading, now: float) -> StableWeight | ScaleStatus | None:
        """Take one frame seen at ``now``; return what changed, if anything."""
        if self._last_at is not None and not 0 <= now - self._last_at <= self.max_gap_s:
            self._clear()  # frames went missing (or the clock jumped): start the run again
        self._last_at = now
        gross = reading.gross_kg
        if reading.overload or (
            self.capacity_kg is not None and gross is not None and gross > self.capacity_kg
        ):
            return self._enter("overload", now)
        if reading.underload:
            return self._enter("underload", now)
        if reading.unzeroed:
            return self._enter("unzeroed", now)
        if gross is None:
            return self._enter("no_gross", now)
        if gross < 0:
            return self._enter("negative", now)
        if reading.motion:
            return self._enter("motion", now)
        if self._since is None:
            self._start(gross, now)
        else:
            lo, hi = min(self._lo, gross), max(self._hi, gross)
            if hi - lo > self.band_kg:
                status = self._enter("motion", now)  # still moving, whatever the flag says
                self._start(gross, now)
                return status
            self._lo, self._hi = lo, hi
            self._count += 1
            self._values.append(gross)
        if (
            not self._reported
            and self._since is not None
            and self._count >= self.min_frames
            and now - self._since >= self.hold_s
        ):
            self._reported = True
            self._state = "stable"
            return StableWeight(
                kg=_round(float(statistics.median(self._values))),
                since=self._since,
                at=now,
                frames=self._count,
                spread_kg=_round(self._hi - self._lo),
            )
        return None

    def _start(self, gross: float, now: float) -> None:
        self._since = now
        self._lo = self._hi = gross
        self._count = 1
        self._values.clear()
        self._values.append(gross)
        self._reported = False


# --------------------------------------------------------------------------- settings


class ToledoOptions(BaseModel):
    """How this Toledo-format indicator is set up."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    tare: bool = Field(
        default=True, description="Frames carry the 6-digit tare field (false: short form)"
    )
    checksum: bool = Field(default=True, description="A checksum byte follows CR")
    mask_parity: bool = Field(
        default=True, description="Clear bit 7 of each byte (a 7E1 line read as 8N1)"
    )
    strict_status: bool = Field(
        default=True,
        description="Hold status words to Mettler's fixed bits; clones may need false",
    )


class Xk3190Options(BaseModel):
    """How this XK3190-format indicator is set up."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    frames: Literal["any", "stx", "equals"] = Field(
        default="stx",
        description="Accepted framing: stx = tF 0 (XOR-checked), equals = tF 1 ('=' reversed "
        "digits, no checksum), any = both. Only for an indicator set to tF 1: its tF 2 frames "
        "('=', sign, digits high first) look alike, and 30520 kg would read as 2503000",
    )


class StabilitySettings(BaseModel):
    """When a weight counts as settled."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    band_kg: float = Field(
        default=20.0, ge=0, description="Largest spread (max - min) of settled readings, kg"
    )
    hold_s: float = Field(
        default=2.0, ge=0, description="How long readings must stay in the band, seconds"
    )
    min_frames: int = Field(default=3, ge=1, description="Fewest frames a settled run holds")
    capacity_kg: float | None = Field(
        default=None, gt=0, description="Readings above this are overload (the scale's Max)"
    )
    max_gap_s: float = Field(
        default=1.0, gt=0, description="A longer gap between frames restarts the settling run"
    )


class WeighbridgeSettings(SerialPortSettings):
    """A weighbridge indicator on a serial line."""

    format: Literal["toledo", "xk3190"] = Field(description="The indicator's continuous format")
    unit: Literal["kg", "t", "lb", "g", "status"] = Field(
        default="kg",
        description="Unit the indicator shows; 'status' takes it from Toledo status words",
    )
    toledo: ToledoOptions = Field(
        default_factory=ToledoOptions, description="Toledo format options"
    )
    xk3190: Xk3190Options = Field(
        default_factory=Xk3190Options, description="XK3190 format options"
    )
    stability: StabilitySettings = Field(
        default_factory=StabilitySettings, description="When a weight counts as settled"
    )
    silence_s: float = Field(
        default=2.0,
        gt=0,
        description="The indicator streams; this long without a byte, or without one valid "
        "frame, is a fault",
    )

    @model_validator(mode="after")
    def _unit_source(self) -> WeighbridgeSettings:
        if self.unit == "status" and self.format != "toledo":
            raise ValueError("unit 'status' needs format 'toledo' (XK3190 frames carry no unit)")
        return self


def make_decoder(settings: WeighbridgeSettings) -> ToledoDecoder | Xk3190Decoder:
    """The codec the settings describe."""
    unit: Unit | None = None if settings.unit == "status" else settings.unit
    if settings.format == "toledo":
        return ToledoDecoder(
            tare=settings.toledo.tare,
            checksum=settings.toledo.checksum,
            mask_parity=settings.toledo.mask_parity,
            strict_status=settings.toledo.strict_status,
            unit=unit,
        )
    return Xk3190Decoder(frames=settings.xk3190.frames, unit=unit or "kg")


def make_filter(settings: WeighbridgeSettings) -> StabilityFilter:
    """The stability filter the settings describe."""
    s = settings.stability
    return StabilityFilter(
        band_kg=s.band_kg,
        hold_s=s.hold_s,
        min_frames=s.min_frames,
        capacity_kg=s.capacity_kg,
        max_gap_s=s.max_gap_s,
    )


# --------------------------------------------------------------------------- driver


class WeighbridgeConnection:
    """An open indicator line (a supervisor ``Device``).

    Bytes that never make a valid frame for ``garbled_s`` (a wrong format or baud rate, a
    damaged line) are a fault like silence: the line talks, but says nothing usable.
    """

    def __init__(
        self,
        reader: AsyncReader,
        decoder: WeightDecoder,
        stability: StabilityFilter,
        clock: Callable[[], float],
        garbled_s: float,
    ) -> None:
        self._reader = reader
        self._decoder = decoder
        self._stability = stability
        self._clock = clock
        self._garbled_s = garbled_s

    async def readings(self) -> AsyncIterator[WeighbridgeReading]:
        """Every frame (``WeightReading`` or ``Rejected``), each followed by the
        ``StableWeight`` / ``ScaleStatus`` it caused. Raises when the line fails."""
        last_valid = self._clock()
        while True:
            chunk = await self._reader.read(READ_SIZE)
            if not chunk:
                raise EOFError("port closed")
            now = self._clock()
            for item in self._decoder.feed(chunk):
                yield item
                if isinstance(item, WeightReading):
                    last_valid = now
                    event = self._stability.update(item, now)
                    if event is not None:
                        yield event
            if now - last_valid > self._garbled_s:
                raise DriverError(
                    f"no valid frame for {self._garbled_s:g} s: wrong format or line settings?"
                )


class Weighbridge:
    """The weighbridge driver: opens the line for the supervisor, one fresh codec and filter
    per opening, so nothing read before a reconnect counts after it."""

    def __init__(
        self, settings: WeighbridgeSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.clock = clock

    @contextlib.asynccontextmanager
    async def open_device(self) -> AsyncIterator[WeighbridgeConnection]:
        """Open the port; the connection closes it on exit."""
        async with open_serial(self.settings) as (reader, _writer):
            yield WeighbridgeConnection(
                reader,
                make_decoder(self.settings),
                make_filter(self.settings),
                self.clock,
                garbled_s=self.settings.silence_s,
            )

    def supervisor(
        self,
        on_reading: Callable[[WeighbridgeReading], None],
        on_state: Callable[[Health], None] = lambda health: None,
        *,
        name: str = "weighbridge",
    ) -> Supervisor[WeighbridgeReading]:
        """A supervisor keeping this indicator open: silence and backoff from the settings."""
        return port_supervisor(
            name,
            self.open_device,
            on_reading,
            on_state,
            reconnect_max_s=self.settings.reconnect_max_s,
            silence_s=self.settings.silence_s,
        )


# --------------------------------------------------------------------------- capture files


def main(argv: list[str] | None = None) -> int:
    """``python -m drivers.weighbridge --format toledo|xk3190 FILE``: decode a capture.

    Prints one JSON reading per line and a last line ``{"accepted": n, "rejected": m}``;
    rejected stretches go to standard error as JSON.
    """
    parser = argparse.ArgumentParser(
        prog="python -m drivers.weighbridge", description="Decode a weighbridge capture file."
    )
    parser.add_argument("--format", choices=["toledo", "xk3190"], required=True)
    parser.add_argument("--unit", choices=["kg", "t", "lb", "g", "status"], default=None)
    parser.add_argument("--no-tare", action="store_true", help="Toledo short form")
    parser.add_argument("--no-checksum", action="store_true", help="Toledo without checksum")
    parser.add_argument("--no-strict-status", action="store_true", help="Toledo clones")
    parser.add_argument("--frames", choices=["any", "stx", "equals"], default="any")
    parser.add_argument("file", type=Path, help="raw bytes as captured from the line ('-': stdin)")
    args = parser.parse_args(argv)
    settings = WeighbridgeSettings(
        port="-",
        format=args.format,
        unit=args.unit or ("status" if args.format == "toledo" else "kg"),
        toledo=ToledoOptions(
            tare=not args.no_tare,
            checksum=not args.no_checksum,
            strict_status=not args.no_strict_status,
        ),
        xk3190=Xk3190Options(frames=args.frames),
    )
    decoder = make_decoder(settings)
    return print_capture(args.file, lambda data: [*decoder.feed(data), *decoder.flush()])


if __name__ == "__main__":
    sys.exit(main())
