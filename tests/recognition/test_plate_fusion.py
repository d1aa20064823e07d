"""Fusing the plate readings of one pass: plain values, then real frames."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import cv2
import pytest

from recognition.engine import OcrEngine
from recognition.plate_fusion import Evidence, fuse_plates, vote
from recognition.plate_grammar import is_valid
from recognition.plates import PlateReader


@dataclass(frozen=True)
class Read:
    text: str
    confidence: float
    chars: tuple[tuple[tuple[str, float], ...], ...]


def read(text: str, *weights: float) -> Read:
    """A reading vouching for each of its characters with the given weight (or one for all)."""
    ws = list(weights) if len(weights) == len(text) else [weights[0]] * len(text)
    return Read(text, min(ws), tuple(((c, w),) for c, w in zip(text, ws, strict=True)))


def test_frames_that_agree_are_confident_and_keep_their_best_as_evidence() -> None:
    frames = [read("皖A12345", 0.9), read("皖A12345", 0.7), read("皖A12345", 0.8)]
    fused = fuse_plates(frames)
    assert fused.text == "皖A12345"
    assert fused.status == "confident"
    assert fused.agreeing == 3
    assert fused.best is frames[0]
    assert fused.confidence > max(f.confidence for f in frames)  # witnesses add up


def test_the_majority_corrects_one_frame_character_by_character() -> None:
    fused = fuse_plates([read("皖A12345", 0.8), read("皖A12845", 0.8), read("皖A12345", 0.8)])
    assert fused.text == "皖A12345"
    assert fused.char_confidence[4] < fused.char_confidence[3]  # the disputed character


def test_characters_from_different_frames_combine() -> None:
    # each frame is unsure of a different character; together every one is seen clearly
    a = read("皖A12345", 0.05, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9)
    b = read("皖A12345", 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.05)
    c = read("皖A12345", 0.9, 0.9, 0.9, 0.05, 0.9, 0.9, 0.9)
    fused = fuse_plates([a, b, c])
    assert fused.text == "皖A12345"
    assert fused.status == "confident"


def test_an_unsure_province_stays_doubtful_however_many_frames() -> None:
    frames = [read("皖A12345", 0.02, *[0.95] * 6), read("鄂A12345", 0.02, *[0.95] * 6)] * 3
    fused = fuse_plates(frames)
    assert fused.status == "doubtful"
    assert fused.text is not None
    assert fused.text[1:] == "A12345"


def test_two_different_plates_in_one_pass_are_doubtful() -> None:
    fused = fuse_plates([read("皖A12345", 0.9), read("皖A12345", 0.9), read("苏E77B01", 0.9)])
    assert fused.status == "doubtful"
    assert fused.text == "皖A12345"
    assert fused.rival == "苏E77B01"


def test_a_faint_second_plate_does_not_spoil_a_clear_pass() -> None:
    clear = [read("皖A12345", 0.9)] * 5
    fused = fuse_plates([*clear, read("苏E77B01", 0.1)])
    assert fused.status == "confident"
    assert fused.rival == "苏E77B01"


def test_a_plate_with_an_unclear_province_wins_over_a_badge_made_into_a_plate() -> None:
    # a truck's grille badge read under the plate grammar: a made-up province, letters
    # read unevenly; its weakest character is no weaker than the real plate's province
    plate = read("新PU8JX3", 0.06, *[0.95] * 6)
    badge = read("川REFANG", 0.065, 0.42, 0.71, 0.56, 0.38, 0.85, 0.87)
    for order in ([plate, badge], [badge, plate]):
        fused = fuse_plates(order)
        assert fused.text == "新PU8JX3"
        assert fused.best is plate
        assert fused.status == "doubtful"  # the province still needs a human


def test_no_readings_is_none_and_weak_ones_are_doubtful() -> None:
    assert fuse_plates([]).status == "none"
    assert fuse_plates([]).text is None
    weak = fuse_plates([read("皖A12345", 0.3)])
    assert weak.status == "doubtful"
    assert weak.text == "皖A12345"


def test_the_length_most_frames_read_wins() -> None:
    # a green plate read once without its last digit
    fused = fuse_plates([read("皖AD12345", 0.8), read("皖AD12345", 0.8), read("皖AD1234", 0.8)])
    assert fused.text == "皖AD12345"
    assert fused.status == "confident"  # the short read is the same plate, not a rival
    assert fused.rival is None


def test_a_doubtful_reading_repeated_by_one_camera_s_burst_stays_doubtful() -> None:
    # five near-identical frames of a truck standing still make the same mistake five times
    burst = [read("皖A60D55", 0.6)] * 5
    alone = fuse_plates(burst[:1], min_confidence=0.8)
    fused = fuse_plates(burst, weights=[1 / 5] * 5, min_confidence=0.8)
    assert alone.status == fused.status == "doubtful"
    assert fused.confidence == pytest.approx(alone.confidence)
    # two cameras that each see it are two witnesses, and together they can be sure
    assert fuse_plates([burst[0], burst[0]], min_confidence=0.8).confidence > alone.confidence


def test_a_burst_split_between_two_plates_one_character_apart_is_doubtful() -> None:
    # two fleet trucks queueing, or a character the camera cannot settle: not a majority vote
    burst = [read("皖A12345", 0.9)] * 3 + [read("皖A12346", 0.9)] * 2
    fused = fuse_plates(burst, weights=[1 / 5] * 5, min_confidence=0.8)
    assert fused.text == "皖A12345"
    assert fused.status == "doubtful"


def test_weights_must_match_the_readings() -> None:
    with pytest.raises(ValueError, match="2 weights for 1 readings"):
        fuse_plates([read("皖A12345", 0.9)], weights=[0.5, 0.5])


def test_vote_result_is_always_grammatical() -> None:
    # position 3 of a new-energy plate must be D/F (or the 2022 letters): a 7 is not allowed
    e = Evidence("皖AD12345", tuple(((c, 0.9),) for c in "皖AD12345"))
    odd = Evidence("皖A712345", tuple(((c, 0.9),) for c in "皖A712345"))
    fused = vote([e, odd, odd])
    assert fused.text == "皖AD12345"  # the majority's 7 fits no 8-character layout here
    assert is_valid(fused.text)


@pytest.fixture(scope="module")
def reader() -> PlateReader:
    engine = OcrEngine()
    engine.warm_up()
    return PlateReader(engine)


def test_a_burst_of_real_frames_fuses_to_the_plate(reader: PlateReader, shared_data: Path) -> None:
    plates = shared_data / "plates"
    with (plates / "labels.csv").open(encoding="utf-8") as f:
        row = next(r for r in csv.DictReader(f) if r["file"].endswith("scene_008.jpg"))
    frame = cv2.imread(str(plates / row["file"]))
    assert frame is not None
    # a burst: the truck a little nearer each frame
    burst = [
        cv2.resize(frame, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) for s in (0.8, 0.9, 1.0)
    ]
    fused = reader.read_pass([burst])  # one camera's burst
    assert fused.text == row["plate_text"]
    assert fused.status == "confident"
    assert fused.best is not None
    assert fused.best.crop.size > 0
