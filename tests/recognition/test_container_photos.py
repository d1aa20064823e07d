"""Container numbers read from real gate-camera photos and from painted test cards.

The photos are ../shared/data/containers (5 truck passes x 5 views, labelled, plus 12
unlabelled gate photos); rows whose label fails its own check digit are a typo in the
source and are not scored (see its README). Speed is measured by
bench/recognition_containers.py, never here.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import pytest

from recognition import iso6346
from recognition.containers import ContainerReader, ContainerReading, fuse_containers
from recognition.engine import OcrEngine

Row = dict[str, str]


@pytest.fixture(scope="module")
def reader() -> ContainerReader:
    engine = OcrEngine()
    engine.warm_up()
    return ContainerReader(engine)


@pytest.fixture(scope="module")
def rows(shared_data: Path) -> list[Row]:
    with (shared_data / "containers" / "labels.csv").open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def photos_read(
    shared_data: Path, rows: list[Row], reader: ContainerReader
) -> dict[str, list[ContainerReading]]:
    """Every photo read once, shared by the tests below."""
    import cv2

    out = {}
    for row in rows:
        frame = cv2.imread(str(shared_data / "containers" / row["file"]))
        assert frame is not None, row["file"]
        out[row["file"]] = reader.read(frame)
    return out


def scored(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r["labelled"] == "yes" and r["label_check_digit_ok"] == "true"]


def differ(a: str, b: str) -> int:
    return sum(x != y for x, y in zip(a, b, strict=False)) + abs(len(a) - len(b))


def test_most_labelled_photos_are_read_and_none_is_misread(
    rows: list[Row], photos_read: dict[str, list[ContainerReading]]
) -> None:
    labelled = scored(rows)
    assert len(labelled) == 22
    right = 0
    for row in labelled:
        label = row["container_number"]
        verified = [r.number for r in photos_read[row["file"]] if r.verified]
        right += label in verified
        # another box may be in view too, but a verified near-miss of this one is a misread
        assert all(n == label or differ(n, label) > 3 for n in verified), (row["file"], verified)
    assert right >= 0.85 * len(labelled)


def test_each_truck_pass_fuses_to_its_labelled_containers(
    rows: list[Row], photos_read: dict[str, list[ContainerReading]]
) -> None:
    passes: dict[str, list[Row]] = {}
    for row in rows:
        if row["labelled"] == "yes":
            passes.setdefault(Path(row["source_path"]).parent.name, []).append(row)
    assert len(passes) == 5
    for pass_id, views in passes.items():
        fused = fuse_containers(r for v in views for r in photos_read[v["file"]])
        confident = {f.number for f in fused if f.verified and not f.needs_review}
        labels = {v["container_number"] for v in scored(views)}
        assert labels <= confident, pass_id
        assert len(confident) <= 2, pass_id


def test_no_photo_yields_an_invalid_verified_number(
    rows: list[Row], photos_read: dict[str, list[ContainerReading]]
) -> None:
    for row in rows:
        for r in photos_read[row["file"]]:
            if r.verified:
                assert iso6346.is_valid(r.number), (row["file"], r.number)
            else:
                assert len(r.number) == 10 or not iso6346.is_valid(r.number)


def test_readings_carry_their_place_size_type_and_evidence(
    shared_data: Path, photos_read: dict[str, list[ContainerReading]]
) -> None:
    # cont_001: rear doors of BEAU 265693 1, size-type 22G1 below it
    (beau,) = [r for r in photos_read["images/cont_001.jpg"] if r.verified]
    assert (beau.number, beau.size_type, beau.orientation) == ("BEAU2656931", "22G1", "horizontal")
    x0, y0, x1, y1 = beau.box
    assert 0 <= x0 < x1 <= 1920
    assert 0 <= y0 < y1 <= 1080
    assert beau.crop is not None
    assert beau.crop.ndim == 3
    assert beau.crop.shape[0] >= y1 - y0
    assert beau.crop.shape[1] >= x1 - x0
    # cont_003: the same pass's other box, its number painted in a column
    (trhu,) = [r for r in photos_read["images/cont_003.jpg"] if r.verified]
    assert (trhu.number, trhu.orientation) == ("TRHU1700369", "vertical")


def test_a_frame_with_no_text_gives_nothing(reader: ContainerReader) -> None:
    assert reader.read(np.full((1080, 1920, 3), 90, dtype=np.uint8)) == []
    assert reader.read(np.zeros((8, 8, 3), dtype=np.uint8)) == []


def test_noise_is_never_read_as_a_verified_number(reader: ContainerReader) -> None:
    rng = np.random.default_rng(6346)
    for _ in range(3):
        noise = rng.integers(0, 256, size=(540, 960, 3), dtype=np.uint8)
        assert not any(r.verified for r in reader.read(noise))


def test_grey_and_bgra_frames_read_like_colour_ones(
    shared_data: Path, reader: ContainerReader
) -> None:
    import cv2

    frame = cv2.imread(str(shared_data / "containers" / "images" / "cont_034.jpg"))
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA)
    for variant in (grey, bgra):
        assert "MSKU3866036" in [r.number for r in reader.read(variant) if r.verified]


def test_read_crops_answers_in_the_order_asked(shared_data: Path) -> None:
    # crops of very different widths are batched by width inside; answers keep order
    import cv2

    engine = OcrEngine()
    frame = cv2.imread(str(shared_data / "containers" / "images" / "cont_032.jpg"))
    crops = [frame[574:659, 1255:1427], frame[496:579, 1020:1234], frame[498:587, 1247:1526]]
    texts = [t for t, _ in engine.read_crops([np.ascontiguousarray(c) for c in crops])]
    assert texts == ["22G1", "MSKU", "360516"]


def test_detect_and_read_after_read_line_still_detects(shared_data: Path) -> None:
    # RapidOCR remembers use_det=False from a recognition-only call
    import cv2

    engine = OcrEngine()
    frame = cv2.imread(str(shared_data / "containers" / "images" / "cont_032.jpg"))
    engine.read_line(frame[490:590, 1000:1550])
    texts = [b.text for b in engine.detect_and_read(frame)]
    assert "MSKU" in texts
    assert len(texts) >= 3


# --- painted test cards: numbers the project has never seen, in both layouts

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


def random_number(rng: random.Random) -> str:
    owner = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(3)) + "U"
    serial = "".join(rng.choice("0123456789") for _ in range(6))
    return owner + serial + iso6346.calc_check_digit(owner + serial)


def paint(number: str, layout: str, rng: random.Random) -> np.ndarray:
    """A corrugated container side with the number, boxed check digit and 22G1."""
    from PIL import Image, ImageDraw, ImageFont

    bg = tuple(rng.randint(30, 140) for _ in range(3))
    img = Image.new("RGB", (1920, 1080), bg)
    draw = ImageDraw.Draw(img)
    for x in range(0, 1920, 60):  # corrugation shadows
        draw.rectangle((x, 0, x + 18, 1080), fill=tuple(max(0, c - 25) for c in bg))
    font = ImageFont.truetype(str(FONT), 64)
    ink = (240, 240, 240)
    x0, y0 = rng.randint(300, 900), rng.randint(120, 200)

    def boxed(x: int, y: int) -> None:
        draw.rectangle((x - 8, y - 4, x + 50, y + 74), outline=ink, width=4)
        draw.text((x, y), number[10], font=font, fill=ink)

    if layout == "column":
        for i, ch in enumerate(number[:10]):
            draw.text((x0, y0 + i * 72 + (30 if i >= 4 else 0)), ch, font=font, fill=ink)
        boxed(x0, y0 + 10 * 72 + 40)
        for i, ch in enumerate("22G1"):
            draw.text((x0 + 160, y0 + i * 72), ch, font=font, fill=ink)
    elif layout == "two lines":
        draw.text((x0, y0), number[:4], font=font, fill=ink)
        draw.text((x0, y0 + 90), number[4:10], font=font, fill=ink)
        boxed(x0 + 270, y0 + 90)
        draw.text((x0, y0 + 180), "22G1", font=font, fill=ink)
    else:
        draw.text((x0, y0), number[:4], font=font, fill=ink)
        draw.text((x0 + 230, y0), number[4:10], font=font, fill=ink)
        boxed(x0 + 500, y0)
        draw.text((x0 + 230, y0 + 90), "22G1", font=font, fill=ink)
    return np.ascontiguousarray(np.asarray(img)[:, :, ::-1])


@pytest.mark.skipif(not FONT.exists(), reason=f"font {FONT} not installed")
@pytest.mark.parametrize("layout", ["line", "two lines", "column"])
def test_painted_numbers_in_every_layout(reader: ContainerReader, layout: str) -> None:
    rng = random.Random(f"{layout} 6346")
    right = 0
    for _ in range(4):
        number = random_number(rng)
        readings = reader.read(paint(number, layout, rng))
        verified = [r.number for r in readings if r.verified]
        assert all(n == number for n in verified), (number, verified)
        right += number in verified
        if number in verified:
            (hit,) = [r for r in readings if r.number == number]
            assert hit.size_type == "22G1"
    assert right >= 3
