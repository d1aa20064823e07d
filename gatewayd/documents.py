"""The ledger facts a decision needs, as plain values (the core never reads SQLite)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class NoteStatus(StrEnum):
    """Where a release note stands in the ledger."""

    ACTIVE = "active"
    USED = "used"
    REVOKED = "revoked"


@dataclass(frozen=True)
class NoteLine:
    """One account-book line a note draws on, with the book's remaining quantity."""

    book_id: str
    line_no: int
    quantity: float
    remaining: float


@dataclass(frozen=True)
class Trip:
    """A GPS transit trip that must end inside this gate's geofence."""

    trip_id: str
    status: str  # "open" or "closed"


@dataclass(frozen=True)
class NoteDocs:
    """A release note as the ledger holds it, with the balances and trip it depends on."""

    note_id: str
    plate: str
    containers: tuple[str, ...]
    seals: tuple[str, ...]
    gross_kg: float | None
    tolerance_kg: float
    direction: str  # "entry", "exit" or "any"
    valid_from: float
    valid_until: float
    status: NoteStatus
    lines: tuple[NoteLine, ...] = ()
    trip: Trip | None = None
