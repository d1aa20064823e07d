"""Synthetic camera frames for the simulator and the benchmarks: plates and container markings.

Every function takes the text to paint (the caller chooses valid numbers), a seed and a
``difficulty`` in [0, 1], and returns a BGR image with the ground truth: where each piece of
text lies, as a quadrilateral in image coordinates. The same arguments give the same pixels.

Plausible, not photorealistic: a flat object (plate on a vehicle, container wall) is painted
with the right layout, colours and font, then placed in a scene through a camera homography
(size, yaw, pitch, roll), and the frame goes through what a gate camera does to it: light,
dirt, blur, noise and JPEG. ``difficulty=0`` keeps the geometry but leaves out dirt, blur,
noise, JPEG and harsh light; 1 is a bad day at the gate.

Plate layouts follow GA 36-2018 (440x140 mm single line, 480x140 mm new-energy with eight
characters, 440x220 mm double line); container markings follow ISO 6346 practice (owner code
and category, serial, boxed check digit, size-type code below; vertical on a corner post; large
on the roof). Text is drawn with Noto Sans CJK from Debian's fonts-noto-cjk.
"""

from __future__ import annotations

import functools
import math
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

Image = NDArray[np.uint8]
Quad = NDArray[np.float32]  # 4 x 2 corners: top-left, top-right, bottom-right, bottom-left
Rng = np.random.Generator
BGR = tuple[int, int, int]

PlateKind = Literal["blue", "yellow", "green", "yellow_double"]
ContainerView = Literal["side", "back", "corner", "top"]
TruthKind = Literal[
    "plate", "plate_line", "container_code", "owner", "serial", "check_digit", "size_type"
]

PLATE_SCENE_SIZE = (1280, 720)
CONTAINER_SCENE_SIZE = (1920, 1080)

# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextTruth:
    """Where one piece of painted text lies in the image.

    ``quad`` runs clockwise from the text's own top-left corner, so a crop rectified with it
    reads upright. Kinds: ``plate`` (the whole plate, its full text), ``plate_line`` (one line of
    a plate), ``container_code`` (owner, serial and check digit together, 11 characters),
    ``owner`` (4 letters), ``serial`` (6 digits), ``check_digit`` (the boxed digit),
    ``size_type`` (e.g. 45G1).
    """

    kind: TruthKind
    text: str
    quad: Quad

    def bbox(self) -> tuple[int, int, int, int]:
        """Axis-aligned ``(x0, y0, x1, y1)`` around the quad (x1, y1 exclusive)."""
        x0, y0 = np.floor(self.quad.min(axis=0)).astype(int)
        x1, y1 = np.ceil(self.quad.max(axis=0)).astype(int)
        return int(x0), int(y0), int(x1), int(y1)

    def rectified(self, image: Image, height: int = 48) -> Image:
        """The text's region warped to an upright rectangle ``height`` pixels tall."""
        w = np.linalg.norm(self.quad[1] - self.quad[0])
        h = np.linalg.norm(self.quad[3] - self.quad[0])
        width = max(1, round(height * w / max(h, 1e-6)))
        dst = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
        m = cv2.getPerspectiveTransform(self.quad.astype(np.float32), dst)
        out = cv2.warpPerspective(image, m, (width, height), flags=cv2.INTER_LINEAR)
        return np.asarray(out, dtype=np.uint8)


@dataclass(frozen=True)
class Render:
    """A synthetic frame and the truth about the text in it."""

    image: Image  # BGR
    truths: tuple[TextTruth, ...]
    seed: int

    def of_kind(self, kind: TruthKind) -> list[TextTruth]:
        """The truths of one kind, in painting order."""
        return [t for t in self.truths if t.kind == kind]


@dataclass(frozen=True)
class ContainerMarking:
    """What is painted on one container: its 11-character number and its size-type code."""

    code: str  # e.g. "MSKU1234565": owner (3 letters) + category (U/J/Z) + 6 digits + check
    size_type: str = "45G1"  # "" when not painted

    def __post_init__(self) -> None:
        if len(self.code) != 11:
            raise ValueError(f"a container number has 11 characters, not {self.code!r}")
        if self.size_type and len(self.size_type) != 4:
            raise ValueError(f"a size-type code has 4 characters, not {self.size_type!r}")


# --- font -------------------------------------------------------------------------------------


class FontNotFoundError(RuntimeError):
    """No CJK font on this machine."""


FONT_PATHS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansCJK-Bold.ttc",
)


