"""Events the lane core consumes. Each is a plain value; time is passed beside it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gatewayd.documents import NoteDocs
from gatewayd.reasons import Outcome, Reason

Loop = Literal["arrival", "safety", "exit"]
BarrierPosition = Literal["open", "closed", "moving", "unknown"]
SealState = Literal["sealed", "opened", "tampered"]


@dataclass(frozen=True)
class LoopChanged:
    """A loop detector changed: ``occupied`` is its new state."""

    loop: Loop
    occupied: bool


@dataclass(frozen=True)
class BarrierChanged:
    """The barrier's limit switches report a new position."""

    position: BarrierPosition


@dataclass(frozen=True)
class PlateRead:
    """The plate as read (and fused over frames) by the plate camera."""

    text: str
    confidence: float = 1.0
    evidence: tuple[str, ...] = ()
    pass_id: str | None = None  # the pass whose frames were read (None: the current one)


@dataclass(frozen=True)
class ContainerSeen:
    """One container number as read; ``verified`` means its check digit was seen and holds."""

    number: str
    verified: bool = True
    confidence: float = 1.0
    size_type: str | None = None


@dataclass(frozen=True)
class ContainersRead:
    """All container numbers read in this pass (0, 1 or 2 boxes)."""

    containers: tuple[ContainerSeen, ...]
    evidence: tuple[str, ...] = ()
    pass_id: str | None = None  # the pass whose frames were read (None: the current one)


@dataclass(frozen=True)
class QrScanned:
    """A QR payload from the scanner or a camera."""

    payload: str
    pass_id: str | None = None  # the pass whose frames a camera decoded (None: the current one)


@dataclass(frozen=True)
class SealRead:
    """The e-seal in the reader's field."""

    seal_id: str
    state: SealState
    battery_pct: int | None = None


@dataclass(frozen=True)
class WeightStable:
    """A stable gross weight from the weighbridge."""

    kg: float


@dataclass(frozen=True)
class GpsFix:
    """A fix of the vehicle's terminal; only ``valid`` fixes can close a trip."""

    lat: float
    lon: float
    valid: bool
    time: float | None = None  # seconds since the epoch, UTC


@dataclass(frozen=True)
class Tick:
    """Time has passed; deadlines are checked."""


@dataclass(frozen=True)
class DeviceFault:
    """A device went down (unreachable, silent, or not reporting in time)."""

    device: str
    detail: str = ""


@dataclass(frozen=True)
class DeviceRecovered:
    """A device that was down works again."""

    device: str


@dataclass(frozen=True)
class Override:
    """An officer's audited decision on one pass; refused unless that pass is still the one
    at the lane when the core takes it (the truck may have changed meanwhile)."""

    action: Literal["release", "hold"]
    officer: str
    reason: str
    override_id: str
    pass_id: str
    # who asked, as the lane knows it (the control socket's Unix user, or central's command):
    # the officer's id is what the asker typed, this is what the lane checked
    requested_by: str = ""


@dataclass(frozen=True)
class DocumentsLoaded:
    """The ledger's answer to ``LoadDocuments``: the note, or None when unknown."""

    note_id: str
    docs: NoteDocs | None


@dataclass(frozen=True)
class PassCommitted:
    """The ledger's answer to ``CommitPass``: the outcome as written (it may differ, e.g.
    when a neighbouring lane used the note in the meantime)."""

    pass_id: str
    outcome: Outcome
    reasons: tuple[Reason, ...]


@dataclass(frozen=True)
class WatchlistChanged:
    """The watch list as it now stands (normalised plates and container numbers)."""

    plates: frozenset[str]
    containers: frozenset[str]


Reading = PlateRead | ContainersRead | QrScanned | SealRead | WeightStable | GpsFix
Event = (
    LoopChanged
    | BarrierChanged
    | Reading
    | Tick
    | DeviceFault
    | DeviceRecovered
    | Override
    | DocumentsLoaded
    | PassCommitted
    | WatchlistChanged
)
