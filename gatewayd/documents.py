"""The ledger facts a decision needs, as plain values (the core never reads SQLite)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# Quantities are floats: 0.3 less two draws of 0.1 leaves 0.09999999999999998. A draw is
# covered when it exceeds the balance by no more than this (quantities carry a few decimals).
QUANTITY_SLACK = 1e-6


def covers(remaining: float, quantity: float) -> bool:
    """Whether a balance covers a draw, floating-point dust aside.

    >>> covers(0.3 - 0.1 - 0.1, 0.1)
    True
    >>> covers(0.09, 0.1)
    False
    """
    return quantity <= remaining + QUANTITY_SLACK


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
