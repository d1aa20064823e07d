"""Commands the lane core returns; the daemon's executor carries them out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from gatewayd.reasons import Outcome, Reason

Light = Literal["red", "green", "off"]


@dataclass(frozen=True)
class OpenBarrier:
    """Lift the barrier (only ever for a committed release or an audited override)."""

    pass_id: str


@dataclass(frozen=True)
class CloseBarrier:
    """Lower the barrier (only ever with the safety loop clear)."""


@dataclass(frozen=True)
class StopBarrier:
    """Stop the arm where it is (both barrier coils off): something moved under an arm that
    was being lowered with no release to lift it for."""


@dataclass(frozen=True)
class SetLight:
    """Set the traffic light."""

    color: Light


@dataclass(frozen=True)
class Display:
    """Show a message to the driver."""

    text: str


@dataclass(frozen=True)
class UnlockSeal:
    """Unlock the e-seal (entry lanes, after a release)."""

    seal_id: str


@dataclass(frozen=True)
class ArmSeal:
    """Arm the e-seal (exit lanes, after a release)."""

    seal_id: str


@dataclass(frozen=True)
class Capture:
    """A vehicle arrived: cameras take their burst of frames for this pass."""

    pass_id: str


@dataclass(frozen=True)
class LoadDocuments:
    """Fetch a release note and what it depends on from the ledger."""

    note_id: str


@dataclass(frozen=True)
class WriteOffLine:
    """Quantity a release draws from one account-book line."""

    book_id: str
    line_no: int
    quantity: float


@dataclass(frozen=True)
class PassRecord:
    """Everything about one pass that is kept and sent to central."""

    pass_id: str
    lane_id: str
    opened_at: float
    decided_at: float
    outcome: Outcome
    reasons: tuple[Reason, ...]
    note_id: str | None
    plate: str | None
    containers: tuple[str, ...]
    readings: dict[str, Any] = field(default_factory=dict)
    write_off: tuple[WriteOffLine, ...] = ()
    trip_id: str | None = None
    override_id: str | None = None
    evidence: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view, the shape central receives."""
        return {
            "pass_id": self.pass_id,
            "lane": self.lane_id,
            "opened_at": self.opened_at,
            "decided_at": self.decided_at,
            "decision": self.outcome.value,
            "reasons": [{"code": r.code.value, "detail": r.detail} for r in self.reasons],
            "note_id": self.note_id,
            "plate": self.plate,
            "containers": list(self.containers),
            "readings": self.readings,
            "write_off": [
                {"book": w.book_id, "line": w.line_no, "quantity": w.quantity}
                for w in self.write_off
            ],
            "trip_id": self.trip_id,
            "override_id": self.override_id,
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True)
class CommitPass:
    """Write the pass (and, for a release, the write-off) in one ledger transaction.

    The ledger re-checks the note and balances inside the transaction and answers with
    ``PassCommitted``; only then does the barrier move.
    """

    record: PassRecord


@dataclass(frozen=True)
class AuditOverride:
    """Record an officer override of a pass already written, in the ledger's audit."""

    pass_id: str
    action: Literal["release", "hold"]
    officer: str
    reason: str
    override_id: str
    record: PassRecord
    requested_by: str = ""  # as in ``events.Override``


@dataclass(frozen=True)
class PassClosed:
    """The pass is over: the barrier closed behind it, or the truck left the lane."""

    pass_id: str


@dataclass(frozen=True)
class Alert:
    """Something a human should know about now."""

    kind: str
    message: str
    pass_id: str | None = None


Command = (
    OpenBarrier
    | CloseBarrier
    | StopBarrier
    | SetLight
    | Display
    | UnlockSeal
    | ArmSeal
    | Capture
    | LoadDocuments
    | CommitPass
    | AuditOverride
    | PassClosed
    | Alert
)
