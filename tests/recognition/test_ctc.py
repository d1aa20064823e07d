"""Grammar-held CTC decoding with hand-made probability matrices (no model)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from recognition.ctc import (
    TemplateAutomaton,
    column_groups,
    ctc_align,
    ctc_log_likelihood,
    fold,
    prefix_beam_search,
)
from recognition.plate_grammar import ALNUM, PROVINCES, SUFFIXES
from recognition.plates import decode_plate, province_prefix_end, reread_province

# A toy alphabet in the model's shape: column 0 the blank, then characters.
ALPHABET = ["blank", "皖", "鄂", "A", "B", "1", "2", "3", "O", "·", "M"]
COL = {c: i for i, c in enumerate(ALPHABET)}


def steps(*rows: dict[str, float]) -> np.ndarray:
    """One time step per dict; the unnamed probability goes to the blank."""
    out = np.zeros((len(rows), len(ALPHABET)), dtype=np.float32)
    for t, row in enumerate(rows):
        for c, p in row.items():
            out[t, COL[c]] = p
        out[t, 0] = 1.0 - sum(row.values())
    return out


def automaton(*layouts: str) -> TemplateAutomaton:
    """Layouts written as one string of allowed characters per position, '|' between."""
    return TemplateAutomaton([[frozenset(p) for p in lay.split("|")] for lay in layouts])


def test_the_unclear_first_character_is_kept_not_dropped() -> None:
    # greedy decoding reads "A12": the province glyph never beats the blank
    probs = steps(
        {"皖": 0.02, "鄂": 0.005, "M": 0.5},
        {"A": 0.9},
        {},
        {"1": 0.9},
        {},
        {"2": 0.9},
    )
    chars = ["皖", "鄂", "A", "1", "2"]
    groups = column_groups(ALPHABET, chars)
    hyps = prefix_beam_search(fold(probs, groups), chars, automaton("皖鄂|A|12|12"))
    assert hyps[0].text == "皖A12"
    assert [h.text for h in hyps[:2]] == ["皖A12", "鄂A12"]


def test_a_glyph_the_grammar_forbids_counts_for_the_one_it_means() -> None:
    probs = steps({"A": 0.9}, {}, {"O": 0.6, "1": 0.3}, {}, {"2": 0.9})
    chars = ["A", "0", "1", "2"]
    groups = column_groups(ALPHABET, chars, canonical=lambda c: {"O": "0"}.get(c, c))
    hyps = prefix_beam_search(fold(probs, groups), chars, automaton("A|012|012"))
    assert hyps[0].text == "A02"


def test_separator_dot_counts_as_blank() -> None:
    probs = steps({"A": 0.9}, {"·": 0.9}, {"1": 0.9})
    chars = ["A", "1"]
    groups = column_groups(ALPHABET, chars, blank_like="·")
    folded = fold(probs, groups)
    assert folded[1, 0] == pytest.approx(1.0)
    assert prefix_beam_search(folded, chars, automaton("A|1"))[0].text == "A1"


def test_repeated_characters_need_a_blank_between() -> None:
    chars = ["A", "1"]
    groups = column_groups(ALPHABET, chars)
    merged = fold(steps({"A": 0.9}, {"1": 0.9}, {"1": 0.9}), groups)
    apart = fold(steps({"A": 0.9}, {"1": 0.9}, {}, {"1": 0.9}), groups)
    layout = automaton("A|1|1")
    assert prefix_beam_search(apart, chars, layout)[0].text == "A11"
    # without a blank between them the two steps are one "1": three steps cannot hold "A11"
    assert prefix_beam_search(merged, chars, layout) == []


def test_no_reading_when_the_layout_cannot_fit_in_the_steps() -> None:
    chars = ["A", "1"]
    groups = column_groups(ALPHABET, chars)
    probs = fold(steps({"A": 0.9}, {"1": 0.9}), groups)
    assert prefix_beam_search(probs, chars, automaton("A|1|1|1")) == []


def test_nothing_but_blank_reads_as_nothing() -> None:
    chars = ["A", "1"]
    probs = fold(steps({}, {}, {}, {}), column_groups(ALPHABET, chars))
    assert prefix_beam_search(probs, chars, automaton("A|1")) == []


def test_layouts_of_different_lengths_compete() -> None:
    # 3 or 4 characters: the fourth is clearly there
    chars = ["A", "1", "2"]
    probs = fold(
        steps({"A": 0.9}, {}, {"1": 0.9}, {}, {"2": 0.9}, {}, {"1": 0.9}),
        column_groups(ALPHABET, chars),
    )
    hyps = prefix_beam_search(probs, chars, automaton("A|12|12", "A|12|12|12"))
    assert hyps[0].text == "A121"
    assert "A12" in [h.text for h in hyps]


def _brute_force(probs: np.ndarray, label: list[int]) -> float:
    """Sum over every path that collapses to the label."""
    total = 0.0
    for path in itertools.product(range(probs.shape[1]), repeat=probs.shape[0]):
        collapsed = [k for i, k in enumerate(path) if k != 0 and (i == 0 or path[i - 1] != k)]
        if collapsed == label:
            total += math.prod(probs[t, k] for t, k in enumerate(path))
    return total


@pytest.mark.parametrize("label", [[1], [1, 2], [1, 1], [2, 1, 2]])
def test_likelihood_sums_every_alignment(label: list[int]) -> None:
    rng = np.random.default_rng(7)
    probs = rng.dirichlet(np.ones(3), size=5).astype(np.float64)
    assert math.exp(ctc_log_likelihood(probs, label)) == pytest.approx(_brute_force(probs, label))


def test_alignment_finds_each_characters_steps() -> None:
    probs = steps({}, {"A": 0.9}, {"A": 0.9}, {}, {"1": 0.9}, {}, {"1": 0.9})
    assert ctc_align(probs, [COL["A"], COL["1"], COL["1"]]) == [(1, 2), (4, 4), (6, 6)]


def _model_like(plate: str, province_prob: float) -> tuple[np.ndarray, list[str]]:
    """Probabilities shaped like the recogniser's: one glyph per two steps, blanks between."""
    alphabet = ["blank", *PROVINCES, *ALNUM.replace("M", ""), *SUFFIXES, "O", "I", "M", "·"]
    col = {c: i for i, c in enumerate(alphabet)}
    rows = []
    for k, c in enumerate(plate):
        row = np.full(len(alphabet), 1e-6)
        if k == 0:
            row[col[c]] = province_prob
            row[col["M"]] = 0.6  # what the model sees instead of a tiny province glyph
        else:
            row[col[c]] = 0.95
        row[0] = 0.0
        row[0] = 1.0 - row.sum()
        blank = np.full(len(alphabet), 1e-6)
        blank[0] = 1.0 - blank[1:].sum()
        rows += [row, blank]
    return np.array(rows, dtype=np.float32), alphabet


