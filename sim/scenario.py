"""Traffic scenarios: a ledger section and a list of vehicles with what the lane should decide.

Format: docs/scenarios.md. ``load_scenario`` reads a TOML file (errors name key path and line);
``generate`` makes a seeded mix of clean traffic and every kind of anomaly.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from drivers.settings import Section, invalid
from gatewayd.config import BUILTIN_PROFILES
from gatewayd.judge import ReadingKind
from gatewayd.reasons import Code, Outcome
from gatewayd.tomlfile import load_model
from recognition import iso6346

# A time is an absolute TOML datetime, or relative to the start of the run: "+2h", "-1d".
TimeSpec = datetime | str
_RELATIVE = re.compile(r"^([+-])(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def resolve_time(spec: TimeSpec, start: float) -> float:
    """Seconds since the epoch for an absolute or relative time.

    >>> resolve_time("+1h", 1000.0), resolve_time("-30m", 10_000.0)
    (4600.0, 8200.0)
    """
    if isinstance(spec, datetime):
        when = spec if spec.tzinfo else spec.replace(tzinfo=UTC)
        return when.timestamp()
    m = _RELATIVE.match(spec)
    if not m:
        raise ValueError(f"time {spec!r} is neither a datetime nor like '+2h' / '-1d'")
    sign = 1 if m.group(1) == "+" else -1
    return start + sign * float(m.group(2)) * _UNITS[m.group(3)]


def _check_time(value: TimeSpec) -> TimeSpec:
    resolve_time(value, 0.0)
    return value


Time = Annotated[TimeSpec, Field(description="TOML datetime, or '+2h' / '-1d' from the start.")]


class LineDraw(Section):
    book: str = Field(description="Account book id.")
    line: int = Field(ge=1, description="Line number in the book.")
    qty: float = Field(gt=0, description="Quantity this note draws.")


class NoteSpec(Section):
    id: str = Field(min_length=1, max_length=64, description="Release note id.")
    plate: str = Field(min_length=1, max_length=16, description="Plate the note is bound to.")
    containers: list[str] = Field(default_factory=list, max_length=4, description="Boxes.")
    seals: list[str] = Field(default_factory=list, description="E-seal ids on the boxes.")
    gross_kg: float | None = Field(None, gt=0, description="Declared gross weight.")
    tolerance_kg: float = Field(0, ge=0, description="Allowed weight difference; 0: default.")
    direction: Literal["entry", "exit", "any"] = Field("any", description="Where it may be used.")
    valid_from: Time = Field("-1d", description="Start of validity.")
    valid_until: Time = Field("+1d", description="End of validity.")
    lines: list[LineDraw] = Field(default_factory=list, description="Account-book draws.")
    trip: str | None = Field(None, description="Transit trip this pass must close.")
    status: Literal["active", "used", "revoked"] = Field("active", description="Ledger status.")

    _v_from = field_validator("valid_from")(_check_time)
    _v_until = field_validator("valid_until")(_check_time)


class BookSpec(Section):
    book: str = Field(min_length=1, description="Account book id.")
    line: int = Field(ge=1, description="Line number.")
    remaining: float = Field(ge=0, description="Remaining quantity.")
    item: str = Field("", description="What the line is for.")


class TripSpec(Section):
    id: str = Field(min_length=1, description="Trip id.")
    plate: str = Field(min_length=1, description="Vehicle on the trip.")
    status: Literal["open", "closed"] = Field("open", description="Trip status.")


class WatchSpec(Section):
    plates: list[str] = Field(default_factory=list, description="Plates to hold.")
    containers: list[str] = Field(default_factory=list, description="Containers to hold.")


class LedgerSpec(Section):
    notes: list[NoteSpec] = Field(default_factory=list, description="Release notes.")
    books: list[BookSpec] = Field(default_factory=list, description="Account-book lines.")
    trips: list[TripSpec] = Field(default_factory=list, description="Transit trips.")
    watchlist: WatchSpec = Field(default_factory=WatchSpec, description="Watch list.")


class QrSpec(Section):
    note: str | None = Field(None, description="Note id to show, signed by central.")
    plate: str | None = Field(None, description="Plate to sign (default: the note's).")
    containers: list[str] | None = Field(None, description="Boxes to sign (default: note's).")
    valid_from: Time | None = Field(None, description="Signed validity start (default: note's).")
    valid_until: Time | None = Field(None, description="Signed validity end (default: note's).")
    forged: bool = Field(False, description="Alter the signed body: the signature breaks.")
    raw: str | None = Field(None, description="Show this exact payload instead.")

    @model_validator(mode="after")
    def _one_source(self) -> QrSpec:
        if (self.note is None) == (self.raw is None):
            raise invalid("QrSpec", ("note",), "give exactly one of note or raw", self.note)
        return self


class SealSpec(Section):
    id: str = Field(min_length=1, description="Seal id the reader reports.")
    state: Literal["sealed", "opened", "tampered"] = Field("sealed", description="Seal state.")


class GpsSpec(Section):
    lat: float = Field(ge=-90, le=90, description="Latitude, degrees.")
    lon: float = Field(ge=-180, le=180, description="Longitude, degrees.")
    valid: bool = Field(True, description="Whether the receiver has a valid fix.")


class VehicleSpec(Section):
    plate: str | None = Field(None, description="Plate the camera reads.")
    containers: list[str] | None = Field(None, description="Container numbers read.")
    qr: QrSpec | None = Field(None, description="Release note shown.")
    seal: SealSpec | None = Field(None, description="E-seal in the reader's field.")
    weight_kg: float | None = Field(None, gt=0, description="Stable gross weight.")
    gps: GpsSpec | Literal["gate", "outside"] | None = Field(
        None, description="Terminal fix; 'gate' puts it inside the fence, 'outside' beyond it."
    )
    faults: list[ReadingKind] = Field(
        default_factory=list, description="Devices down while this vehicle is at the lane."
    )
    expect: Outcome = Field(description="Decision the lane must reach.")
    reasons: list[Code] | None = Field(
        None, description="Exact reason codes expected (omit to check the decision only)."
    )
    label: str = Field("", description="What this vehicle tests.")


class LaneSpec(Section):
    profile: str = Field("container-entry", description="Lane profile (a built-in one).")
    direction: Literal["entry", "exit"] = Field("entry", description="Lane direction.")

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, name: str) -> str:
        if name not in BUILTIN_PROFILES:
            raise ValueError(f"unknown profile; known: {', '.join(sorted(BUILTIN_PROFILES))}")
        return name


class Scenario(Section):
    """A scenario file."""

    lane: LaneSpec = Field(default_factory=LaneSpec, description="Lane under test.")
    ledger: LedgerSpec = Field(default_factory=LedgerSpec, description="Ledger at the start.")
    vehicles: list[VehicleSpec] = Field(min_length=1, description="Vehicles, in order.")


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario; raises gatewayd.tomlfile.FileError naming each problem."""
    return load_model(path, Scenario)


