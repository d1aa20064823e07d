"""Container numbers from text pieces and readings: plain values, no images, no OCR."""

from __future__ import annotations

import numpy as np
import pytest

from recognition import iso6346
from recognition.containers import (
    ContainerReading,
    Piece,
    assemble,
    find_size_type,
    fuse_containers,
    normalise_text,
    parse_code,
    parse_size_type,
)


def verified_numbers(pieces: list[Piece]) -> list[str]:
    return [c.code.number for c in assemble(pieces) if c.code.verified]


# --- normalising what the recogniser returns


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("ＴＥＭＵ５０３７０２９", "TEMU5037029"),  # vertical codes come back full width
        ("Ｘ\nＩ\nＮ\nＵ", "XINU"),
        ("157721④", "1577214"),  # a boxed digit read as an enclosed one
        ("BEAU265693Ⅲ", "BEAU265693III"),  # Roman numeral three: box strokes and a 1
        ("503702回", "503702?"),  # a boxed digit taken for a CJK glyph is junk, not a digit
        ("MSKU 360 516 [1]", "MSKU3605161"),
        ("tcnu-720079·4", "TCNU7200794"),
    ],
)
def test_normalise_text(raw: str, norm: str) -> None:
    assert normalise_text(raw) == norm


# --- parsing one string against the layout


def test_a_digit_in_the_owner_code_is_read_as_its_look_alike_letter() -> None:
    code = parse_code("X1NU1577214")
    assert code is not None
    assert (code.number, code.verified, code.corrections) == ("XINU1577214", True, 1)


def test_a_letter_in_the_serial_is_read_as_its_look_alike_digit() -> None:
    code = parse_code("MSKU386GO36")
    assert code is not None
    assert (code.number, code.verified, code.corrections) == ("MSKU3866036", True, 2)


def test_a_stencilled_zero_read_as_c_is_a_zero() -> None:
    # the bridges of a stencil break the ring of a 0; boxed, it reads as C
    code = parse_code("TGHU974814C")
    assert code is not None
    assert (code.number, code.verified, code.corrections) == ("TGHU9748140", True, 1)


def test_three_wrong_kinds_are_guesswork_not_a_correction() -> None:
    assert parse_code("MSKU3B6GO36") is None


def test_a_zero_in_the_owner_code_stands_for_o_alone() -> None:
    # QOLU1922710 is valid, OOLU1922710 is not: a 0 is not tried as Q or D until one fits
    assert iso6346.is_valid("QOLU1922710")
    code = parse_code("0OLU1922710")
    assert code is not None
    assert (code.number, code.verified) == ("OOLU1922710", False)
    code = parse_code("00LU1000070")
    assert code is not None
    assert (code.number, code.verified, code.corrections) == ("OOLU1000070", True, 2)


def test_a_corrected_misreading_is_no_likelier_to_verify_than_any_other() -> None:
    # OOLU numbers read with 00 for OO and one serial digit wrong: the corrections must not
    # give the check digit several tries. With O, Q and D all tried for each 0, 68 % of
    # these came out verified, as other numbers; what is left is the check digit's own
    # collision (a remainder of 10 is written 0), about 1.5 %.
    cases = verified = 0
    for serial in range(0, 1_000_000, 997):
        number = "OOLU" + f"{serial:06d}"
        number += iso6346.calc_check_digit(number)
        for at in range(4, 10):
            wrong = number[:at] + str((int(number[at]) + 3) % 10) + number[at + 1 :]
            code = parse_code("00" + wrong[2:])
            assert code is not None
            cases += 1
            verified += code.verified
    assert verified <= cases * 0.02


def test_a_wrong_check_digit_is_not_corrected() -> None:
    code = parse_code("MSKU3866037")
    assert code is not None
    assert not code.verified
    assert code.number == "MSKU3866037"


def test_a_number_without_its_check_digit_is_never_verified() -> None:
    code = parse_code("MSKU386603")
    assert code is not None
    assert (code.number, code.verified) == ("MSKU386603", False)


