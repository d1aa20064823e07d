"""The synthetic renderer: same seed, same pixels; truth boxes lie where the text is painted."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from sim.render import (
    ContainerMarking,
    FontNotFoundError,
    PlateKind,
    Render,
    TextTruth,
    find_cjk_font,
    render_container_view,
    render_plate,
    render_plate_scene,
)

PLATES: list[tuple[PlateKind, str, str]] = [  # kind, text, other text in every position
    ("blue", "沪A12345", "浙B98760"),
    ("yellow", "粤B8K73挂", "鲁C4H29学"),
    ("green", "京AD12345", "津BF67890"),
    ("yellow_double", "冀E12345", "晋F67890"),
]
BOX_1 = ContainerMarking("MSKU1234565", "45G1")
BOX_2 = ContainerMarking("CSQU3054383", "22G1")


def inside(truths: list[TextTruth], shape: tuple[int, ...], grow: int = 2) -> np.ndarray:
    """A mask of the pixels within the truths' quads, grown by a few pixels of antialiasing."""
    mask = np.zeros(shape[:2], np.uint8)
    for t in truths:
        cv2.fillPoly(mask, [np.round(t.quad).astype(np.int32)], 255)
    return cv2.dilate(mask, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)) > 0


def changed(a: Render, b: Render) -> np.ndarray:
    return np.abs(a.image.astype(np.int16) - b.image.astype(np.int16)).max(axis=2) > 0


def assert_text_confined(a: Render, b: Render, truths: list[TextTruth]) -> None:
    """Painting other text changes pixels inside these truths only, and spans most of them."""
    diff = changed(a, b)
    assert diff.any()
    assert not (diff & ~inside(truths, a.image.shape)).any()
    for t in truths:  # tight boxes: the painted text spans most of each one
        x0, y0, x1, y1 = t.bbox()
        ys, xs = np.nonzero(diff[y0:y1, x0:x1])
        assert xs.max() - xs.min() >= 0.6 * (x1 - x0)
        assert ys.max() - ys.min() >= 0.6 * (y1 - y0)


@pytest.mark.parametrize(("kind", "text", "other"), PLATES)
def test_plate_truth_boxes_hold_the_text(kind: PlateKind, text: str, other: str) -> None:
    a = render_plate_scene(text, kind, seed=11, difficulty=0.0)
    b = render_plate_scene(other, kind, seed=11, difficulty=0.0)
    assert a.image.shape == (720, 1280, 3)
    (plate,) = a.of_kind("plate")
    assert plate.text == text
    lines = a.of_kind("plate_line")
    assert "".join(t.text for t in lines) == text
    assert len(lines) == (2 if kind == "yellow_double" else 1)
    assert_text_confined(a, b, lines)


@pytest.mark.parametrize("view", ["side", "back", "corner", "top"])
def test_container_truth_boxes_hold_each_group(view: str) -> None:
    serial_changed = ContainerMarking("MSKU7654325", "45G1")
    size_changed = ContainerMarking("MSKU1234565", "22R1")
    a = render_container_view(BOX_1, view, seed=5, difficulty=0.0)  # type: ignore[arg-type]
    assert a.image.shape == (1080, 1920, 3)
    (code,) = a.of_kind("container_code")
    assert code.text == "MSKU1234565"
    assert [t.text for t in a.of_kind("owner")] == ["MSKU"]
    assert [t.text for t in a.of_kind("check_digit")] == ["5"]
    b = render_container_view(serial_changed, view, seed=5, difficulty=0.0)  # type: ignore[arg-type]
    assert_text_confined(a, b, a.of_kind("serial"))
    if view != "top":  # roofs carry no size-type code
        c = render_container_view(size_changed, view, seed=5, difficulty=0.0)  # type: ignore[arg-type]
        assert_text_confined(a, c, a.of_kind("size_type"))
    else:
        assert a.of_kind("size_type") == []
    h, w = a.image.shape[:2]
    for t in a.truths:  # the whole code is in the frame
        x0, y0, x1, y1 = t.bbox()
        assert 0 <= x0 < x1 <= w
        assert 0 <= y0 < y1 <= h


