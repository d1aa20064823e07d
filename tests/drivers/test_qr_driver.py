"""QR scanner driver against the simulated scanner on a real pty, under the supervisor."""

from __future__ import annotations

import asyncio
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drivers.codec import Rejected
from drivers.qr import QrScan, QrScannerSettings, open_qr_scanner, qr_scanner_supervisor
from drivers.release_note import ReleaseNote, encode
from sim.qr_scanner_device import SimQrScanner
from tests.drivers.serial_helpers import Recorder, running

CENTRAL = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
BEFORE = encode(ReleaseNote("RN-A", "沪A12345", (), 1_700_000_000, 1_700_086_400), CENTRAL)
AFTER = encode(ReleaseNote("RN-B", "沪B54321", (), 1_700_000_000, 1_700_086_400), CENTRAL)


async def test_driver_reads_scans_from_the_simulated_scanner() -> None:
    with SimQrScanner() as scanner:
        async with open_qr_scanner(QrScannerSettings(port=scanner.port)) as device:
            readings = device.readings()
            scanner.scan(BEFORE)
            assert await asyncio.wait_for(anext(readings), 2) == QrScan(BEFORE, "scanner")
            scanner.write(b"\x00\x13\xff\r\n")  # noise on the line
            scanner.scan("https://example.com/not-ours")
            got = [await asyncio.wait_for(anext(readings), 2) for _ in range(2)]
            assert isinstance(got[0], Rejected)
            assert got[1] == QrScan("https://example.com/not-ours", "scanner")


async def test_a_scan_cut_short_is_dropped_after_a_pause_not_glued_to_the_next() -> None:
    with SimQrScanner() as scanner:
        settings = QrScannerSettings(port=scanner.port, idle_gap_s=0.2)
        async with open_qr_scanner(settings) as device:
            got: asyncio.Queue[QrScan | Rejected] = asyncio.Queue()

            async def collect() -> None:
                async for reading in device.readings():
                    got.put_nowait(reading)

            reading = asyncio.create_task(collect())  # read as the lane does, all along
            scanner.write(BEFORE[:40].encode())  # the scanner lost power mid-line
            await asyncio.sleep(0.5)
            scanner.scan(AFTER)
            first, second = [await asyncio.wait_for(got.get(), 2) for _ in range(2)]
            reading.cancel()
            assert isinstance(first, Rejected)
            assert second == QrScan(AFTER, "scanner")


async def test_scanner_with_bare_lf_terminators() -> None:
    with SimQrScanner(terminator=b"\n") as scanner:
        async with open_qr_scanner(QrScannerSettings(port=scanner.port)) as device:
            scanner.scan(AFTER)
            assert await asyncio.wait_for(anext(device.readings()), 2) == QrScan(AFTER, "scanner")


async def test_pulled_cable_is_recovered_and_no_half_line_crosses_the_gap() -> None:
    rec: Recorder[QrScan] = Recorder(maxsize=1000)
    with SimQrScanner() as scanner:
        sup = qr_scanner_supervisor(
            QrScannerSettings(port=scanner.port), rec.on_reading, on_state=rec.on_state
        )
        async with running(sup):
            await rec.wait_state("up")
            scanner.scan(BEFORE)
            assert (await asyncio.wait_for(rec.readings.get(), 2)).payload == BEFORE

            scanner.write(BEFORE[:40].encode())  # a scan cut off by the pulled cable
            await asyncio.sleep(0.1)
            scanner.unplug()
            await rec.wait_state("down")
            await asyncio.sleep(1.0)

            scanner.plug()
            plugged_at = time.monotonic()
            await rec.wait_state("up", limit_s=10)
            assert time.monotonic() - plugged_at < 5.0
            scanner.scan(AFTER)
            scan = await asyncio.wait_for(rec.readings.get(), 2)
            assert scan == QrScan(AFTER, "scanner")  # not the old half line glued to it
            assert rec.readings.empty()
            assert sup.health.accepted == 2


async def test_raw_bytes_are_shown_as_read() -> None:
    raw: list[bytes] = []
    with SimQrScanner() as scanner:
        async with open_qr_scanner(QrScannerSettings(port=scanner.port), on_raw=raw.append) as dev:
            scanner.scan(AFTER)
            await asyncio.wait_for(anext(dev.readings()), 2)
    assert b"".join(raw) == AFTER.encode() + b"\r\n"
