"""The judge on plain values: what the note binds a truck to is checked whatever the lane's
profile reads, nobody is released without a note, and a reading of no confidence is doubt."""

from __future__ import annotations

from drivers.release_note import decode, public_keys
from gatewayd.events import ContainerSeen, ContainersRead, PlateRead, SealRead, WeightStable
from gatewayd.judge import Policy, Readings, judge
from gatewayd.reasons import Code, Outcome, Reason, outcome_of

from .helpers import BOXES, CENTRAL, FENCE, NOW, PLATE, SEAL, docs, note

EMPTY_ENTRY = Policy(required=frozenset({"plate", "qr", "weight"}), direction="entry")
CONTAINER_ENTRY = Policy(
    required=frozenset({"plate", "containers", "qr", "seal", "weight"}),
    direction="entry",
    geofence=FENCE,
)


def signed(**overrides: object) -> Readings:
    payload = CENTRAL.sign(note(**overrides))
    return Readings(
        plate=PlateRead(PLATE, 0.97),
        qr_payload=payload,
        note=decode(payload, public_keys([CENTRAL.public_key])),
        weight=WeightStable(30_100),
    )


def test_a_lane_that_reads_no_boxes_holds_a_truck_whose_note_lists_boxes_and_a_seal() -> None:
    # an empty-entry lane (plate, note, weight): a loaded truck of the right weight would
    # otherwise pass with whatever boxes and seal it carries
    reasons = judge(EMPTY_ENTRY, signed(), docs(), NOW, {})
    assert outcome_of(reasons) is Outcome.HOLD
    assert Reason(Code.READING_MISSING, "containers (on the note)") in reasons
    assert Reason(Code.READING_MISSING, "seal (on the note)") in reasons


def test_the_same_lane_releases_an_empty_truck_on_a_note_for_an_empty_truck() -> None:
    empty = docs(containers=(), seals=())
    assert judge(EMPTY_ENTRY, signed(containers=()), empty, NOW, {}) == ()


def test_nobody_is_released_without_a_note_whatever_the_profile_reads() -> None:
    plates_only = Policy(required=frozenset({"plate"}), direction="entry")
    reasons = judge(plates_only, Readings(plate=PlateRead(PLATE, 0.97)), None, NOW, {})
    assert reasons == (Reason(Code.READING_MISSING, "qr"),)
    assert outcome_of(reasons) is not Outcome.RELEASE


def test_a_plate_or_box_read_with_no_confidence_at_all_is_doubt() -> None:
    read = signed()
    read.plate = PlateRead(PLATE, float("nan"))
    read.containers = ContainersRead(
        tuple(ContainerSeen(b, confidence=float("nan")) for b in BOXES)
    )
    read.seals = {SEAL: SealRead(SEAL, "sealed")}
    reasons = judge(CONTAINER_ENTRY, read, docs(), NOW, {})
    assert {r.code for r in reasons} == {Code.LOW_CONFIDENCE}
    assert len(reasons) == 3


def test_boxes_are_checked_against_the_signed_note_as_well_as_the_ledger() -> None:
    # the ledger's copy and the note in the driver's hand disagree: the boxes read match
    # only one of them, and the truck is held for a human rather than passed on either
    read = signed(containers=("MSCU1234565",))
    read.containers = ContainersRead(tuple(ContainerSeen(b) for b in BOXES))
    read.seals = {SEAL: SealRead(SEAL, "sealed")}
    reasons = judge(CONTAINER_ENTRY, read, docs(), NOW, {})
    assert [r.code for r in reasons] == [Code.CONTAINER_MISMATCH]
