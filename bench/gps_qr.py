"""Throughput of the GPS and QR codecs and the cost of decoding a camera frame.

    .venv/bin/python -m bench.gps_qr

Prints figures; asserts nothing. Reads the real NMEA logs and QR photos from ../shared/data.
"""

from __future__ import annotations

import random
import statistics
import time

import cv2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench import SHARED_DATA
from drivers.gps import GpsDecoder, strip_comments
from drivers.qr import ScannerLineDecoder, decode_frame
from drivers.release_note import ReleaseNote, encode
from sim.qr_render import render_phone_qr


def _best_of(runs: int, fn: object) -> float:
    assert callable(fn)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_gps() -> None:
    with (SHARED_DATA / "nmea" / "telit-he910.log").open("rb") as f:
        data = strip_comments(f)
    sentences = data.count(b"$")
    seconds = _best_of(5, lambda: GpsDecoder().replay(data))
    print(
        f"gps codec: {sentences / seconds:,.0f} sentences/s "
        f"({len(data) / seconds / 1e6:.2f} MB/s) on telit-he910.log"
    )


def bench_scanner() -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    lines = [
        encode(ReleaseNote(f"RN-{i}", "沪A12345", ("MSCU1234566",), 0, 1), key) for i in range(200)
    ]
    data = "\r\n".join(lines).encode() + b"\r\n"
    seconds = _best_of(5, lambda: ScannerLineDecoder().feed(data))
    print(f"qr scanner codec: {len(lines) / seconds:,.0f} lines/s ({len(lines[0])}-char notes)")


def bench_camera() -> None:
    photos = sorted((SHARED_DATA / "qr").glob("*.png"))
    frames = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in photos]
    times = [_best_of(3, lambda f=f: decode_frame(f)) * 1000 for f in frames]
    print(
        f"qr camera decode, {len(frames)} real photos (240x240 to 640x480): "
        f"median {statistics.median(times):.1f} ms, max {max(times):.1f} ms"
    )
    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    renders = [
        render_phone_qr(
            encode(ReleaseNote(f"RN-{i}", "沪A12345", (), 0, 1), key), random.Random(i)
        )[0]
        for i in range(20)
    ]
    times = [_best_of(3, lambda f=f: decode_frame(f)) * 1000 for f in renders]
    print(
        f"qr camera decode, {len(renders)} rendered 1280x720 phone frames: "
        f"median {statistics.median(times):.1f} ms, max {max(times):.1f} ms"
    )


if __name__ == "__main__":
    bench_gps()
    bench_scanner()
    bench_camera()