def find_cjk_font(candidates: Sequence[str | Path] | None = None) -> Path:
    """The path of a Noto Sans CJK font file: fc-match first, then known Debian paths.

    Raises ``FontNotFoundError`` naming the package to install when there is none.
    """
    tried: list[str] = []
    if candidates is None:
        if shutil.which("fc-match"):
            try:
                out = subprocess.run(
                    ["fc-match", "-f", "%{file}", "Noto Sans CJK SC:style=Bold"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                    check=False,
                ).stdout.strip()
            except (OSError, subprocess.TimeoutExpired):
                out = ""
            # fc-match always answers, falling back to any font: only a CJK one will do
            if out and "CJK" in Path(out).name and Path(out).is_file():
                return Path(out)
            tried.append(f"fc-match gave {out or 'nothing'}")
        candidates = FONT_PATHS
    for c in candidates:
        if Path(c).is_file():
            return Path(c)
        tried.append(str(c))
    raise FontNotFoundError(
        "no CJK font found for rendering plates (install Debian's fonts-noto-cjk); tried: "
        + "; ".join(tried)
    )


@functools.lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont:
    path = find_cjk_font()
    if path.suffix.lower() == ".ttc":
        for index in range(10):  # pick the Simplified Chinese face of the collection
            try:
                font = ImageFont.truetype(str(path), size, index=index)
            except OSError:
                break
            if font.getname()[0].endswith(" SC"):
                return font
    return ImageFont.truetype(str(path), size)


@functools.lru_cache(maxsize=1024)
def _glyph(ch: str) -> Image:
    """A tight 8-bit coverage mask of one character, about 240 px tall for a capital."""
    font = _font(256)
    x0, y0, x1, y1 = font.getbbox(ch)
    img = PILImage.new("L", (x1 - x0 + 16, y1 - y0 + 16), 0)
    ImageDraw.Draw(img).text((8 - x0, 8 - y0), ch, font=font, fill=255)
    arr = np.asarray(img, dtype=np.uint8)
    ys, xs = np.nonzero(arr > 8)
    if len(xs) == 0:
        raise ValueError(f"the font has no glyph for {ch!r}")
    mask = np.ascontiguousarray(arr[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])
    mask.flags.writeable = False
    return mask


# --- painting helpers -------------------------------------------------------------------------


def _blend(canvas: NDArray[np.float32], mask: NDArray[np.float32], color: BGR, x: int, y: int):
    """Alpha-blend ``color`` through ``mask`` (0..1) into ``canvas`` at (x, y), clipped."""
    h, w = mask.shape
    ch, cw = canvas.shape[:2]
    xa, ya, xb, yb = max(x, 0), max(y, 0), min(x + w, cw), min(y + h, ch)
    if xa >= xb or ya >= yb:
        return
    m = mask[ya - y : yb - y, xa - x : xb - x, None]
    region = canvas[ya:yb, xa:xb]
    region *= 1.0 - m
    region += m * np.asarray(color, np.float32)


def _draw_char(
    canvas: NDArray[np.float32],
    ch: str,
    cell: tuple[float, float, float, float],
    color: BGR,
    *,
    max_aspect: float = 10.0,
) -> None:
    """Paint one character filling its cell's height, squeezed to the cell's width if wider."""
    x0, y0, x1, y1 = cell
    if ch.isspace():
        return
    if ch in ".,":  # punctuation sits on the baseline, small: not stretched to the cell
        r = max(1, round((y1 - y0) * 0.08))
        cv2.circle(canvas, (round((x0 + x1) / 2), round(y1 - r)), r, color, -1)
        return
    g = _glyph(ch)
    h = max(1, round(y1 - y0))
    w = max(1, round(min(x1 - x0, h * min(g.shape[1] / g.shape[0], max_aspect))))
    mask = cv2.resize(g, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    x = round((x0 + x1) / 2 - w / 2)
    _blend(canvas, mask, color, x, round(y0))


def _fill_rect(canvas: NDArray[np.float32], rect: tuple[float, float, float, float], color: BGR):
    x0, y0, x1, y1 = (round(v) for v in rect)
    cv2.rectangle(canvas, (x0, y0), (x1 - 1, y1 - 1), color, -1)


def _rect_quad(x0: float, y0: float, x1: float, y1: float) -> Quad:
    return np.float32([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])


def _union_quad(rects: Sequence[tuple[float, float, float, float]]) -> Quad:
    return _rect_quad(
        min(r[0] for r in rects),
        min(r[1] for r in rects),
        max(r[2] for r in rects),
        max(r[3] for r in rects),
    )


def _vgradient(h: int, w: int, top: BGR, bottom: BGR) -> NDArray[np.float32]:
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    a, b = np.asarray(top, np.float32), np.asarray(bottom, np.float32)
    return np.broadcast_to(a * (1 - t) + b * t, (h, w, 3)).copy()


def _jitter(rng: Rng, color: BGR, amount: float) -> BGR:
    c = np.clip(np.asarray(color, np.float32) + rng.normal(0, amount, 3), 0, 255)
    return (int(c[0]), int(c[1]), int(c[2]))


def _noise(rng: Rng, shape: tuple[int, ...], sigma: float) -> NDArray[np.float32]:
    """Zero-mean noise of standard deviation ``sigma``, float32.

    Triangular (the difference of two uniforms) rather than Gaussian: it looks the same on a
    frame and numpy draws it about four times faster.
    """
    out = rng.random(shape, dtype=np.float32)
    out -= rng.random(shape, dtype=np.float32)
    out *= np.float32(sigma * math.sqrt(6.0))
    return out


def _rngs(seed: int, n: int) -> list[Rng]:
    """Independent streams per concern, so changing the text leaves the rest of a scene as is."""
    return [np.random.default_rng([seed, i]) for i in range(n)]


# --- geometry ---------------------------------------------------------------------------------


def _homography(
    src_anchor: tuple[float, float],
    dst_anchor: tuple[float, float],
    *,
    scale: float,
    yaw_deg: float,
    pitch_deg: float,
    roll_deg: float,
    focal: float,
) -> NDArray[np.float64]:
    """Map a flat object's pixels into the image: a plane turned in 3D, seen by a pinhole camera.

    ``src_anchor`` of the object lands on ``dst_anchor``; near it one object pixel spans about
    ``scale`` image pixels.
    """
    a, b, c = (math.radians(v) for v in (yaw_deg, pitch_deg, roll_deg))
    ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    r = rz @ rx @ ry
    k = np.diag([focal, focal, 1.0])
    plane = np.column_stack([r[:, 0] * scale, r[:, 1] * scale, [0.0, 0.0, focal]])
    to_src = np.array([[1, 0, -src_anchor[0]], [0, 1, -src_anchor[1]], [0, 0, 1]])
    to_dst = np.array([[1, 0, dst_anchor[0]], [0, 1, dst_anchor[1]], [0, 0, 1]])
    h = to_dst @ k @ plane @ to_src
    return np.asarray(h / h[2, 2], dtype=np.float64)


def _warp_quad(quad: Quad, h: NDArray[np.float64]) -> Quad:
    pts = cv2.perspectiveTransform(quad.reshape(-1, 1, 2).astype(np.float32), h)
    return np.asarray(pts.reshape(4, 2), dtype=np.float32)


def _composite(
    scene: NDArray[np.float32],
    layer: NDArray[np.float32],
    alpha: NDArray[np.float32],
    h: NDArray[np.float64],
) -> None:
    """Warp a flat layer (with its alpha) into the scene and blend it in place."""
    size = (scene.shape[1], scene.shape[0])
    warped = cv2.warpPerspective(layer, h, size, flags=cv2.INTER_LINEAR)
    a = cv2.warpPerspective(alpha, h, size, flags=cv2.INTER_LINEAR)[:, :, None]
    scene *= 1.0 - a
    scene += warped * a


# --- what happens on the object and in the camera ---------------------------------------------


def _dirt(
    surface: NDArray[np.float32], rng: Rng, amount: float, *, rust: bool = False, scale: float
) -> None:
    """Mud, dust and (on steel) rust: soft blotches, splashes and streaks, in place."""
    if amount <= 0:
        return
    h, w = surface.shape[:2]
    layer = np.zeros((h, w), np.float32)
    for _ in range(int(3 + 10 * amount)):  # blotches
        c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        axes = (int(rng.uniform(0.03, 0.18) * w) + 1, int(rng.uniform(0.05, 0.3) * h) + 1)
        cv2.ellipse(layer, c, axes, rng.uniform(0, 180), 0, 360, float(rng.uniform(0.3, 1)), -1)
    for _ in range(int(40 + 200 * amount)):  # splashes, thicker towards the bottom
        x, y = rng.uniform(0, w), h * (1 - rng.power(2.5))
        radius = max(1, int(rng.uniform(0.3, 2.0) * scale))
        cv2.circle(layer, (int(x), int(y)), radius, float(rng.uniform(0.4, 1)), -1)
    for _ in range(int(2 + 6 * amount)):  # run-off streaks
        x = int(rng.uniform(0, w))
        y0 = int(rng.uniform(0, h * 0.5))
        cv2.line(layer, (x, y0), (x, h), float(rng.uniform(0.2, 0.6)), max(1, int(2 * scale)))
    k = max(3, int(3 * scale) | 1)
    layer = cv2.GaussianBlur(layer, (k, k), 0) * min(0.65, 0.7 * amount)
    tint = (40, 70, 110) if rust else (50, 70, 85)  # BGR: rust orange-brown, road-mud brown
    color = np.asarray(_jitter(rng, tint, 12), np.float32)
    surface *= 1.0 - layer[:, :, None]
    surface += layer[:, :, None] * color


def _camera(image: NDArray[np.float32], rng: Rng, difficulty: float) -> Image:
    """Light, shadow, blur, noise and JPEG: what the weather and the camera do to a frame."""
    d = float(np.clip(difficulty, 0.0, 1.0))
    if d == 0:  # a perfect camera: exactly the painted scene
        return np.ascontiguousarray(np.clip(image, 0, 255).astype(np.uint8))
    h, w = image.shape[:2]
    img = image
    # light: exposure, contrast, colour cast
    mode = rng.choice(
        ["day", "overcast", "dusk", "night", "glare"], p=[0.35, 0.2, 0.15, 0.15, 0.15]
    )
    gain = {"day": 1.0, "overcast": 0.8, "dusk": 0.55, "night": 0.45, "glare": 1.1}[mode]
    gain = 1.0 + (gain * rng.uniform(0.85, 1.15) - 1.0) * d
    flat = 0.5 if mode in ("overcast", "glare", "night") else 0.3
    contrast = 1.0 - d * rng.uniform(0.1, flat)
    mean = float(img.mean())
    img = (img - mean) * np.float32(contrast) + np.float32(mean)
    img *= np.float32(gain)
    img *= (1.0 + d * rng.normal(0, 0.06, 3)).astype(np.float32)
    gx, gy = np.meshgrid(
        np.linspace(-1, 1, w, dtype=np.float32), np.linspace(-1, 1, h, dtype=np.float32)
    )
    # a soft shadow across the frame, and sometimes a hard one (a gantry beam, the cab)
    theta = rng.uniform(0, 2 * math.pi)
    ramp = np.float32(math.cos(theta)) * gx + np.float32(math.sin(theta)) * gy
    edge = np.float32(rng.uniform(-0.6, 0.6))
    depth = np.float32(d * rng.uniform(0.1, 0.45))
    img *= (1.0 - depth / (1.0 + np.exp((ramp - edge) * np.float32(12))))[:, :, None]
    if rng.random() < 0.45 * d:
        theta = rng.uniform(0, 2 * math.pi)
        ramp = np.float32(math.cos(theta)) * gx + np.float32(math.sin(theta)) * gy
        band = np.abs(ramp - np.float32(rng.uniform(-0.5, 0.5))) < rng.uniform(0.05, 0.3)
        img[band] *= np.float32(1.0 - d * rng.uniform(0.3, 0.6))
    if mode == "glare":
        cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
        rad = rng.uniform(0.1, 0.35) * w
        dist = np.sqrt((gx * (w / 2) + (w / 2 - cx)) ** 2 + (gy * (h / 2) + (h / 2 - cy)) ** 2)
        bright = np.float32(d * rng.uniform(80, 180))
        img += (bright * np.exp(-((dist / np.float32(rad)) ** 2)))[:, :, None]
    # blur: defocus or motion
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), d * rng.uniform(0.4, 1.6))
    else:
        length = round(1 + d * rng.uniform(0, 4))  # half the streak, in pixels
        kernel = np.zeros((length * 2 + 1, length * 2 + 1), np.float32)
        angle = math.radians(rng.uniform(-30, 30))
        dx, dy = math.cos(angle) * length, math.sin(angle) * length
        c = length
        cv2.line(kernel, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1)
        img = cv2.filter2D(img, -1, kernel / kernel.sum())
    # sensor noise, stronger in the dark
    sigma = d * rng.uniform(2, 10) * (1.5 if mode in ("night", "dusk") else 1.0)
    img = img + _noise(rng, img.shape[:2], sigma)[:, :, None]  # luminance noise
    out = np.clip(img, 0, 255).astype(np.uint8)
    quality = round(95 - d * rng.uniform(25, 75))
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if ok:
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return np.ascontiguousarray(out, dtype=np.uint8)