@pytest.mark.parametrize("text", ["MAXGROSS30", "30480KGS67200", "TARE2210KGS", "AB12345678", ""])
def test_other_text_is_no_number(text: str) -> None:
    code = parse_code(text)
    assert code is None or not code.verified


def test_size_type() -> None:
    assert parse_size_type("22G1") == "22G1"
    assert parse_size_type("45R1") == "45R1"
    assert parse_size_type("2261") == "22G1"  # G read as 6
    assert parse_size_type("2089") is None  # a piece of a serial number
    assert parse_size_type("MSKU") is None


# --- assembling pieces by where they sit


def test_owner_serial_and_boxed_check_digit_on_one_line() -> None:
    pieces = [
        Piece("BEAU", 1.0, (879, 511, 1033, 589)),
        Piece("265693", 1.0, (1077, 506, 1305, 595)),
        Piece("1", 0.94, (1328, 530, 1383, 587)),
        Piece("22G1", 1.0, (1074, 575, 1227, 668)),
        Piece("MAXGROSS", 1.0, (842, 662, 1026, 712)),
    ]
    cands = assemble(pieces)
    assert cands[0].code.number == "BEAU2656931"
    assert cands[0].code.verified
    assert find_size_type(pieces, cands[0]) == "22G1"


def test_owner_above_serial_on_two_lines() -> None:
    pieces = [
        Piece("HALU", 1.0, (840, 304, 1054, 418)),
        Piece("2089", 1.0, (845, 395, 1070, 509)),
        Piece("976", 1.0, (1058, 396, 1282, 528)),
        Piece("22G1", 1.0, (844, 477, 1003, 567)),
    ]
    assert verified_numbers(pieces) == ["HALU2089976"]


def test_a_column_read_one_character_per_box() -> None:
    chars = "TEMU5037029"
    pieces = [Piece(ch, 0.9, (900, 200 + 60 * i, 945, 250 + 60 * i)) for i, ch in enumerate(chars)]
    cands = assemble(pieces)
    assert cands[0].code.number == chars
    assert cands[0].code.verified
    assert cands[0].orientation == "vertical"


def test_a_column_with_its_boxed_check_digit_apart() -> None:
    pieces = [
        Piece("X1NU157721", 0.98, (1121, 313, 1209, 863)),
        Piece("4", 1.0, (1127, 849, 1169, 911)),
        Piece("22G1", 1.0, (1165, 461, 1246, 728)),
    ]
    assert verified_numbers(pieces) == ["XINU1577214"]


def test_a_stray_character_where_two_pieces_meet_is_dropped() -> None:
    # a door hinge read as L after the owner code
    pieces = [
        Piece("MSKUL", 0.95, (1163, 72, 1430, 177)),
        Piece("3605161", 1.0, (1172, 152, 1462, 261)),
    ]
    assert verified_numbers(pieces) == ["MSKU3605161"]


def test_a_stray_letter_between_owner_code_and_serial_in_one_piece_is_dropped() -> None:
    # the gap in a stencilled U read as UJ; the boxed check digit read apart
    pieces = [
        Piece("CSNUJ874259", 0.9, (879, 506, 1305, 595)),
        Piece("9", 0.95, (1328, 530, 1383, 587)),
    ]
    assert verified_numbers(pieces) == ["CSNU8742599"]
    assert verified_numbers([Piece("CSNUJ8742599", 0.9, (879, 506, 1383, 595))]) == ["CSNU8742599"]


def test_a_letter_a_digit_looks_like_is_corrected_not_dropped() -> None:
    # A in the serial's first place is a misread 4, whose number fails its check digit;
    # dropping the A instead would verify another number
    assert not iso6346.is_valid("TEMU4123456")
    assert iso6346.is_valid("TEMU1234565")
    pieces = [Piece("TEMUA1234565", 0.9, (100, 100, 700, 200))]
    assert verified_numbers(pieces) == []
    # nor is a C, which a stencilled 0 is often read as
    assert verified_numbers([Piece("TEMUC1234565", 0.9, (100, 100, 700, 200))]) == []


