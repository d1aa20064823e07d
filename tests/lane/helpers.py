"""Plain-value builders for the lane core tests."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from drivers.release_note import ReleaseNote, public_keys
from gatewayd.commands import Command
from gatewayd.documents import NoteDocs, NoteLine, NoteStatus, Trip
from gatewayd.events import (
    BarrierChanged,
    ContainerSeen,
    ContainersRead,
    DocumentsLoaded,
    Event,
    GpsFix,
    LoopChanged,
    PlateRead,
    QrScanned,
    SealRead,
    WeightStable,
)
from gatewayd.judge import Policy
from gatewayd.lane import LaneCore, LaneSettings
from sim.central import SimCentral

CENTRAL = SimCentral(bytes(range(32)))
NOW = 1_800_000_000.0
FENCE = ((22.0, 113.0), (22.0, 113.01), (21.99, 113.01), (21.99, 113.0))
INSIDE = (21.995, 113.005)
OUTSIDE = (21.9, 113.2)
PLATE = "沪A12345"
BOXES = ("MSCU1234565", "TGHU7654328")
SEAL = "ES00000001"


def settings(**overrides: object) -> LaneSettings:
    """A container-entry lane."""
    base: dict[str, object] = {
        "lane_id": "L1",
        "policy": Policy(
            required=frozenset({"plate", "containers", "qr", "seal", "weight"}),
            direction="entry",
            geofence=FENCE,
        ),
        "keys": public_keys([CENTRAL.public_key]),
        "devices": {
            "plate": "plate-cam",
            "containers": "box-cams",
            "qr": "qr",
            "seal": "eseal",
            "weight": "weighbridge",
            "gps": "gps",
        },
        "seal_action": "unlock",
        "decision_deadline_s": 20.0,
        "barrier_timeout_s": 4.0,
        "settle_s": 5.0,
        "withdraw_s": 15.0,
    }
    base.update(overrides)
    return LaneSettings(**base)  # type: ignore[arg-type]


def core(**overrides: object) -> LaneCore:
    """A lane core whose passes are named P1, P2, ..."""
    counter = itertools.count(1)
    return LaneCore(settings(**overrides), lambda now: f"P{next(counter)}")


def note(**overrides: object) -> ReleaseNote:
    """The release note the QR carries."""
    base: dict[str, object] = {
        "note_id": "RN1",
        "plate": PLATE,
        "containers": BOXES,
        "valid_from": int(NOW - 86400),
        "valid_until": int(NOW + 86400),
    }
    base.update(overrides)
    return ReleaseNote(**base)  # type: ignore[arg-type]


def docs(**overrides: object) -> NoteDocs:
    """The ledger's copy of the note."""
    base: dict[str, object] = {
        "note_id": "RN1",
        "plate": PLATE,
        "containers": BOXES,
        "seals": (SEAL,),
        "gross_kg": 30_000.0,
        "tolerance_kg": 500.0,
        "direction": "entry",
        "valid_from": NOW - 86400,
        "valid_until": NOW + 86400,
        "status": NoteStatus.ACTIVE,
        "lines": (NoteLine("BK1", 1, 10.0, 100.0),),
        "trip": None,
    }
    base.update(overrides)
    return NoteDocs(**base)  # type: ignore[arg-type]


def trip_open() -> Trip:
    """An open transit trip."""
    return Trip("TR1", "open")


def readings(
    *,
    plate: str = PLATE,
    boxes: Iterable[str] = BOXES,
    qr: str | None = None,
    seal: tuple[str, str] = (SEAL, "sealed"),
    kg: float = 30_100.0,
) -> list[Event]:
    """A full set of matching readings (QR signed by central)."""
    return [
        PlateRead(plate, 0.97),
        ContainersRead(tuple(ContainerSeen(b) for b in boxes)),
        QrScanned(qr if qr is not None else CENTRAL.sign(note())),
        SealRead(seal[0], seal[1]),  # type: ignore[arg-type]
        WeightStable(kg),
    ]


def feed(lane: LaneCore, events: Iterable[Event], now: float = NOW) -> list[Command]:
    """Hand events to the core; return every command, answering ledger lookups with ``docs()``
    unless a DocumentsLoaded is in the events already."""
    out: list[Command] = []
    for event in events:
        out += lane.handle(event, now)
    return out


def arrive(lane: LaneCore, now: float = NOW) -> list[Command]:
    """A truck stops on the arrival loop in front of a closed barrier; the arrival's commands
    (the barrier's first report, which sets the light, comes before)."""
    lane.handle(BarrierChanged("closed"), now)
    return lane.handle(LoopChanged("arrival", True), now)


def gps(at: tuple[float, float], valid: bool = True) -> GpsFix:
    """A fix at (lat, lon)."""
    return GpsFix(at[0], at[1], valid, NOW)


def loaded(d: NoteDocs | None = None, note_id: str = "RN1") -> DocumentsLoaded:
    """The ledger's answer: the note (``docs()`` unless given)."""
    return DocumentsLoaded(note_id, docs() if d is None else d)


def unknown(note_id: str = "RN1") -> DocumentsLoaded:
    """The ledger's answer when it lacks the note."""
    return DocumentsLoaded(note_id, None)