# --- plates -----------------------------------------------------------------------------------

_PLATE_MM = {"blue": (440, 140), "yellow": (440, 140), "green": (480, 140)}
_PLATE_MM["yellow_double"] = (440, 220)


def _plate_layout(kind: PlateKind) -> tuple[list[tuple[float, float, float, float]], list[int]]:
    """Character cells in millimetres and which characters make each line (GA 36-2018)."""
    if kind in ("blue", "yellow"):
        xs, x = [], 15.5
        for i in range(7):
            xs.append(x)
            x += 45 + (34 if i == 1 else 12)
        return [(x, 25.0, x + 45, 115.0) for x in xs], [7]
    if kind == "green":
        xs, x = [], 16.0
        for i in range(8):
            xs.append(x)
            x += 43 + (49 if i == 1 else 9)
        return [(x, 25.0, x + 43, 115.0) for x in xs], [8]
    top = [(110.0, 15.0, 190.0, 75.0), (250.0, 15.0, 330.0, 75.0)]
    bottom = [(27.5 + i * 80, 95.0, 27.5 + i * 80 + 65, 205.0) for i in range(5)]
    return top + bottom, [2, 5]


def _check_plate(text: str, kind: PlateKind) -> None:
    if kind not in ("blue", "yellow", "green", "yellow_double"):
        raise ValueError(f"unknown plate kind {kind!r}")
    want = 8 if kind == "green" else 7
    if len(text) != want:
        raise ValueError(f"a {kind} plate carries {want} characters, not {text!r}")