# -- generated traffic ---------------------------------------------------------------------------

ANOMALIES: tuple[Code, ...] = (
    Code.PLATE_MISMATCH,
    Code.CONTAINER_MISMATCH,
    Code.NOTE_UNKNOWN,
    Code.NOTE_EXPIRED,
    Code.NOTE_USED,
    Code.NOTE_BAD_SIGNATURE,
    Code.SEAL_MISMATCH,
    Code.SEAL_TAMPERED,
    Code.OVERWEIGHT,
    Code.UNDERWEIGHT,
    Code.BALANCE_INSUFFICIENT,
    Code.TRIP_OPEN,
    Code.READING_MISSING,
    Code.DEVICE_FAULT,
    Code.WATCHLIST,
)
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
PLATE_TAIL = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
OWNERS = ("MSCU", "MAEU", "CSNU", "TGHU", "OOLU", "CMAU", "HLXU", "TEMU", "SEGU", "BMOU")


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.used: set[str] = set()
        self.counter = 0
        self.ledger = LedgerSpec()
        self.vehicles: list[VehicleSpec] = []
        self.released: list[VehicleSpec] = []

    def unique(self, make: Callable[[], str]) -> str:
        while True:
            value = make()
            if value not in self.used:
                self.used.add(value)
                return value

    def plate(self) -> str:
        r = self.rng
        return self.unique(
            lambda: (
                r.choice(PROVINCES)
                + r.choice(PLATE_LETTERS)
                + "".join(r.choice(PLATE_TAIL) for _ in range(5))
            )
        )

    def container(self) -> str:
        r = self.rng

        def make() -> str:
            code10 = r.choice(OWNERS) + f"{r.randrange(1_000_000):06d}"
            return code10 + iso6346.calc_check_digit(code10)

        return self.unique(make)

    def seal(self) -> str:
        return self.unique(lambda: f"ES{self.rng.randrange(10**8):08d}")

    def clean(self) -> tuple[NoteSpec, VehicleSpec]:
        """A note in the ledger and a truck that matches it exactly."""
        r = self.rng
        self.counter += 1
        boxes = [self.container() for _ in range(r.choice((1, 1, 1, 2)))]
        seals = [self.seal()]
        gross = round(15_000 + sum(r.uniform(8_000, 26_000) for _ in boxes), 0)
        book = f"BK{self.counter:04d}"
        self.ledger.books.append(BookSpec(book=book, line=1, remaining=1000, item="goods"))
        trip = None
        if r.random() < 0.3:
            trip = f"TR{self.counter:04d}"
        note = NoteSpec(
            id=f"RN{self.counter:05d}",
            plate=self.plate(),
            containers=boxes,
            seals=seals,
            gross_kg=gross,
            tolerance_kg=500,
            direction="entry",
            lines=[LineDraw(book=book, line=1, qty=round(r.uniform(1, 100), 1))],
            trip=trip,
        )
        if trip:
            self.ledger.trips.append(TripSpec(id=trip, plate=note.plate))
        vehicle = VehicleSpec(
            plate=note.plate,
            containers=list(reversed(boxes)),  # any order
            qr=QrSpec(note=note.id),
            seal=SealSpec(id=seals[0]),
            weight_kg=gross + round(r.uniform(-300, 300)),
            gps="gate" if trip or r.random() < 0.5 else None,
            expect=Outcome.RELEASE,
            reasons=[],
            label="clean",
        )
        self.ledger.notes.append(note)
        return note, vehicle

    def _where(self, note: NoteSpec) -> int:
        """Where this very note stands in the ledger: the last, as a rule (just made); by
        identity, as comparing whole notes made a long scenario's generation quadratic."""
        notes = self.ledger.notes
        return next(i for i in range(len(notes) - 1, -1, -1) if notes[i] is note)

    def anomaly(self, code: Code) -> VehicleSpec:
        note, v = self.clean()
        change: dict[str, object] = {
            "label": code.value.lower(),
            "reasons": [code],
            "expect": Outcome.REJECT if code in _REJECTS else Outcome.HOLD,
        }
        if code is Code.PLATE_MISMATCH:
            change["plate"] = self.plate()
        elif code is Code.CONTAINER_MISMATCH:
            change["containers"] = [self.container(), *note.containers[1:]]
        elif code is Code.NOTE_UNKNOWN:
            # central signed it, but the lane's ledger never received it
            del self.ledger.notes[self._where(note)]
            change["qr"] = QrSpec(
                note=note.id,
                plate=note.plate,
                containers=note.containers,
                valid_from=note.valid_from,
                valid_until=note.valid_until,
            )
        elif code is Code.NOTE_EXPIRED:
            expired = note.model_copy(update={"valid_from": "-3d", "valid_until": "-1d"})
            self.ledger.notes[self._where(note)] = expired
        elif code is Code.NOTE_USED and self.released:
            del self.ledger.notes[self._where(note)]
            original = self.rng.choice(self.released)
            return original.model_copy(update=change)
        elif code is Code.NOTE_BAD_SIGNATURE:
            change["qr"] = QrSpec(note=note.id, forged=True)
        elif code is Code.SEAL_MISMATCH:
            change["seal"] = SealSpec(id=self.seal())
        elif code is Code.SEAL_TAMPERED:
            change["seal"] = SealSpec(
                id=note.seals[0], state=self.rng.choice(("opened", "tampered"))
            )
        elif code is Code.OVERWEIGHT:
            change["weight_kg"] = (note.gross_kg or 0) + self.rng.uniform(1_500, 6_000)
        elif code is Code.UNDERWEIGHT:
            change["weight_kg"] = (note.gross_kg or 0) - self.rng.uniform(1_500, 6_000)
        elif code is Code.BALANCE_INSUFFICIENT:
            draw = note.lines[0]
            for i, b in enumerate(self.ledger.books):
                if b.book == draw.book:
                    self.ledger.books[i] = b.model_copy(update={"remaining": draw.qty / 2})
        elif code is Code.TRIP_OPEN:
            if note.trip is None:
                trip = f"TR{self.counter:04d}"
                self.ledger.trips.append(TripSpec(id=trip, plate=note.plate))
                self.ledger.notes[self._where(note)] = note.model_copy(update={"trip": trip})
            change["gps"] = "outside"
        elif code is Code.READING_MISSING:
            change[self.rng.choice(("weight_kg", "seal"))] = None
        elif code is Code.DEVICE_FAULT:
            kind = self.rng.choice(("seal", "weight"))
            change["faults"] = [kind]
        elif code is Code.WATCHLIST:
            self.ledger.watchlist.plates.append(note.plate)
        else:
            raise AssertionError(code)
        return v.model_copy(update=change)


