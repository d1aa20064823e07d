"""QR codes from camera frames: real photos, and release notes on a phone held at an angle."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drivers.qr import Deduplicator, decode_frame, decode_frame_async
from drivers.release_note import ReleaseNote, decode, encode, public_key_b64, public_keys
from sim.qr_render import Shot, phone_screen, photograph, render_phone_qr, render_qr

CENTRAL = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
KEYS = public_keys([public_key_b64(CENTRAL)])
PHOTO_FLOOR = 33  # of 35; zxing's own blackbox expects 17/20 on qrcode-1 at 0 degrees
RENDERS = 30
RENDER_FLOOR = 26  # hand-held up to 40 degrees off, with glare, moire, blur and JPEG


def _note(i: int) -> ReleaseNote:
    boxes = ("MSCU1234566", "TGHU7654320")[: i % 3]
    return ReleaseNote(f"RN-2024-{i:06d}", "沪A12345", boxes, 1_700_000_000, 1_700_086_400)


def test_real_photos_decode_to_their_expected_payloads(shared_data: Path) -> None:
    photos = sorted((shared_data / "qr").glob("*.png"))
    assert len(photos) == 35
    decoded = 0
    for photo in photos:
        expected = photo.with_suffix(".txt").read_bytes().decode("utf-8")
        frame = cv2.imread(str(photo), cv2.IMREAD_COLOR)
        scans = decode_frame(frame)
        assert all(s.source == "camera" for s in scans)
        # a code that is read is read right: no other text comes out of these photos
        assert all(s.payload == expected for s in scans), (photo.name, scans)
        decoded += bool(scans)
    print(f"real QR photos decoded: {decoded}/{len(photos)}")
    assert decoded >= PHOTO_FLOOR


def test_release_notes_on_a_phone_at_an_angle() -> None:
    decoded = 0
    for i in range(RENDERS):
        payload = encode(_note(i), CENTRAL)
        frame, _shot = render_phone_qr(payload, random.Random(i), max_angle_deg=40.0)
        scans = decode_frame(frame)
        assert [s.payload for s in scans] in ([], [payload])
        if scans:
            assert decode(scans[0].payload, KEYS) == _note(i)
            decoded += 1
    print(f"rendered phone notes decoded: {decoded}/{RENDERS}")
    assert decoded >= RENDER_FLOOR


def test_a_straight_on_phone_always_decodes() -> None:
    payload = encode(_note(7), CENTRAL)
    for dark_mode in (False, True):
        phone = phone_screen(render_qr(payload), dark_mode=dark_mode)
        frame = photograph(phone, Shot(), rng=random.Random(0))
        assert [s.payload for s in decode_frame(frame)] == [payload]


def test_a_frame_without_a_code_gives_nothing() -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    assert decode_frame(noise) == []
    assert decode_frame(np.zeros((480, 640), np.uint8)) == []


def test_the_same_phone_over_many_frames_is_one_scan() -> None:
    payload = encode(_note(3), CENTRAL)
    dedup = Deduplicator(window_s=10.0)
    accepted = []
    for frame_no in range(6):  # ~5 frames a second while the driver holds the phone up
        frame, _ = render_phone_qr(payload, random.Random(100 + frame_no), max_angle_deg=20)
        for scan in decode_frame(frame):
            if dedup.accept(scan.payload, now=1000.0 + frame_no * 0.2):
                accepted.append(scan.payload)
    assert accepted == [payload]


class _CountingExecutor(ThreadPoolExecutor):
    submitted = 0

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


async def test_decoding_runs_on_the_executor_given() -> None:
    payload = encode(_note(5), CENTRAL)
    frame = photograph(phone_screen(render_qr(payload)), Shot(), rng=random.Random(1))
    with _CountingExecutor(max_workers=1) as pool:
        scans = await decode_frame_async(frame, pool)
    assert [s.payload for s in scans] == [payload]
    assert pool.submitted == 1


def test_renders_are_reproducible() -> None:
    payload = encode(_note(1), CENTRAL)
    a, _ = render_phone_qr(payload, random.Random(5), max_angle_deg=25)
    b, _ = render_phone_qr(payload, random.Random(5), max_angle_deg=25)
    assert np.array_equal(a, b)