def test_pieces_far_apart_are_not_chained() -> None:
    pieces = [
        Piece("BEAU", 1.0, (100, 500, 250, 580)),
        Piece("2656931", 1.0, (1400, 500, 1700, 580)),  # same line, far right
    ]
    assert verified_numbers(pieces) == []


def test_a_size_type_code_never_becomes_part_of_a_number() -> None:
    # HALU / 2089 / 22G1 stacked: 22G1 under the serial must not end the number
    pieces = [
        Piece("HALU", 1.0, (840, 304, 1054, 418)),
        Piece("2089", 1.0, (845, 395, 1070, 509)),
        Piece("22G1", 1.0, (844, 477, 1003, 567)),
    ]
    assert all("G" not in c.code.number[4:] for c in assemble(pieces))
    assert verified_numbers(pieces) == []


def test_an_alternative_reading_of_a_boxed_digit_counts_only_if_it_is_valid() -> None:
    serial = [
        Piece("TRHU", 1.0, (931, 569, 1096, 657)),
        Piece("170036", 1.0, (1153, 576, 1385, 659)),
    ]
    boxed = Piece("0", 0.47, (1358, 567, 1476, 673), alt="9")
    assert verified_numbers([*serial, boxed]) == ["TRHU1700369"]
    wrong = Piece("0", 0.47, (1358, 567, 1476, 673), alt="8")
    assert verified_numbers([*serial, wrong]) == []


# --- fusing the views of one pass


def reading(number: str, verified: bool = True, confidence: float = 0.95) -> ContainerReading:
    return ContainerReading(
        number=number,
        verified=verified,
        confidence=confidence,
        size_type="22G1",
        box=(0, 0, 10, 10),
        orientation="horizontal",
        crop=np.zeros((4, 4, 3), dtype=np.uint8),
    )


def test_two_boxes_seen_in_several_views_fuse_to_two_confident_answers() -> None:
    views = [
        reading("BEAU2656931"),
        reading("BEAU2656931", confidence=0.8),
        reading("BEAU265693", verified=False, confidence=0.5),
        reading("TRHU1700369"),
        reading("TRHU1700369", confidence=0.9),
    ]
    fused = fuse_containers(views)
    assert sorted(f.number for f in fused) == ["BEAU2656931", "TRHU1700369"]
    assert all(f.verified and not f.needs_review for f in fused)
    beau = next(f for f in fused if f.number.startswith("BEAU"))
    assert beau.views == 3
    assert beau.size_type == "22G1"
    assert beau.evidence.verified


def test_no_container_at_all() -> None:
    assert fuse_containers([]) == []


def test_a_number_never_verified_in_any_view_is_held() -> None:
    fused = fuse_containers([reading("BEAU265693", verified=False, confidence=0.5)] * 3)
    assert len(fused) == 1
    assert not fused[0].verified
    assert fused[0].needs_review
    assert "check digit" in fused[0].reasons[0]


def test_two_verified_numbers_for_one_box_are_held_not_guessed() -> None:
    # a serial digit and the check digit misread together: both pass the check digit
    a, b = "MSKU3866036", "MSKU3806037"
    assert iso6346.is_valid(a)
    assert iso6346.is_valid(b)
    fused = fuse_containers([reading(a), reading(b)])
    assert len(fused) == 1
    assert fused[0].needs_review
    assert fused[0].alternatives


def test_a_majority_of_views_outweighs_one_misread() -> None:
    a, b = "MSKU3866036", "MSKU3806037"
    fused = fuse_containers([reading(a), reading(a), reading(a), reading(b, confidence=0.6)])
    assert fused[0].number == a
    assert fused[0].alternatives == (b,)


def test_one_weak_view_is_not_enough() -> None:
    fused = fuse_containers([reading("TEMU5037029", confidence=0.4)])
    assert fused[0].verified
    assert fused[0].needs_review
    assert fused[0].confidence < 0.6


def test_a_weak_reading_repeated_through_one_burst_stays_weak() -> None:
    once = fuse_containers([reading("TEMU5037029", confidence=0.4)])
    burst = fuse_containers([reading("TEMU5037029", confidence=0.4)] * 5, weights=[0.2] * 5)
    assert burst[0].confidence == pytest.approx(once[0].confidence)
    assert burst[0].needs_review
    # five cameras that each read it so are five witnesses
    views = fuse_containers([reading("TEMU5037029", confidence=0.4)] * 5)
    assert not views[0].needs_review


