"""The plate grammar with plain values: what a release note's plate and a read plate may be."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recognition.plate_grammar import (
    TEMPLATES,
    InvalidComponent,
    InvalidFormat,
    InvalidLength,
    PlateKind,
    compact,
    format_plate,
    is_valid,
    plate_kind,
    validate,
)


@pytest.mark.parametrize(
    ("plate", "kind"),
    [
        ("皖A12345", PlateKind.ORDINARY),
        ("京PL3N67", PlateKind.ORDINARY),
        ("粤BD12345", PlateKind.NEW_ENERGY_SMALL),
        ("沪AFX1234", PlateKind.NEW_ENERGY_SMALL),
        ("浙AA12345", PlateKind.NEW_ENERGY_SMALL),  # 2022 letters for pure electric
        ("苏E12345D", PlateKind.NEW_ENERGY_LARGE),
        ("鲁B1234挂", PlateKind.TRAILER),
        ("川A1234学", PlateKind.COACH),
        ("粤ZF023港", PlateKind.HONG_KONG),
        ("粤Z1234澳", PlateKind.MACAU),
    ],
)
def test_every_layout_is_accepted_and_named(plate: str, kind: PlateKind) -> None:
    assert validate(plate) == plate
    assert plate_kind(plate) is kind


@pytest.mark.parametrize(
    ("typed", "plate"),
    [
        ("皖A·12345", "皖A12345"),
        (" 皖 a 1 2 3 4 5 ", "皖A12345"),
        ("皖Ａ１２３４５", "皖A12345"),  # full-width forms, as a vertical read returns them
        ("皖A-12345", "皖A12345"),
        ("皖A・12345", "皖A12345"),
    ],
)
def test_compact_makes_a_typed_or_read_plate_comparable(typed: str, plate: str) -> None:
    assert compact(typed) == plate
    assert validate(typed) == plate


@pytest.mark.parametrize(
    ("text", "error", "says"),
    [
        ("皖A1234", InvalidLength, "got 6"),
        ("皖A1234567", InvalidLength, "got 9"),
        ("A123456", InvalidComponent, "not a province"),
        ("港A12345", InvalidComponent, "not a province"),
        ("皖112345", InvalidComponent, "issuing-office letter"),
        ("皖AO2345", InvalidComponent, "O is never used"),
        ("皖A1234I", InvalidComponent, "I is never used"),
        ("皖AX12345", InvalidFormat, "position 3"),  # 8 characters: new-energy needs D/F...
        ("皖AD1234X", InvalidFormat, "position 8"),  # ... and digits after the second
        ("皖A1234AF", InvalidFormat, "position 7"),  # large: five digits, then D/F
        ("皖A123挂4", InvalidFormat, "position 6"),
        ("皖Z1234港", InvalidFormat, "position 7"),  # cross-border plates are 粤Z only
    ],
)
def test_invalid_plates_say_what_is_wrong(text: str, error: type[Exception], says: str) -> None:
    with pytest.raises(error, match=says):
        validate(text)
    assert not is_valid(text)


def test_new_energy_rules_hold_position_by_position() -> None:
    assert is_valid("皖AD12345")
    assert is_valid("皖AFA1234")  # second serial character may be a letter
    assert not is_valid("皖AD1A345")  # the last four are digits
    assert is_valid("皖A12345F")
    assert not is_valid("皖A1234AF")  # large: five digits before D/F


def test_format_puts_the_dot_after_the_issuing_letter() -> None:
    assert format_plate("粤bd12345") == "粤B·D12345"


def test_layouts_are_disjoint() -> None:
    # a text matching two layouts would make the kind of a plate ambiguous
    for i, a in enumerate(TEMPLATES):
        for b in TEMPLATES[i + 1 :]:
            if len(a) == len(b):
                assert any(not (pa & pb) for pa, pb in zip(a.positions, b.positions, strict=True))


@st.composite
def plates(draw: st.DrawFn) -> str:
    template = draw(st.sampled_from(TEMPLATES))
    return "".join(draw(st.sampled_from(sorted(p))) for p in template.positions)


@given(plates())
def test_every_text_of_a_layout_validates(plate: str) -> None:
    assert validate(plate) == plate
    assert compact(format_plate(plate)) == plate


@given(plates(), st.data())
def test_an_i_or_o_anywhere_in_the_serial_is_refused(plate: str, data: st.DataObject) -> None:
    k = data.draw(st.integers(min_value=2, max_value=len(plate) - 1))
    bad = plate[:k] + data.draw(st.sampled_from("IO")) + plate[k + 1 :]
    assert not is_valid(bad)
