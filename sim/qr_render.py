"""Release-note QR codes as a camera sees them on a driver's phone held up at an angle.

``render_qr`` draws the code (zxing-cpp's own encoder); ``phone_screen`` puts it on a phone
(bezel, app bar, a few text lines, optional dark mode); ``photograph`` shows the phone to a
camera: perspective from a tilted hand, the screen's pixel grid beating against the sensor's
(moire), a reflection (glare), defocus, sensor noise and JPEG compression.
``render_phone_qr`` does all three with settings drawn from a seeded ``random.Random``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import cv2
import numpy as np
import zxingcpp

Image = np.ndarray  # uint8, grey (H, W) or BGR (H, W, 3)


def render_qr(payload: str, *, module_px: int = 6, ec_level: str = "M") -> Image:
    """The QR code of ``payload`` as a grey image, quiet zone included."""
    barcode = zxingcpp.create_barcode(payload, zxingcpp.BarcodeFormat.QRCode, ec_level=ec_level)
    return np.array(barcode.to_image(scale=module_px), dtype=np.uint8)


def phone_screen(qr: Image, *, dark_mode: bool = False, rng: random.Random | None = None) -> Image:
    """A phone (BGR) showing ``qr`` in an app: bezel, status bar, title and text lines."""
    rng = rng or random.Random(0)
    side = qr.shape[0]
    screen_w = int(side * 1.25)
    screen_h = int(screen_w * 2.05)
    paper = 24 if dark_mode else 250
    screen = np.full((screen_h, screen_w, 3), paper, np.uint8)
    bar = (int(screen_h * 0.09), (180, 110, 40))  # app bar, a blue of some customs app
    cv2.rectangle(screen, (0, 0), (screen_w, bar[0]), bar[1], -1)
    line_colour = (90, 90, 90) if not dark_mode else (200, 200, 200)
    y = bar[0] + int(screen_h * 0.05)
    for _ in range(3):
        width = int(screen_w * rng.uniform(0.4, 0.8))
        cv2.rectangle(screen, (20, y), (20 + width, y + 10), line_colour, -1)
        y += 26
    code = qr if not dark_mode else 255 - qr
    x0 = (screen_w - side) // 2
    y0 = y + 20
    screen[y0 : y0 + side, x0 : x0 + side] = cv2.cvtColor(code, cv2.COLOR_GRAY2BGR)
    bezel = max(12, screen_w // 18)
    phone = np.full((screen_h + 4 * bezel, screen_w + 2 * bezel, 3), 20, np.uint8)
    phone[2 * bezel : 2 * bezel + screen_h, bezel : bezel + screen_w] = screen
    return phone


@dataclass(frozen=True)
class Shot:
    """How the camera sees the phone."""

    yaw_deg: float = 0.0  # turned left/right
    pitch_deg: float = 0.0  # tilted towards/away from the camera
    roll_deg: float = 0.0  # rotated in the image plane
    fill: float = 1.0  # phone height / frame height (held close: it may overflow the frame)
    glare: float = 0.0  # peak brightness added by a reflection, 0..255
    moire: float = 0.0  # contrast of the screen's pixel grid, 0..1
    blur_sigma: float = 0.0
    noise_sigma: float = 0.0
    jpeg_quality: int = 90
    frame_size: tuple[int, int] = (1280, 720)  # width, height


def photograph(phone: Image, shot: Shot, *, rng: random.Random | None = None) -> Image:
    """The camera frame (BGR) of ``phone`` as ``shot`` describes it."""
    rng = rng or random.Random(0)
    width, height = shot.frame_size
    img = phone.astype(np.float32)
    if shot.moire > 0:
        # the screen's sub-pixel grid; resampling by the warp below turns it into moire fringes
        h, w = img.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        period = rng.uniform(2.2, 3.2)
        grid = 0.5 + 0.5 * np.cos(2 * math.pi * xx / period) * np.cos(2 * math.pi * yy / period)
        img *= (1 - shot.moire) + shot.moire * grid[..., None]
    corners = _project(phone.shape[1], phone.shape[0], shot, width=width, height=height, rng=rng)
    src = np.array(
        [[0, 0], [phone.shape[1], 0], [phone.shape[1], phone.shape[0]], [0, phone.shape[0]]],
        np.float32,
    )
    matrix = cv2.getPerspectiveTransform(src, corners)
    scene = _background(width, height, rng)
    warped = cv2.warpPerspective(img, matrix, (width, height), flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(
        np.ones(phone.shape[:2], np.float32), matrix, (width, height), flags=cv2.INTER_LINEAR
    )[..., None]
    frame = scene * (1 - mask) + warped * mask
    if shot.glare > 0:
        cx, cy = corners.mean(axis=0) + np.array([rng.uniform(-60, 60), rng.uniform(-80, 80)])
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        sx, sy = rng.uniform(60, 160), rng.uniform(40, 120)
        blob = np.exp(-(((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2))
        frame += shot.glare * blob[..., None] * mask
    if shot.blur_sigma > 0:
        frame = cv2.GaussianBlur(frame, (0, 0), shot.blur_sigma)
    if shot.noise_sigma > 0:
        noise_rng = np.random.default_rng(rng.getrandbits(32))
        frame += np.asarray(noise_rng.normal(0, shot.noise_sigma, frame.shape), np.float32)
    out = np.clip(frame, 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, shot.jpeg_quality])
    decoded = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    assert ok
    assert decoded is not None
    return np.asarray(decoded, np.uint8)


def random_shot(rng: random.Random, *, max_angle_deg: float = 40.0) -> Shot:
    """A plausible hand-held shot: tilted up to ``max_angle_deg``, with some of everything."""
    return Shot(
        yaw_deg=rng.uniform(-max_angle_deg, max_angle_deg),
        pitch_deg=rng.uniform(-max_angle_deg, max_angle_deg),
        roll_deg=rng.uniform(-25, 25),
        fill=rng.uniform(0.9, 1.3),
        glare=rng.uniform(0, 140),
        moire=rng.uniform(0.05, 0.3),
        blur_sigma=rng.uniform(0.3, 1.4),
        noise_sigma=rng.uniform(1, 6),
        jpeg_quality=rng.randint(55, 92),
    )


def render_phone_qr(
    payload: str, rng: random.Random, *, max_angle_deg: float = 40.0, module_px: int = 6
) -> tuple[Image, Shot]:
    """A camera frame of ``payload`` on a phone, and the shot it was taken with."""
    shot = random_shot(rng, max_angle_deg=max_angle_deg)
    phone = phone_screen(
        render_qr(payload, module_px=module_px), dark_mode=rng.random() < 0.2, rng=rng
    )
    return photograph(phone, shot, rng=rng), shot


def _project(
    w: int, h: int, shot: Shot, *, width: int, height: int, rng: random.Random
) -> np.ndarray:
    """Image corners of a w x h phone rotated in 3-D and seen by a pinhole camera."""
    yaw, pitch, roll = (math.radians(a) for a in (shot.yaw_deg, shot.pitch_deg, shot.roll_deg))
    ry = np.array(
        [[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]]
    )
    rx = np.array(
        [[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)], [0, math.sin(pitch), math.cos(pitch)]]
    )
    rz = np.array(
        [[math.cos(roll), -math.sin(roll), 0], [math.sin(roll), math.cos(roll), 0], [0, 0, 1]]
    )
    rotation = rz @ rx @ ry
    pts = np.array([[-w / 2, -h / 2, 0], [w / 2, -h / 2, 0], [w / 2, h / 2, 0], [-w / 2, h / 2, 0]])
    focal = 1.2 * width
    distance = focal * h / (shot.fill * height)  # the phone fills ``fill`` of the frame
    cam = pts @ rotation.T + np.array([0, 0, distance])
    centre = np.array([width / 2 + rng.uniform(-0.1, 0.1) * width, height / 2])
    projected = focal * cam[:, :2] / cam[:, 2:3] + centre
    return np.asarray(projected, np.float32)


def _background(width: int, height: int, rng: random.Random) -> np.ndarray:
    """A cab interior, roughly: a dim gradient with some blotches."""
    base = rng.uniform(40, 120)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    gradient = base + 40 * (xx / width) - 30 * (yy / height)
    scene = np.repeat(gradient[..., None], 3, axis=2)
    for _ in range(6):
        centre = (rng.randrange(width), rng.randrange(height))
        colour = tuple(rng.uniform(20, 200) for _ in range(3))
        cv2.circle(scene, centre, rng.randint(30, 200), colour, -1)
    return scene
