"""Decisions and the machine-readable reason codes that justify them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    """What the lane does with a truck."""

    RELEASE = "release"  # documents and readings agree: lift the barrier
    HOLD = "hold"  # documents stand but something needs a human: inspection bay
    REJECT = "reject"  # no right to pass on these documents: turned away


class Code(StrEnum):
    """Why a pass was held or rejected. Stable strings: central and officers key on them."""

    PLATE_MISMATCH = "PLATE_MISMATCH"
    CONTAINER_MISMATCH = "CONTAINER_MISMATCH"
    NOTE_UNKNOWN = "NOTE_UNKNOWN"
    NOTE_EXPIRED = "NOTE_EXPIRED"
    NOTE_USED = "NOTE_USED"
    NOTE_REVOKED = "NOTE_REVOKED"
    NOTE_BAD_SIGNATURE = "NOTE_BAD_SIGNATURE"
    NOTE_WRONG_DIRECTION = "NOTE_WRONG_DIRECTION"
    SEAL_MISMATCH = "SEAL_MISMATCH"
    SEAL_TAMPERED = "SEAL_TAMPERED"
    OVERWEIGHT = "OVERWEIGHT"
    UNDERWEIGHT = "UNDERWEIGHT"
    BALANCE_INSUFFICIENT = "BALANCE_INSUFFICIENT"
    TRIP_OPEN = "TRIP_OPEN"
    READING_MISSING = "READING_MISSING"
    LOW_CONFIDENCE = "LOW_CONFIDENCE"
    DEVICE_FAULT = "DEVICE_FAULT"
    WATCHLIST = "WATCHLIST"
    RULE = "RULE"
    OVERRIDE = "OVERRIDE"


# The truck has no right to pass on its documents: these turn it away.
REJECT_CODES = frozenset(
    {
        Code.NOTE_UNKNOWN,
        Code.NOTE_EXPIRED,
        Code.NOTE_USED,
        Code.NOTE_REVOKED,
        Code.NOTE_BAD_SIGNATURE,
        Code.NOTE_WRONG_DIRECTION,
        Code.BALANCE_INSUFFICIENT,
    }
)


@dataclass(frozen=True, order=True)
class Reason:
    """One reason code with a human detail (which reading, which line, by how much)."""

    code: Code
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.code.value}({self.detail})" if self.detail else self.code.value


def outcome_of(reasons: Iterable[Reason], *, reject: Iterable[Code] = ()) -> Outcome:
    """REJECT if any reason is a document failure, HOLD if any other reason, else RELEASE.

    ``reject`` names further codes that reject here (a rule may ask for it).

    >>> outcome_of([])
    <Outcome.RELEASE: 'release'>
    >>> outcome_of([Reason(Code.PLATE_MISMATCH), Reason(Code.NOTE_USED)])
    <Outcome.REJECT: 'reject'>
    """
    codes = {r.code for r in reasons}
    if codes & (REJECT_CODES | set(reject)):
        return Outcome.REJECT
    return Outcome.HOLD if codes else Outcome.RELEASE