def test_decode_plate_reads_a_plate_and_doubts_an_unseen_province() -> None:
    clear, alphabet = _model_like("皖A12345", province_prob=0.3)
    got = decode_plate(clear, alphabet)
    assert got is not None
    assert got.text == "皖A12345"

    faint, alphabet = _model_like("皖A12345", province_prob=1e-4)
    doubt = decode_plate(faint, alphabet)
    assert doubt is not None
    assert doubt.text[1:] == "A12345"
    assert doubt.confidence < 0.05  # the model preferred another glyph there
    assert min(doubt.char_confidence[1:]) > 0.8


def test_decode_plate_gives_nothing_for_nothing() -> None:
    alphabet = ["blank", *PROVINCES, *ALNUM, *SUFFIXES]
    probs = np.zeros((20, len(alphabet)), dtype=np.float32)
    probs[:, 0] = 1.0
    assert decode_plate(probs, alphabet) is None


def _glyphs(alphabet: list[str], *cells: dict[str, float]) -> np.ndarray:
    """One step per cell, a blank step after each; the rest of a cell's mass is blank."""
    col = {c: i for i, c in enumerate(alphabet)}
    rows = []
    for cell in cells:
        row = np.full(len(alphabet), 1e-7)
        for c, p in cell.items():
            row[col[c]] = p
        row[0] = 0.0
        row[0] = 1.0 - row.sum()
        blank = np.full(len(alphabet), 1e-7)
        blank[0] = 1.0 - blank[1:].sum()
        rows += [row, blank]
    return np.array(rows, dtype=np.float32)


def _line_and_prefix(
    serial: str, line_province: dict[str, float], prefix_province: dict[str, float]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    alphabet = ["blank", *PROVINCES, *ALNUM.replace("M", ""), *SUFFIXES, "O", "I", "M", "·"]
    rest = [{c: 0.95} for c in serial]
    line = _glyphs(alphabet, {**line_province, "M": 0.6}, *rest)
    prefix = _glyphs(alphabet, {**prefix_province, "M": 0.6}, rest[0])
    return line, prefix, alphabet


def test_a_doubtful_province_is_decided_by_the_line_and_the_short_view_together() -> None:
    # the line leans to 鄂, the view ending after the letter clearly to 皖: 皖 wins on the
    # two views' shares; neither saw a province glyph clearly, so the doubt stays
    line, prefix, alphabet = _line_and_prefix(
        "A12345", {"鄂": 2e-4, "皖": 1.5e-4}, {"皖": 3e-3, "鄂": 1e-4}
    )
    before = decode_plate(line, alphabet)
    assert before is not None
    assert before.text == "鄂A12345"
    after = reread_province(before, line, prefix, alphabet)
    assert after.text == "皖A12345"
    assert after.chars[0][0][0] == "皖"
    assert after.char_confidence[1:] == before.char_confidence[1:]
    assert after.confidence < 0.05

    # where the short view sees the glyph clearly, the reading is surer than before, but
    # one clear view of two does not make it sure
    line, prefix, alphabet = _line_and_prefix("A12345", {"鄂": 2e-4, "皖": 1.5e-4}, {"皖": 0.3})
    clear = reread_province(before, line, prefix, alphabet)
    assert clear.text == "皖A12345"
    assert after.confidence < clear.confidence < 0.5


def test_rereading_the_province_keeps_the_plate_grammatical() -> None:
    # a Hong Kong cross-border plate is 粤Z...港 whatever the short view leans to
    line, prefix, alphabet = _line_and_prefix("Z1234港", {"粤": 1e-4, "鄂": 1e-4}, {"鄂": 0.3})
    before = decode_plate(line, alphabet)
    assert before is not None
    assert before.text == "粤Z1234港"
    assert reread_province(before, line, prefix, alphabet).text == "粤Z1234港"


def test_the_short_view_ends_half_a_pitch_after_the_letter() -> None:
    line, _, alphabet = _line_and_prefix("A12345", {"皖": 0.3}, {})
    got = decode_plate(line, alphabet)
    assert got is not None
    # one glyph every two steps: the letter covers step 2, so its centre is at 2.5
    assert province_prefix_end(got, line, alphabet) == pytest.approx(2.5 + 0.5 * 2)
