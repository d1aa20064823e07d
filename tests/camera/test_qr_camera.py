"""A release note held up to a camera: decoded from the camera's frames, in a thread."""

from __future__ import annotations

import asyncio
import multiprocessing
from pathlib import Path

import cv2

from drivers.camera import CameraSettings
from gatewayd.cameras import CameraSet, QrCameraSource, Recognition
from gatewayd.events import Event, QrScanned
from sim.camera_server import MjpegServer, encode_jpeg


async def test_a_qr_camera_reads_the_note_without_starting_the_ocr_workers(
    shared_data: Path,
) -> None:
    photo = cv2.imread(str(shared_data / "qr" / "qrcode-1_1.png"))
    expected = (shared_data / "qr" / "qrcode-1_1.txt").read_text(encoding="utf-8")
    events: asyncio.Queue[Event] = asyncio.Queue()
    children = set(multiprocessing.active_children())
    async with MjpegServer(views=["gate"], fps=5.0) as server:
        server.show("gate", encode_jpeg(photo, 90))
        cameras = CameraSet([CameraSettings(name="gate", url=server.url("gate"), burst_frames=1)])
        recognition = Recognition(workers=1, evidence=None)
        source = QrCameraSource("qr-camera", "qr", cameras, ["gate"], recognition, period_s=0.1)
        task = asyncio.create_task(source.run(events.put_nowait))
        try:
            await asyncio.sleep(0.5)  # the camera is open and has a frame
            source.trigger("pass-1")
            async with asyncio.timeout(10):
                while not isinstance(event := await events.get(), QrScanned):
                    pass
            assert event == QrScanned(expected, "pass-1")  # decoded from that pass's frames
            started = set(multiprocessing.active_children()) - children
            assert not started, "a QR camera started the OCR worker processes"
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
