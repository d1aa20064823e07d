"""The decision itself: readings against the release note and the ledger, as a pure function.

Comparison (信息比对): plate, containers, seal, weight against the note. Document judgement
(单证判断): the note exists, is signed, valid now, not used or revoked, its balance covers it,
its transit trip ends inside this gate's geofence. Risk: the watch list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from drivers.release_note import ReleaseNote
from gatewayd import geofence, normalize
from gatewayd.documents import NoteDocs, NoteStatus, covers
from gatewayd.events import ContainersRead, GpsFix, PlateRead, SealRead, WeightStable
from gatewayd.reasons import Code, Reason

ReadingKind = Literal["plate", "containers", "qr", "seal", "weight", "gps"]
READING_KINDS: tuple[ReadingKind, ...] = ("plate", "containers", "qr", "seal", "weight", "gps")


@dataclass
class Readings:
    """What one pass has gathered so far."""

    plate: PlateRead | None = None
    containers: ContainersRead | None = None
    qr_payload: str | None = None
    note: ReleaseNote | None = None  # the QR, verified
    qr_error: str | None = None  # why the QR was refused, when it was
    seals: dict[str, SealRead] = field(default_factory=dict)  # by seal id, first read first
    weight: WeightStable | None = None
    gps: GpsFix | None = None  # the latest valid fix

    def add_seal(self, read: SealRead) -> None:
        """Keep a seal's reading; a seal once seen other than sealed in this pass stays so
        (a later clean read of it must not wash out a tamper)."""
        seen = self.seals.get(read.seal_id)
        if seen is None or seen.state == "sealed":
            self.seals[read.seal_id] = read

    def seals_unread(self, docs: NoteDocs | None) -> list[str]:
        """The note's seals not read in this pass."""
        return [s for s in docs.seals if s not in self.seals] if docs is not None else []

    def has(self, kind: ReadingKind) -> bool:
        """Whether a reading of this kind has arrived."""
        if kind == "qr":
            return self.qr_payload is not None
        if kind == "seal":
            return bool(self.seals)
        value: object = getattr(self, kind)
        return value is not None


@dataclass(frozen=True)
class Policy:
    """What this lane checks, from its config and profile."""

    required: frozenset[ReadingKind]
    direction: str  # "entry" or "exit"
    geofence: Sequence[tuple[float, float]] = ()
    min_confidence: float = 0.80
    default_tolerance_kg: float = 500.0
    watch_plates: frozenset[str] = field(default_factory=frozenset)
    watch_containers: frozenset[str] = field(default_factory=frozenset)


def judge(
    policy: Policy,
    readings: Readings,
    docs: NoteDocs | None,
    now: float,
    faulted: dict[ReadingKind, str],
) -> tuple[Reason, ...]:
    """All reasons that stand against releasing this truck now; empty means release.

    ``faulted`` maps a reading kind to the device that should have given it and is down.
    """
    reasons: list[Reason] = []
    for kind in READING_KINDS:
        if kind in policy.required and not readings.has(kind):
            if kind in faulted:
                reasons.append(Reason(Code.DEVICE_FAULT, faulted[kind]))
            else:
                reasons.append(Reason(Code.READING_MISSING, kind))
    reasons += _note_reasons(policy, readings, docs, now)
    if docs is not None:
        reasons += _comparison_reasons(policy, readings, docs)
        reasons += _trip_reasons(policy, readings, docs, faulted)
    reasons += _watchlist_reasons(policy, readings)
    reasons += _confidence_reasons(policy, readings)
    return tuple(sorted(set(reasons)))


def _note_reasons(
    policy: Policy, readings: Readings, docs: NoteDocs | None, now: float
) -> list[Reason]:
    if readings.qr_error is not None:
        return [Reason(Code.NOTE_BAD_SIGNATURE, readings.qr_error)]
    note = readings.note
    if note is None:
        # whatever the profile lists, nobody is released without a release note (a required
        # QR is reported missing, or its scanner down, with the other required readings)
        return [] if "qr" in policy.required else [Reason(Code.READING_MISSING, "qr")]
    if docs is None:
        return [Reason(Code.NOTE_UNKNOWN, note.note_id)]
    reasons = []
    if docs.status is NoteStatus.REVOKED:
        reasons.append(Reason(Code.NOTE_REVOKED, note.note_id))
    elif docs.status is NoteStatus.USED:
        reasons.append(Reason(Code.NOTE_USED, note.note_id))
    if not (
        note.valid_from <= now <= note.valid_until and docs.valid_from <= now <= docs.valid_until
    ):
        reasons.append(Reason(Code.NOTE_EXPIRED, note.note_id))
    if docs.direction not in ("any", policy.direction):
        reasons.append(Reason(Code.NOTE_WRONG_DIRECTION, docs.direction))
    for line in docs.lines:
        if not covers(line.remaining, line.quantity):
            reasons.append(
                Reason(
                    Code.BALANCE_INSUFFICIENT,
                    f"{line.book_id}/{line.line_no}: {line.quantity:g} > {line.remaining:g}",
                )
            )
    return reasons