_REJECTS = {
    Code.NOTE_UNKNOWN,
    Code.NOTE_EXPIRED,
    Code.NOTE_USED,
    Code.NOTE_BAD_SIGNATURE,
    Code.BALANCE_INSUFFICIENT,
}


def generate(vehicles: int, seed: int) -> Scenario:
    """A seeded mix: about 80 % clean traffic, and in every 100 vehicles each anomaly at least
    once (each anomaly vehicle carries exactly one fault, so its reason code is known)."""
    if vehicles < 1:
        raise ValueError("need at least one vehicle")
    g = _Gen(seed)
    for start in range(0, vehicles, 100):
        size = min(100, vehicles - start)
        n_anomalies = max(1, round(size * 0.2)) if size >= 20 else round(size * 0.2)
        codes = list(ANOMALIES[:n_anomalies])
        while len(codes) < n_anomalies:
            codes.append(g.rng.choice(ANOMALIES))
        plan: list[Code | None] = [*codes, *([None] * (size - len(codes)))]
        g.rng.shuffle(plan)
        # a reused note needs an earlier release: move NOTE_USED after the first clean vehicle
        if Code.NOTE_USED in plan:
            i, first_clean = plan.index(Code.NOTE_USED), plan.index(None)
            if i < first_clean and not g.released:
                plan[i], plan[first_clean] = plan[first_clean], plan[i]
        for code in plan:
            if code is None:
                _, vehicle = g.clean()
                g.released.append(vehicle)
            else:
                vehicle = g.anomaly(code)
            g.vehicles.append(vehicle)
    return Scenario(ledger=g.ledger, vehicles=g.vehicles)


def fence_points(
    polygon: list[tuple[float, float]],
) -> tuple[tuple[float, float], tuple[float, float]]:
    """A point inside the fence (its centroid) and one well outside it."""
    lats, lons = [p[0] for p in polygon], [p[1] for p in polygon]
    return (sum(lats) / len(lats), sum(lons) / len(lons)), (max(lats) + 0.02, max(lons) + 0.02)
