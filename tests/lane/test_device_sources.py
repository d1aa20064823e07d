"""What a device source hands the lane between passes, driven with plain driver readings."""

from __future__ import annotations

from typing import cast

from drivers.eseal import EsealReader, NoSeal, SealReading
from drivers.weighbridge import ScaleStatus, StableWeight, Weighbridge, WeightReading
from gatewayd.devices import EsealSource, WeighbridgeSource
from gatewayd.events import Event, SealRead, WeightStable


def scale() -> tuple[WeighbridgeSource, list[Event]]:
    # the driver itself is not run: its readings are handed to the source as it would
    source = WeighbridgeSource(cast(Weighbridge, None), name="weighbridge", min_vehicle_kg=500)
    emitted: list[Event] = []
    source._emit = emitted.append
    return source, emitted


def settled(kg: float) -> StableWeight:
    return StableWeight(kg=kg, since=0.0, at=1.0, frames=5, spread_kg=2.0)


def test_the_next_trucks_weight_settled_before_the_last_pass_closed_is_kept_for_its_pass() -> None:
    source, emitted = scale()
    source.trigger("P1")
    source._on_reading(settled(30_100))  # truck 1 on the deck
    source._on_reading(ScaleStatus("motion", 2.0))  # it drives off, through the barrier
    source._on_reading(WeightReading(kg=12, motion=False))  # the deck empty
    source._on_reading(settled(24_600))  # truck 2 settles while P1's arm is still up
    source.pass_closed("P1")
    emitted.clear()
    source.trigger("P2")
    assert emitted == [WeightStable(24_600)]


def test_a_weight_from_a_deck_not_emptied_since_the_pass_began_is_forgotten_with_it() -> None:
    source, emitted = scale()
    source.trigger("P1")
    source._on_reading(settled(30_100))
    source.pass_closed("P1")  # closed with its truck still standing on the deck
    emitted.clear()
    source.trigger("P2")
    assert emitted == []
    # nor is one it settled at again after moving on the deck: the deck was never empty
    source._on_reading(settled(28_000))
    source._on_reading(WeightReading(kg=27_000, motion=True))
    source._on_reading(settled(28_050))
    source.pass_closed("P2")
    emitted.clear()
    source.trigger("P3")
    assert emitted == []


def reader() -> tuple[EsealSource, list[Event]]:
    source = EsealSource(cast(EsealReader, None), name="eseal")
    emitted: list[Event] = []
    source._emit = emitted.append
    return source, emitted


def test_the_next_trucks_seal_read_before_the_last_pass_closed_is_kept_for_its_pass() -> None:
    # The reader reports a seal once, as it enters the field: in a queue, the next truck's
    # seal is read while the last pass's arm is still up, and is never reported again.
    source, emitted = reader()
    source.trigger("P1")
    source._on_reading(SealReading("ES-A", "sealed", 90, 3))  # truck 1
    source._on_reading(NoSeal())  # it drives on, through the barrier
    source._on_reading(SealReading("ES-B", "sealed", 80, 1))  # truck 2 pulls up behind
    source.pass_closed("P1")
    emitted.clear()
    source.trigger("P2")
    assert emitted == [SealRead("ES-B", "sealed", 80)]


def test_a_seal_still_in_the_field_when_its_pass_closed_is_forgotten_with_it() -> None:
    source, emitted = reader()
    source.trigger("P1")
    source._on_reading(SealReading("ES-A", "sealed", 90, 3))
    source.pass_closed("P1")  # held, the truck turned away: its seal is not the next truck's
    emitted.clear()
    source.trigger("P2")
    assert emitted == []