def _comparison_reasons(policy: Policy, readings: Readings, docs: NoteDocs) -> list[Reason]:
    reasons = []
    if readings.plate is not None:
        read = normalize.plate(readings.plate.text)
        bound = {normalize.plate(docs.plate)}
        if readings.note is not None:
            bound.add(normalize.plate(readings.note.plate))
        if bound != {read}:
            reasons.append(Reason(Code.PLATE_MISMATCH, f"read {read}, note {docs.plate}"))
    if readings.containers is not None:
        seen = {normalize.container(c.number) for c in readings.containers.containers}
        expected = {normalize.container(c) for c in docs.containers}
        signed = {normalize.container(c) for c in readings.note.containers} if readings.note else ()
        if seen != expected or (signed and seen != signed):
            detail = f"read {sorted(seen)}, note {sorted(expected)}"
            reasons.append(Reason(Code.CONTAINER_MISMATCH, detail))
    # What the note binds the truck to is checked whether or not the lane's profile reads it:
    # a lane that cannot read it holds the truck for a human instead of passing it unchecked.
    # (A required reading that is missing is reported, or its device down, already.)
    listed: dict[ReadingKind, bool] = {
        "containers": bool(docs.containers or (readings.note and readings.note.containers)),
        "seal": bool(docs.seals),
        "weight": docs.gross_kg is not None,
    }
    for kind, on_note in listed.items():
        if on_note and kind not in policy.required and not readings.has(kind):
            reasons.append(Reason(Code.READING_MISSING, f"{kind} (on the note)"))
    for seal in readings.seals.values():
        if seal.state != "sealed":
            reasons.append(Reason(Code.SEAL_TAMPERED, f"{seal.seal_id} {seal.state}"))
        if docs.seals and seal.seal_id not in docs.seals:
            detail = f"read {seal.seal_id}, note {','.join(docs.seals)}"
            reasons.append(Reason(Code.SEAL_MISMATCH, detail))
    if "seal" in policy.required and readings.seals:
        # every seal on the note must be read, not just one of them
        for seal_id in readings.seals_unread(docs):
            reasons.append(Reason(Code.SEAL_MISMATCH, f"note seal {seal_id} not read"))
    if readings.weight is not None and docs.gross_kg is not None:
        tolerance = docs.tolerance_kg if docs.tolerance_kg > 0 else policy.default_tolerance_kg
        delta = readings.weight.kg - docs.gross_kg
        if delta > tolerance:
            reasons.append(Reason(Code.OVERWEIGHT, f"{readings.weight.kg:g} kg, +{delta:g}"))
        elif delta < -tolerance:
            reasons.append(Reason(Code.UNDERWEIGHT, f"{readings.weight.kg:g} kg, {delta:g}"))
    return reasons


def _trip_reasons(
    policy: Policy, readings: Readings, docs: NoteDocs, faulted: dict[ReadingKind, str]
) -> list[Reason]:
    trip = docs.trip
    if trip is None or trip.status != "open":
        return []
    fix = readings.gps
    if fix is None:
        if "gps" in faulted:
            return [Reason(Code.DEVICE_FAULT, faulted["gps"])]
        return [Reason(Code.TRIP_OPEN, f"{trip.trip_id}: no valid fix")]
    if not fix.valid or not geofence.contains(policy.geofence, fix.lat, fix.lon):
        return [Reason(Code.TRIP_OPEN, f"{trip.trip_id}: fix outside the gate")]
    return []


def _watchlist_reasons(policy: Policy, readings: Readings) -> list[Reason]:
    reasons = []
    plates = set()
    if readings.plate is not None:
        plates.add(normalize.plate(readings.plate.text))
    if readings.note is not None:
        plates.add(normalize.plate(readings.note.plate))
    for hit in sorted(plates & policy.watch_plates):
        reasons.append(Reason(Code.WATCHLIST, hit))
    if readings.containers is not None:
        numbers = {normalize.container(c.number) for c in readings.containers.containers}
        for hit in sorted(numbers & policy.watch_containers):
            reasons.append(Reason(Code.WATCHLIST, hit))
    return reasons


def _confidence_reasons(policy: Policy, readings: Readings) -> list[Reason]:
    reasons = []
    # "not >=": a confidence that is not a number (NaN) is no confidence
    if readings.plate is not None and not readings.plate.confidence >= policy.min_confidence:
        reasons.append(Reason(Code.LOW_CONFIDENCE, f"plate {readings.plate.confidence:.2f}"))
    if readings.containers is not None:
        for c in readings.containers.containers:
            if not c.verified or not c.confidence >= policy.min_confidence:
                reasons.append(Reason(Code.LOW_CONFIDENCE, f"container {c.number}"))
    return reasons
