"""ISO 6346 against the 6,033 numbers five peer libraries assert valid or invalid."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from recognition import iso6346

# Where our verdict differs from the one the source asserts, and why we stand by ours
# (see ../shared/data/iso6346/README.md, "Known quirks"). Each is asserted below, so
# a change of behaviour on any of them fails loudly instead of being skipped.
DISAGREEMENTS = {
    # validator.js also accepts J/Z equipment with a 6-7 digit serial and no check digit;
    # ISO 6346 has 11 characters and we never call a number without its check digit valid.
    "QJRZ123456": False,
    # meMuszr/iso6346 rejects it only under its case_sensitive option; we compact to upper
    # case first (as python-stdnum does), and NYKU3086856 has a correct check digit.
    "NyKu3086856": True,
}


def _vectors(shared_data: Path) -> list[dict[str, str]]:
    with (shared_data / "iso6346" / "iso6346_vectors.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_every_vector_agrees_with_its_source_except_the_documented_quirks(
    shared_data: Path,
) -> None:
    rows = _vectors(shared_data)
    assert len(rows) == 6033
    mismatched = []
    for row in rows:
        number, source_says = row["number"], row["valid"] == "true"
        expected = DISAGREEMENTS.get(number, source_says)
        if iso6346.is_valid(number) != expected:
            mismatched.append((number, source_says, row["source"]))
    assert mismatched == []
    seen = {row["number"] for row in rows}
    assert set(DISAGREEMENTS) <= seen  # the quirks are still in the data they explain


def test_check_digit_agrees_with_the_recomputed_column(shared_data: Path) -> None:
    # The vectors carry the check digit recomputed independently (stdnum algorithm),
    # which covers remainder-10 numbers such as FCIU8384900 (kabisa's spec never ran it).
    checked = 0
    for row in _vectors(shared_data):
        norm = row["normalized"]
        if len(norm) != 11 or not norm[:10].isalnum():
            continue
        try:
            digit = iso6346.calc_check_digit(norm)
        except iso6346.InvalidFormat:
            continue
        assert (digit == norm[10]) == (row["recomputed_check_digit_ok"] == "true"), norm
        checked += 1
    assert checked >= 6000


def test_tbja_is_refused_for_its_category_although_its_check_digit_adds_up() -> None:
    assert iso6346.calc_check_digit("TBJA717644") == "5"
    with pytest.raises(iso6346.InvalidFormat, match="category"):
        iso6346.validate("TBJA7176445")


@pytest.mark.parametrize(
    ("number", "error"),
    [
        ("CSQU305438", iso6346.InvalidLength),
        ("CSQU30543833", iso6346.InvalidLength),
        ("C5QU3054383", iso6346.InvalidFormat),
        ("CSQU3O54383", iso6346.InvalidFormat),
        ("CSQU305438X", iso6346.InvalidFormat),
        ("CSQU3054384", iso6346.InvalidChecksum),
        ("", iso6346.InvalidLength),
        ("ＣＳＱＵ３０５４３８３", iso6346.InvalidFormat),  # full width: normalise before
    ],
)
def test_validate_names_the_fault(number: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        iso6346.validate(number)
    assert not iso6346.is_valid(number)


def test_every_single_digit_error_in_the_serial_is_caught() -> None:
    # Digits differ by less than 11, so any one wrong serial digit changes the sum mod 11.
    good = "MSKU3866036"
    for pos in range(4, 10):
        for d in "0123456789":
            if d != good[pos]:
                assert not iso6346.is_valid(good[:pos] + d + good[pos + 1 :])