@pytest.mark.parametrize("view", ["side", "top"])
def test_two_containers_are_both_in_view(view: str) -> None:
    r = render_container_view([BOX_1, BOX_2], view, seed=9, difficulty=0.6)  # type: ignore[arg-type]
    codes = [t.text for t in r.of_kind("container_code")]
    assert codes == ["MSKU1234565", "CSQU3054383"]
    a, b = (t.bbox() for t in r.of_kind("container_code"))
    assert a[2] <= b[0]  # side by side, in order, not overlapping


def test_same_seed_same_pixels_other_seed_other_scene() -> None:
    one = render_plate_scene("沪A12345", "blue", seed=3, difficulty=0.7)
    again = render_plate_scene("沪A12345", "blue", seed=3, difficulty=0.7)
    other = render_plate_scene("沪A12345", "blue", seed=4, difficulty=0.7)
    assert np.array_equal(one.image, again.image)
    assert all(
        np.array_equal(x.quad, y.quad) for x, y in zip(one.truths, again.truths, strict=True)
    )
    assert not np.array_equal(one.image, other.image)

    box = render_container_view([BOX_1, BOX_2], "side", seed=3, difficulty=0.7)
    box_again = render_container_view([BOX_1, BOX_2], "side", seed=3, difficulty=0.7)
    assert np.array_equal(box.image, box_again.image)


def test_difficulty_degrades_the_picture() -> None:
    """Harder renders are blurrier: less high-frequency energy in the plate."""

    def sharpness(r: Render) -> float:
        x0, y0, x1, y1 = r.of_kind("plate")[0].bbox()
        crop = cv2.cvtColor(r.image[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
        crop = cv2.resize(crop, (220, 70), interpolation=cv2.INTER_AREA)
        return float(cv2.Laplacian(crop, cv2.CV_64F).var())

    easy = [sharpness(render_plate_scene("沪A12345", "blue", s, difficulty=0.0)) for s in range(4)]
    hard = [sharpness(render_plate_scene("沪A12345", "blue", s, difficulty=1.0)) for s in range(4)]
    assert np.median(hard) < 0.5 * np.median(easy)


def test_plate_colours_follow_the_kind() -> None:
    def mean_bgr(kind: PlateKind, text: str) -> np.ndarray:
        r = render_plate(text, kind)
        return r.image.reshape(-1, 3).mean(axis=0)

    b, g, r = mean_bgr("blue", "沪A12345")
    assert b > 100 > r
    b, g, r = mean_bgr("yellow", "粤B8K73挂")
    assert r > 150 and g > 120 and b < 100  # noqa: PT018
    b, g, r = mean_bgr("green", "京AD12345")
    assert g > r and g > b  # noqa: PT018


def test_plate_text_must_fit_the_kind() -> None:
    with pytest.raises(ValueError, match="8 characters"):
        render_plate_scene("京A12345", "green", seed=1)
    with pytest.raises(ValueError, match="7 characters"):
        render_plate_scene("京AD12345", "blue", seed=1)
    with pytest.raises(ValueError, match="11 characters"):
        ContainerMarking("MSKU123456")


def test_a_missing_font_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FontNotFoundError, match="fonts-noto-cjk"):
        find_cjk_font([tmp_path / "NotoSansCJK-Bold.ttc"])
    assert find_cjk_font().is_file()


def test_rendered_text_is_readable_by_the_ocr_engine() -> None:
    """Clean renders read back as painted: the glyphs are real text, not noise."""
    from recognition.engine import OcrEngine

    engine = OcrEngine()
    r = render_container_view(BOX_1, "back", seed=2, difficulty=0.0)
    for kind in ("owner", "serial", "size_type"):
        (t,) = r.of_kind(kind)  # type: ignore[arg-type]
        assert engine.read_line(t.rectified(r.image))[0] == t.text
    p = render_plate_scene("沪A12345", "blue", seed=2, difficulty=0.0)
    text, _ = engine.read_line(p.of_kind("plate_line")[0].rectified(p.image))
    assert text.replace("·", "").endswith("A12345")
