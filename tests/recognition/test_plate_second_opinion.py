"""When the plate model is in doubt the general model reads the plate too: hand-made
recogniser outputs (no model), so each case is exactly the one named."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recognition.plate_grammar import ALNUM, PROVINCES, SUFFIXES
from recognition.plates import PlateReader

ALPHABET = ["blank", *PROVINCES, *ALNUM, *SUFFIXES]
COL = {c: i for i, c in enumerate(ALPHABET)}
STEPS = 40  # a 320-pixel line, as the models give


def _line(*cells: dict[str, float]) -> np.ndarray:
    """One step per cell and a blank after each, padded with blanks to ``STEPS``."""
    out = np.zeros((STEPS, len(ALPHABET)), dtype=np.float32)
    out[:, 0] = 1.0
    for k, cell in enumerate(cells):
        out[2 * k, 0] = 1.0 - sum(cell.values())
        for c, p in cell.items():
            out[2 * k, COL[c]] = p
    return out


def _plate(province: dict[str, float], rest: str = "A12345", p: float = 0.97) -> np.ndarray:
    return _line(province, *({c: p} for c in rest))


@dataclass
class _Recognizer:
    postprocess_op: Any = field(default_factory=lambda: type("Op", (), {"character": ALPHABET}))
    rec_image_shape: tuple[int, int, int] = (3, 48, 320)


class _Engine:
    """Two recognisers whose output for an image is chosen by the image's grey value."""

    def __init__(self, plate: dict[int, np.ndarray], general: dict[int, np.ndarray]) -> None:
        self.outputs = {True: plate, False: general}
        self.recognizer = _Recognizer()
        self.plate_recognizer = _Recognizer()
        self.calls = {True: 0, False: 0}

    def recognize_batch(
        self, crops: Sequence[np.ndarray], ratio: float, *, plates: bool = False
    ) -> tuple[np.ndarray, int]:
        self.calls[plates] += 1
        return np.stack([self.outputs[plates][int(c[0, 0, 0])] for c in crops]), 320


def _view(key: int) -> list[np.ndarray]:
    return [np.full((24, 94, 3), key, np.uint8)]


SURE = _plate({"皖": 0.97})
UNSURE = _plate({"皖": 0.30, "鄂": 0.25, "新": 0.2})
WRONG_AND_UNSURE = _plate({"鄂": 0.2, "皖": 0.19, "新": 0.18})
# every character about as likely as another glyph: text, but no plate
JUNK = _line(*({c: 0.3, r: 0.29} for c, r in zip("皖A12345", "鄂B67898", strict=True)))


def test_a_plate_in_doubt_takes_the_surer_reading_of_the_general_model() -> None:
    engine = _Engine(plate={1: UNSURE}, general={1: SURE})
    got = PlateReader(engine).decode_views([_view(1)], reread=False)[0]  # type: ignore[arg-type]
    assert got is not None
    assert got.text == "皖A12345"
    assert got.confidence > 0.9
    assert engine.calls == {True: 1, False: 1}


def test_a_surer_plate_model_reading_is_kept() -> None:
    engine = _Engine(plate={1: UNSURE}, general={1: WRONG_AND_UNSURE})
    got = PlateReader(engine).decode_views([_view(1)], reread=False)[0]  # type: ignore[arg-type]
    assert got is not None
    assert got.text == "皖A12345"
    assert got.confidence < 0.5  # still in doubt: the lane holds it


def test_the_general_model_is_not_asked_about_sure_plates_or_what_is_no_plate() -> None:
    engine = _Engine(plate={1: SURE, 2: JUNK}, general={1: UNSURE, 2: SURE})
    reader = PlateReader(engine)  # type: ignore[arg-type]
    sure, junk = reader.decode_views([_view(1), _view(2)], reread=False)
    assert sure is not None
    assert sure.confidence > 0.9
    # a region whose characters are all unclear is not a plate in doubt: a street scene
    # has many, and each would cost a second run
    assert junk is None or junk.confidence < 0.5
    assert engine.calls == {True: 1, False: 0}


def test_one_model_for_both_reads_each_plate_once() -> None:
    engine = _Engine(plate={1: UNSURE}, general={1: SURE})
    engine.plate_recognizer = engine.recognizer
    got = PlateReader(engine).decode_views([_view(1)], reread=False)[0]  # type: ignore[arg-type]
    assert got is not None
    assert got.confidence < 0.5
    assert engine.calls == {True: 1, False: 0}