def test_weights_must_match_the_readings() -> None:
    with pytest.raises(ValueError, match="one weight per reading"):
        fuse_containers([reading("TEMU5037029")], weights=[0.5, 0.5])


def test_more_boxes_than_a_truck_carries_are_flagged() -> None:
    fused = fuse_containers(
        [reading("BEAU2656931"), reading("TRHU1700369"), reading("MSKU3866036", confidence=0.7)]
    )
    assert len(fused) == 3
    assert sum(f.needs_review for f in fused) == 1
    assert fused[-1].needs_review


def test_two_boxes_with_consecutive_numbers_stay_two() -> None:
    # the same shipper's boxes: serials one apart, each seen verified in two views
    a, b = "TEMU5037029", "TEMU5037034"
    assert iso6346.is_valid(a)
    assert iso6346.is_valid(b)
    fused = fuse_containers([reading(a), reading(a), reading(b), reading(b, confidence=0.9)])
    assert sorted(f.number for f in fused) == [a, b]
    assert not any(f.needs_review for f in fused)


def test_a_reading_with_its_window_slipped_is_no_box_of_its_own() -> None:
    # one view lost the first letter and read a stray J after the category: SNUJ874259
    # is position by position almost nothing like CSNU8742599, but it is the same paint
    a, other = "CSNU8742599", "CMAU8886760"
    assert iso6346.is_valid(a)
    assert iso6346.is_valid(other)
    views = [
        reading(a),
        reading(a, confidence=0.9),
        reading("SNUJ874259", verified=False, confidence=0.6),
        reading(other),
        reading(other, confidence=0.9),
    ]
    fused = fuse_containers(views)
    assert sorted(f.number for f in fused) == [other, a]
    assert not any(f.needs_review for f in fused)
    assert next(f for f in fused if f.number == a).views == 2


def test_a_view_its_own_check_digit_disproves_does_not_cast_doubt() -> None:
    # the gap in a stencilled U read as J in one view: CMAJ3098873 fails its check digit,
    # so it is a misreading, not another container; one clear verified view suffices
    a = "CMAU3098873"
    assert iso6346.is_valid(a)
    assert not iso6346.is_valid("CMAJ3098873")
    fused = fuse_containers([reading(a, confidence=0.99), reading("CMAJ3098873", verified=False)])
    assert [f.number for f in fused] == [a]
    assert fused[0].confidence >= 0.85


def test_a_view_without_its_check_digit_still_casts_doubt() -> None:
    # CMAU309888 has no check digit: it may be another box's number, so it counts against
    fused = fuse_containers(
        [reading("CMAU3098873", confidence=0.99), reading("CMAU309888", verified=False)]
    )
    assert fused[0].confidence < 0.8


def test_a_view_that_misread_only_the_owner_code_casts_no_doubt() -> None:
    # O read as C: OCLU680990 (no check digit) has this box's serial, so it is this box
    fused = fuse_containers(
        [reading("OOLU6809900", confidence=0.99), reading("OCLU680990", verified=False)]
    )
    assert [f.number for f in fused] == ["OOLU6809900"]
    assert fused[0].confidence >= 0.85


def test_an_unverified_third_number_beside_two_sure_boxes_is_a_misreading() -> None:
    # a truck carries two boxes at most: BMQU2189911, three characters off BMOU3188911 and
    # disproved by its own check digit, can be no third one
    a, b = "CMAU2777993", "BMOU3188911"
    views = [reading(a), reading(b), reading(a), reading(b)]
    third = reading("BMQU2189911", verified=False, confidence=0.45)
    fused = fuse_containers([*views, third])
    assert sorted(f.number for f in fused) == [b, a]
    assert not any(f.needs_review for f in fused)
    # with one box seen only once, the same reading may be the other box: it is held
    fused = fuse_containers([*views[:3], third])
    assert any(f.number == third.number and f.needs_review for f in fused)