def _paint_plate(
    text: str, kind: PlateKind, px_per_mm: float, rng: Rng | None, dirt: float
) -> tuple[NDArray[np.float32], NDArray[np.float32], list[TextTruth]]:
    """A flat plate (BGR float, alpha) at ``px_per_mm``, with truths in its own pixels."""
    _check_plate(text, kind)
    wmm, hmm = _PLATE_MM[kind]
    k = px_per_mm
    w, h = max(8, round(wmm * k)), max(4, round(hmm * k))
    if kind == "blue":
        surface = _vgradient(h, w, (180, 80, 15), (150, 60, 5))
        ink: BGR = (245, 245, 245)
    elif kind == "green":
        surface = _vgradient(h, w, (235, 250, 240), (95, 200, 110))
        ink = (20, 20, 20)
    else:
        surface = _vgradient(h, w, (30, 200, 250), (10, 175, 235))
        ink = (15, 15, 15)
    alpha = np.zeros((h, w), np.float32)
    r = max(1, round(5 * k))
    cv2.rectangle(alpha, (r, 0), (w - 1 - r, h - 1), 1.0, -1)
    cv2.rectangle(alpha, (0, r), (w - 1, h - 1 - r), 1.0, -1)
    for cx, cy in ((r, r), (w - 1 - r, r), (r, h - 1 - r), (w - 1 - r, h - 1 - r)):
        cv2.circle(alpha, (cx, cy), r, 1.0, -1)
    if kind != "green":  # the embossed rim in the text colour
        t = max(1, round(1.5 * k))
        cv2.rectangle(surface, (t, t), (w - 1 - t, h - 1 - t), ink, t)
    cells_mm, lines = _plate_layout(kind)
    cells = [(a * k, b * k, c * k, d * k) for a, b, c, d in cells_mm]
    if kind != "yellow_double":  # the dot after the issuing-authority letter
        dx = (cells[1][2] + cells[2][0]) / 2
        cv2.circle(surface, (round(dx), round(70 * k)), max(1, round(5 * k)), ink, -1)
    for hx in (0.25, 0.75):  # mounting rivets
        cv2.circle(
            surface, (round(hx * w), round(12 * k)), max(1, round(4 * k)), (160, 160, 160), -1
        )
    shadow = tuple(int(c * 0.5) for c in surface[h // 2, w // 2])
    off = max(1.0, 0.8 * k)
    for ch, (x0, y0, x1, y1) in zip(text, cells, strict=True):  # embossed: a shadow, then ink
        _draw_char(surface, ch, (x0 + off, y0 + off, x1 + off, y1 + off), shadow)  # type: ignore[arg-type]
        _draw_char(surface, ch, (x0, y0, x1, y1), ink)
    if rng is not None and dirt > 0:
        _dirt(surface, rng, dirt, scale=max(1.0, k))
        if rng.random() < 0.4 * dirt:  # the reflective sheeting catching the sun or a lamp
            spot = np.zeros((h, w), np.float32)
            c = (round(rng.uniform(0.1, 0.9) * w), round(rng.uniform(0.2, 0.8) * h))
            cv2.ellipse(spot, c, (round(w * rng.uniform(0.1, 0.3)), h), 20, 0, 360, 1.0, -1)
            spot = cv2.GaussianBlur(spot, (0, 0), max(1.0, w * 0.05))
            surface += (spot * np.float32(rng.uniform(80, 200) * dirt))[:, :, None]
    truths = [TextTruth("plate", text, _rect_quad(0, 0, w, h))]
    start = 0
    for n in lines:
        truths.append(
            TextTruth("plate_line", text[start : start + n], _union_quad(cells[start : start + n]))
        )
        start += n
    return surface, alpha, truths


def render_plate(text: str, kind: PlateKind, *, px_per_mm: float = 1.0) -> Render:
    """A clean, flat plate filling the image (440x140 px at 1 px/mm): for crop-level tests."""
    surface, alpha, truths = _paint_plate(text, kind, px_per_mm, None, 0.0)
    bg = np.full_like(surface, 255.0)
    a = alpha[:, :, None]
    image = np.clip(surface * a + bg * (1 - a), 0, 255).astype(np.uint8)
    return Render(image, tuple(truths), 0)


_BODY_COLORS: list[BGR] = [
    (240, 240, 240), (30, 30, 30), (150, 150, 150), (40, 40, 160), (140, 90, 30),
    (60, 110, 40), (200, 200, 205), (30, 150, 220), (90, 60, 50),
]  # fmt: skip
_BRANDS = ["HANVO", "SINOTRUK", "DONGRUN", "FOTAN", "JIEFANG", "SHACMAN", "KAMAZ", "AUMARK"]
_SIGNS = ["3号通道", "海关监管区", "限速5公里", "请停车验放", "出口", "卡口 A2", "禁止掉头"]


def _vehicle_front(
    rng: Rng, k: float, truck: bool, rear: bool
) -> tuple[NDArray[np.float32], NDArray[np.float32], tuple[float, float]]:
    """A flat vehicle front (or truck rear) at ``k`` px/mm; returns layer, alpha, plate centre."""
    wmm, hmm = (2500, 3200) if truck else (1800, 1450)
    w, h = round(wmm * k), round(hmm * k)
    body = _jitter(rng, _BODY_COLORS[rng.integers(len(_BODY_COLORS))], 10)
    dark = tuple(int(c * 0.45) for c in body)
    layer = np.zeros((h, w, 3), np.float32)
    alpha = np.zeros((h, w), np.float32)

    def mm(*v: float) -> tuple[int, ...]:
        return tuple(round(x * k) for x in v)

    def rect(x0: float, y0: float, x1: float, y1: float, color: object) -> None:
        cv2.rectangle(layer, mm(x0, y0), mm(x1, y1), color, -1)  # type: ignore[arg-type]
        cv2.rectangle(alpha, mm(x0, y0), mm(x1, y1), 1.0, -1)

    if rear:  # the back of a trailer: chassis beam, lamps, mud flaps, plate lamp housing
        rect(0, 1500, 2500, 2450, (40, 40, 40))
        rect(60, 1550, 2440, 1900, _jitter(rng, (70, 70, 75), 8))
        for x in (120, 2080):
            rect(x, 1950, x + 300, 2100, (40, 40, 190))
            rect(x + 20, 1970, x + 130, 2080, (90, 90, 240))
        for x in (150, 2050):
            rect(x, 2450, x + 300, 3100, (25, 25, 25))
            rect(x - 40, 2300, x + 340, 2800, (35, 35, 35))
        plate = (1250.0, 2230.0)
        rect(980, 2090, 1520, 2370, (30, 30, 30))
    else:
        top = 500 if truck else 150
        rect(0, top - 80, wmm, hmm - 250, body)
        y0, y1 = round((top - 80) * k), round((hmm - 250) * k)
        mid = tuple((b + c) // 2 for b, c in zip(body, dark, strict=True))
        layer[y0:y1] = _vgradient(y1 - y0, w, body, mid)
        win_bottom = 1500 if truck else 550
        win = np.array(
            [
                mm(wmm * 0.2, top),
                mm(wmm * 0.8, top),
                mm(wmm * 0.93, win_bottom),
                mm(wmm * 0.07, win_bottom),
            ],
            np.int32,
        )
        cv2.fillPoly(layer, [win], _jitter(rng, (70, 55, 45), 10))
        streak = np.array(
            [
                mm(wmm * 0.35, top),
                mm(wmm * 0.45, top),
                mm(wmm * 0.3, win_bottom),
                mm(wmm * 0.2, win_bottom),
            ],
            np.int32,
        )
        cv2.fillPoly(layer, [streak], (120, 110, 105))
        g0, g1 = (1700, 2400) if truck else (700, 900)
        rect(wmm * 0.3, g0, wmm * 0.7, g1, (25, 25, 25))
        for y in np.arange(g0 + 40, g1 - 20, 70 if truck else 45):
            rect(wmm * 0.31, y, wmm * 0.69, y + 12, (90, 90, 90))
        lamp_y = (2450, 2560) if truck else (680, 800)
        for x in (0.05, 0.73):
            c = mm(wmm * (x + 0.11), sum(lamp_y) / 2)
            axes = mm(wmm * 0.1, (lamp_y[1] - lamp_y[0]) / 2)
            cv2.ellipse(layer, c, axes, 0, 0, 360, (215, 220, 225), -1)  # type: ignore[arg-type]
            cv2.ellipse(layer, c, tuple(a // 2 for a in axes), 0, 0, 360, (250, 250, 250), -1)  # type: ignore[arg-type]
        by0 = 2600 if truck else 920
        rect(0, by0, wmm, by0 + 300, dark)
        for x in (0.0, 0.85):
            rect(wmm * x + 40, hmm - 330, wmm * x + wmm * 0.15 - 40, hmm, (20, 20, 20))
        plate = (wmm / 2, by0 + 110.0)
        rect(wmm / 2 - 260, by0 + 10, wmm / 2 + 260, by0 + 210, (35, 35, 35))
        brand = _BRANDS[rng.integers(len(_BRANDS))]
        bh = 120 if truck else 45
        bw = bh * 0.7 * len(brand)
        bx0 = wmm / 2 - bw / 2
        by = g0 - bh - 40 if truck else g0 + 70
        for i, ch in enumerate(brand):
            cell = (
                (bx0 + i * bh * 0.7) * k,
                by * k,
                (bx0 + (i + 0.62) * bh * 0.7) * k,
                (by + bh) * k,
            )
            _draw_char(layer, ch, cell, (210, 210, 210))
    return layer, alpha, (plate[0] * k, plate[1] * k)


def _plate_background(rng: Rng, w: int, h: int) -> NDArray[np.float32]:
    horizon = int(h * rng.uniform(0.25, 0.45))
    scene = _vgradient(h, w, _sky(rng), _jitter(rng, (120, 120, 120), 6))
    road = _vgradient(h - horizon, w, (110, 110, 110), (70, 72, 75))
    road += _noise(rng, road.shape[:2], 6)[:, :, None]
    scene[horizon:] = road
    for _ in range(int(rng.integers(2, 6))):  # buildings and a canopy over the lane
        x0, bw = rng.uniform(0, w), rng.uniform(0.1, 0.4) * w
        y0 = rng.uniform(0.02, 0.8) * horizon
        _fill_rect(scene, (x0, y0, x0 + bw, horizon), _jitter(rng, (150, 150, 145), 25))
    _fill_rect(scene, (0, 0, w, h * rng.uniform(0.03, 0.08)), (90, 90, 95))
    for x in np.linspace(-0.2, 1.2, 5) * w:  # lane marks converging to the horizon
        p0 = (int(x), h - 1)
        p1 = (int(w / 2 + (x - w / 2) * 0.3), horizon)
        cv2.line(scene, p0, p1, (200, 200, 200), max(2, w // 300))
    if rng.random() < 0.7:  # a lane sign: CJK text that is not a plate
        text = _SIGNS[rng.integers(len(_SIGNS))]
        ch = int(rng.uniform(0.035, 0.06) * h)
        sx, sy = rng.uniform(0.02, 0.75) * w, rng.uniform(0.02, 0.3) * h
        color = (140, 70, 10) if rng.random() < 0.5 else (60, 120, 20)
        _fill_rect(
            scene,
            (sx - ch * 0.4, sy - ch * 0.3, sx + ch * len(text) + ch * 0.4, sy + ch * 1.3),
            color,
        )
        for i, c in enumerate(text):
            _draw_char(scene, c, (sx + i * ch, sy, sx + (i + 0.9) * ch, sy + ch), (240, 240, 240))
    return scene


def render_plate_scene(
    text: str,
    kind: PlateKind,
    seed: int,
    *,
    difficulty: float = 0.5,
    size: tuple[int, int] = PLATE_SCENE_SIZE,
) -> Render:
    """A vehicle front with the plate ``text`` (yellow_double: a trailer rear), at ``size``.

    Kinds: ``blue`` (white text), ``yellow`` (black text, trucks), ``green`` (new energy, eight
    characters, gradient), ``yellow_double`` (two lines). Truths: ``plate`` and ``plate_line``.
    """
    _check_plate(text, kind)
    d = float(np.clip(difficulty, 0.0, 1.0))
    r_scene, r_geo, r_dirt, r_cam = _rngs(seed, 4)
    w, h = size
    scene = _plate_background(r_scene, w, h)
    plate_w = r_geo.uniform(300 - 190 * d, 330 - 120 * d) * w / 1280  # plate width in pixels
    wmm = _PLATE_MM[kind][0]
    k = plate_w / wmm * 1.15  # paint a little larger than seen, then let the warp shrink it
    truck = kind in ("yellow", "yellow_double")
    layer, alpha, (pcx, pcy) = _vehicle_front(r_scene, k, truck, rear=kind == "yellow_double")
    plate, plate_alpha, truths = _paint_plate(text, kind, k, r_dirt, d)
    # mount the plate, slightly crooked, on the vehicle
    tilt = r_geo.normal(0, 1.0 + 2.0 * d)
    ph, pw = plate.shape[:2]
    mount = cv2.getRotationMatrix2D((pw / 2, ph / 2), tilt, 1.0)
    mount[:, 2] += (pcx - pw / 2, pcy - ph / 2)
    mount3 = np.vstack([mount, [0, 0, 1]])
    lw = (layer.shape[1], layer.shape[0])
    pl = cv2.warpAffine(plate, mount, lw, flags=cv2.INTER_LINEAR)
    pa = cv2.warpAffine(plate_alpha, mount, lw, flags=cv2.INTER_LINEAR)[:, :, None]
    layer = layer * (1 - pa) + pl * pa
    alpha = np.maximum(alpha, pa[:, :, 0])
    # the vehicle in the camera
    target = (r_geo.uniform(0.3, 0.7) * w, r_geo.uniform(0.45, 0.8) * h)
    hom = _homography(
        (pcx, pcy),
        target,
        scale=1 / 1.15,
        yaw_deg=r_geo.uniform(-1, 1) * (5 + 35 * d),
        pitch_deg=r_geo.uniform(-3, 15) * (0.3 + d),
        roll_deg=r_geo.normal(0, 1 + 4 * d),
        focal=w * r_geo.uniform(1.2, 2.0),
    )
    _composite(scene, layer, alpha, hom)
    full = hom @ mount3
    out = [TextTruth(t.kind, t.text, _warp_quad(t.quad, full)) for t in truths]
    return Render(_camera(scene, r_cam, d), tuple(out), seed)


# --- containers -------------------------------------------------------------------------------

_PAINT: list[tuple[BGR, BGR]] = [  # container colour, marking colour
    ((40, 40, 150), (245, 245, 245)), ((120, 70, 20), (245, 245, 245)),
    ((50, 100, 40), (245, 245, 245)), ((110, 110, 110), (245, 245, 245)),
    ((40, 70, 110), (245, 245, 245)), ((30, 120, 220), (20, 20, 20)),
    ((225, 225, 220), (30, 30, 30)), ((160, 160, 150), (25, 25, 25)),
]  # fmt: skip
_CARRIERS = ["TRANSOCEAN", "BLUEWAVE", "ORIENTLINE", "PACIFICA", "NORDSTAR", "SEAGATE LINES"]
_H_MM = 2591  # side wall height of a standard container


def _corrugate(surface: NDArray[np.float32], period: float, vertical: bool, depth: float) -> None:
    """Shade trapezoidal ribs, text included (the paint lies on the ribs)."""
    h, w = surface.shape[:2]
    n = w if vertical else h
    phase = np.arange(n, dtype=np.float32) / max(period, 1.0) * 2 * math.pi
    wave = 1.0 + depth * np.clip(1.6 * np.sin(phase), -1, 1)
    shade = wave[None, :, None] if vertical else wave[:, None, None]
    surface *= shade


def _paint_code(
    surface: NDArray[np.float32],
    marking: ContainerMarking,
    origin: tuple[float, float],
    ch_h: float,
    ink: BGR,
    *,
    vertical: bool,
    size_type: bool = True,
    box_check: bool = True,
) -> list[TextTruth]:
    """Paint owner, serial, boxed check digit (and size-type) at ``origin``; return truths."""
    code = marking.code
    groups = [("owner", code[:4]), ("serial", code[4:10]), ("check_digit", code[10])]
    if size_type and marking.size_type:
        groups.append(("size_type", marking.size_type))
    cw, step = ch_h * 0.62, ch_h * 0.72
    pad = ch_h * 0.14
    x, y = origin
    truths: list[TextTruth] = []
    code_rects: list[tuple[float, float, float, float]] = []
    for kind, text in groups:
        if vertical:
            if kind == "size_type":
                y += ch_h * 0.5
            cells = [
                (x, y + i * ch_h * 1.18, x + ch_h * 0.75, y + i * ch_h * 1.18 + ch_h)
                for i in range(len(text))
            ]
            y = cells[-1][3] + ch_h * 0.5
        else:
            if kind == "size_type":
                x, y = origin[0], origin[1] + ch_h * 1.55
            cells = [(x + i * step, y, x + i * step + cw, y + ch_h) for i in range(len(text))]
            x = cells[-1][2] + ch_h * 0.55
        for ch, cell in zip(text, cells, strict=True):
            _draw_char(surface, ch, cell, ink)
        rect = (
            min(c[0] for c in cells),
            min(c[1] for c in cells),
            max(c[2] for c in cells),
            max(c[3] for c in cells),
        )
        if kind == "check_digit" and box_check:
            rect = (rect[0] - pad, rect[1] - pad, rect[2] + pad, rect[3] + pad)
            t = max(1, round(ch_h * 0.07))
            cv2.rectangle(
                surface, (round(rect[0]), round(rect[1])), (round(rect[2]), round(rect[3])), ink, t
            )
            if vertical:
                y += pad
            else:
                x += pad
        truths.append(TextTruth(kind, text, _rect_quad(*rect)))  # type: ignore[arg-type]
        if kind != "size_type":
            code_rects.append(rect)
    truths.insert(0, TextTruth("container_code", code, _union_quad(code_rects)))
    return truths


def _paint_small_print(
    surface: NDArray[np.float32], rng: Rng, *, x: float, y: float, h: float, ink: BGR
) -> None:
    """The weight panel: numbers a container reader must not mistake for the container number."""
    gross = int(rng.choice([30480, 32500, 34000]))
    tare = int(rng.integers(2100, 4200))
    lines = [f"MAX.GROSS {gross} KG", f"TARE {tare} KG", f"NET {gross - tare} KG"]
    if rng.random() < 0.5:
        lines.append(f"CU.CAP {rng.uniform(30, 77):.1f} CU.M")
    for j, line in enumerate(lines):
        for i, ch in enumerate(line):
            if ch != " ":
                cell = (
                    x + i * h * 0.62,
                    y + j * h * 1.5,
                    x + i * h * 0.62 + h * 0.55,
                    y + j * h * 1.5 + h,
                )
                _draw_char(surface, ch, cell, ink)


def _paint_carrier(
    surface: NDArray[np.float32], rng: Rng, *, x: float, y: float, h: float, ink: BGR
) -> None:
    name = _CARRIERS[rng.integers(len(_CARRIERS))]
    for i, ch in enumerate(name):
        if ch != " ":
            _draw_char(surface, ch, (x + i * h * 0.75, y, x + i * h * 0.75 + h * 0.68, y + h), ink)


def _sky(rng: Rng) -> BGR:
    c = np.asarray((225, 195, 160), np.float32) * rng.uniform(0.8, 1.1) + rng.normal(0, 4, 3)
    return (int(min(c[0], 255)), int(min(c[1], 255)), int(min(c[2], 255)))


def _container_background(rng: Rng, w: int, h: int, view: ContainerView) -> NDArray[np.float32]:
    if view == "top":  # the lane seen from above: asphalt, lane marks, the truck's shadow
        scene = np.empty((h, w, 3), np.float32)
        scene[:] = _jitter(rng, (95, 98, 100), 8)
        scene += _noise(rng, scene.shape[:2], 7)[:, :, None]
        for y in rng.uniform(0.05, 0.95, 2) * h:
            _fill_rect(scene, (0, y, w, y + h * 0.012), (170, 205, 215))
        sy = rng.uniform(0.2, 0.35) * h
        _fill_rect(scene, (0, sy, w, sy + 0.6 * h), (55, 57, 60))
        return scene
    scene = _vgradient(h, w, _sky(rng), _jitter(rng, (200, 195, 190), 6))
    ground = int(h * rng.uniform(0.75, 0.92))
    scene[ground:] = _vgradient(h - ground, w, (120, 125, 125), (90, 92, 95))
    for x in rng.uniform(0, w, int(rng.integers(1, 4))):  # gantry legs and a beam
        _fill_rect(scene, (x, 0, x + w * 0.02, ground), (80, 90, 100))
    _fill_rect(scene, (0, h * 0.02, w, h * 0.06), (80, 90, 100))
    return scene


def _container_wall(
    rng: Rng, wmm: float, hmm: float, k: float, view: ContainerView
) -> tuple[NDArray[np.float32], BGR, BGR]:
    """A painted steel wall (BGR float) at ``k`` px/mm, the markings' colour and the body's."""
    body, ink = _PAINT[rng.integers(len(_PAINT))]
    body = _jitter(rng, body, 8)
    w, h = round(wmm * k), round(hmm * k)
    surface = np.empty((h, w, 3), np.float32)
    surface[:] = body
    grain = _noise(rng, (max(1, h // 4), max(1, w // 4)), 3)  # paint texture, coarse-grained
    surface += cv2.resize(grain, (w, h), interpolation=cv2.INTER_LINEAR)[:, :, None]
    rail = max(1, round(120 * k))
    dark = tuple(int(c * 0.7) for c in body)
    cv2.rectangle(surface, (0, 0), (w - 1, rail), dark, -1)
    cv2.rectangle(surface, (0, h - 1 - rail), (w - 1, h - 1), dark, -1)
    if view in ("back", "corner"):  # doors: locking bars, handles, hinges
        for xf in (0.12, 0.36, 0.64, 0.88):
            x = round(xf * w)
            cv2.rectangle(
                surface,
                (x - max(1, round(25 * k)), rail),
                (x + max(1, round(25 * k)), h - rail),
                (150, 150, 150),
                -1,
            )
            cv2.rectangle(
                surface,
                (x - round(60 * k), round(h * 0.55)),
                (x + round(60 * k), round(h * 0.6)),
                (90, 90, 90),
                -1,
            )
        cv2.line(surface, (w // 2, 0), (w // 2, h), (25, 25, 25), max(1, round(12 * k)))
    return surface, ink, body


def _fit(hom: NDArray[np.float64], quads: Sequence[Quad], w: int, h: int, margin: float):
    """Shift (and if need be shrink) a placement so every truth lies inside the frame."""

    def box(m: NDArray[np.float64]) -> NDArray[np.float32]:
        pts = np.vstack([_warp_quad(q, m) for q in quads])
        return np.concatenate([pts.min(axis=0), pts.max(axis=0)])

    x0, y0, x1, y1 = box(hom)
    s = min(1.0, (w - 2 * margin) / max(x1 - x0, 1.0), (h - 2 * margin) / max(y1 - y0, 1.0))
    if s < 1.0:
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        shrink = np.array([[s, 0, cx * (1 - s)], [0, s, cy * (1 - s)], [0, 0, 1]])
        hom = shrink @ hom
        x0, y0, x1, y1 = box(hom)
    dx = max(0.0, margin - x0) - max(0.0, x1 - (w - margin))
    dy = max(0.0, margin - y0) - max(0.0, y1 - (h - margin))
    return np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]]) @ hom


def _wear(
    surface: NDArray[np.float32], truths: Sequence[TextTruth], body: BGR, rng: Rng, amount: float
) -> None:
    """Paint chipped off the markings: sharp flecks of the body colour over the letters."""
    if amount <= 0:
        return
    for t in truths:
        x0, y0 = t.quad.min(axis=0)
        x1, y1 = t.quad.max(axis=0)
        size = min(x1 - x0, y1 - y0)
        for _ in range(int(amount * rng.uniform(3, 12) * max(1.0, (x1 - x0) / size))):
            c = (round(rng.uniform(x0, x1)), round(rng.uniform(y0, y1)))
            axes = (max(1, round(size * rng.uniform(0.02, 0.1))),) * 2
            color = _jitter(rng, body, 6)
            cv2.ellipse(surface, c, axes, rng.uniform(0, 180), 0, 360, color, -1)


def _faded(ink: BGR, body: BGR, rng: Rng, amount: float) -> BGR:
    """Old paint: the markings drift towards the body colour, lowering the contrast."""
    f = amount * rng.uniform(0.0, 0.45)
    return tuple(round(i * (1 - f) + b * f) for i, b in zip(ink, body, strict=True))  # type: ignore[return-value]


def _paint_containers(
    marks: list[ContainerMarking],
    view: ContainerView,
    k: float,
    ch_mm: float,
    rng: Rng,
    *,
    wear: float,
    wear_rng: Rng,
) -> tuple[NDArray[np.float32], list[TextTruth]]:
    """The flat surface a view sees (BGR float, k px/mm) with its markings, and their truths."""
    h_mm = 2438.0 if view == "top" else float(_H_MM)
    truths: list[TextTruth] = []
    if view in ("back", "corner"):
        wall, ink, body = _container_wall(rng, 2438, h_mm, k, view)
        ink = _faded(ink, body, wear_rng, wear)
        m = marks[-1]
        if view == "back":
            truths += _paint_code(wall, m, (1360 * k, 300 * k), ch_mm * k, ink, vertical=False)
            _paint_small_print(wall, rng, x=200 * k, y=450 * k, h=55 * k, ink=ink)
        else:
            post = wall.shape[1] - round(180 * k)
            wall[:, post:] *= 0.8
            truths += _paint_code(wall, m, (post + 30 * k, 260 * k), ch_mm * k, ink, vertical=True)
            _paint_small_print(wall, rng, x=240 * k, y=500 * k, h=55 * k, ink=ink)
        _wear(wall, truths, body, wear_rng, wear)
        _corrugate(wall, 280 * k, vertical=True, depth=0.08)
        return wall, truths
    # side walls or roofs, seen over a stretch around the code(s): the whole box would be huge
    code_w = 9.5 * ch_mm
    half = max(3000.0, code_w + 1500)  # the stretch of each box in view
    if len(marks) == 1:
        region, ends = half * 1.7, [(-1e9, 1e9)]  # the end of one box, code near the end
        codes_at = [region - 300 - code_w]
    else:  # two 20-foot boxes, a 200 mm gap; each code near the gap
        region = 2 * half + 200
        ends = [(-1e9, half), (half + 200, 1e9)]
        codes_at = [half - 300 - code_w, half + 200 + 300]
    canvas = np.empty((round(h_mm * k), round(region * k), 3), np.float32)
    canvas[:] = 45.0  # the dark gap between boxes
    for (a, b), m, x in zip(ends, marks, codes_at, strict=True):
        xa, xb = round(max(a, 0.0) * k), min(round(min(b, region) * k), canvas.shape[1])
        wall, ink, body = _container_wall(rng, (xb - xa) / k, h_mm, k, view)
        ink = _faded(ink, body, wear_rng, wear)
        if view == "side":
            _paint_carrier(wall, rng, x=300 * k, y=1000 * k, h=380 * k, ink=ink)
        canvas[:, xa:xb] = wall[:, : xb - xa]
        y = 250.0 if view == "side" else 900.0
        boxed = True if view == "side" else bool(rng.random() < 0.5)
        painted = _paint_code(
            canvas, m, (x * k, y * k), ch_mm * k, ink, vertical=False,
            size_type=view == "side", box_check=boxed,
        )  # fmt: skip
        _wear(canvas, painted, body, wear_rng, wear)
        truths += painted
    _corrugate(canvas, (280 if view == "side" else 230) * k, vertical=True, depth=0.1)
    return canvas, truths


# the character height seen in a 1080-line image, (hard, easy), by view and number of boxes
_CH_PX = {"side": (20, 62), "back": (20, 62), "corner": (16, 42), "top": (24, 64)}
_CH_MM = {"side": 100.0, "back": 110.0, "corner": 100.0, "top": 300.0}


def render_container_view(
    containers: ContainerMarking | Sequence[ContainerMarking],
    view: ContainerView,
    seed: int,
    *,
    difficulty: float = 0.5,
    size: tuple[int, int] = CONTAINER_SCENE_SIZE,
    upside_down: bool = False,
) -> Render:
    """A gate camera's view of the containers on a truck, at ``size``.

    ``side``: the side wall, code at the top near the end, size-type below it; two markings mean
    two 20-foot boxes, each code near the gap between them. ``back``: the doors of the last box,
    code on the right door, weights in small print. ``corner``: the code painted vertically down
    the rear corner post. ``top``: the roof(s) from above, code in large letters
    (``upside_down``: seen from the other side). Truths: ``container_code``, ``owner``,
    ``serial``, ``check_digit``, and ``size_type`` where painted.
    """
    marks = [containers] if isinstance(containers, ContainerMarking) else list(containers)
    if not 1 <= len(marks) <= 2:
        raise ValueError("a truck carries one or two containers")
    if view not in _CH_PX:
        raise ValueError(f"unknown container view {view!r}")
    d = float(np.clip(difficulty, 0.0, 1.0))
    r_scene, r_geo, r_dirt, r_cam, r_paint, r_wear = _rngs(seed, 6)
    w, h = size
    scene = _container_background(r_scene, w, h, view)
    hard, easy = _CH_PX[view]
    ch_px = r_geo.uniform(easy - (easy - hard) * d, easy - (easy - hard) * d * 0.4) * h / 1080
    k = ch_px / _CH_MM[view] * 1.1  # paint a little larger than seen; the warp shrinks it
    layer, truths = _paint_containers(
        marks, view, k, _CH_MM[view], r_paint, wear=d, wear_rng=r_wear
    )
    _dirt(layer, r_dirt, d, rust=True, scale=max(1.0, 10 * k))
    pts = np.vstack([t.quad for t in truths])
    anchor = ((pts[:, 0].min() + pts[:, 0].max()) / 2, (pts[:, 1].min() + pts[:, 1].max()) / 2)
    tilt = 3 + 8 * d if view == "top" else 5 + 35 * d
    hom = _homography(
        anchor,
        (w * r_geo.uniform(0.4, 0.6), h * r_geo.uniform(0.35, 0.6)),
        scale=1 / 1.1,
        yaw_deg=r_geo.uniform(-1, 1) * tilt,
        pitch_deg=r_geo.uniform(-1, 1) * (2 + 8 * d),
        roll_deg=(180.0 if upside_down else 0.0) + r_geo.normal(0, 0.5 + 2 * d),
        focal=w * r_geo.uniform(1.0, 1.6),
    )
    hom = _fit(hom, [t.quad for t in truths], w, h, margin=ch_px)
    if view != "top":  # the truck's chassis and wheels under the box
        lh, lw = layer.shape[:2]
        bottom = _warp_quad(_rect_quad(0, lh, lw, lh), hom)[:, 1].max()
        if bottom < h:
            _fill_rect(scene, (0, bottom - 5, w, bottom + h * 0.06), (35, 35, 35))
            for x in r_scene.uniform(0.05, 0.9, 3) * w:
                cv2.circle(scene, (int(x), int(bottom + h * 0.1)), int(h * 0.07), (25, 25, 25), -1)
    _composite(scene, layer, np.ones(layer.shape[:2], np.float32), hom)
    out = [TextTruth(t.kind, t.text, _warp_quad(t.quad, hom)) for t in truths]
    return Render(_camera(scene, r_cam, d), tuple(out), seed)
