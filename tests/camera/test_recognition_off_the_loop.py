"""The lane's camera path (MJPEG capture, bursts, OCR, fusion, evidence) on real photos, with
the event loop in asyncio debug mode: no callback may hold it for more than 50 ms."""

from __future__ import annotations

import asyncio
import csv
import gc
import logging
from pathlib import Path

import pytest

from drivers.camera import CameraSettings
from gatewayd.cameras import CameraSet, ContainerCameraSource, PlateCameraSource, Recognition
from gatewayd.events import ContainersRead, Event, PlateRead
from recognition.evidence import EvidenceStore
from sim.camera_server import MjpegServer

PASSES = 4


def labelled(folder: Path, column: str, prefix: str) -> list[tuple[bytes, str]]:
    with (folder / "labels.csv").open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["file"].startswith(prefix)]
    return [((folder / r["file"]).read_bytes(), r[column]) for r in rows[:PASSES]]


@pytest.mark.slow
def test_reading_real_photos_never_holds_the_event_loop_over_50_ms(
    shared_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scenes = labelled(shared_data / "plates", "plate_text", "scenes/")
    boxes = labelled(shared_data / "containers", "container_number", "images/")

    async def run() -> list[Event]:
        asyncio.get_running_loop().slow_callback_duration = 0.05
        events: list[Event] = []
        arrived = asyncio.Event()

        def emit(event: Event) -> None:
            events.append(event)
            arrived.set()

        async with MjpegServer(views=["front", "side"], fps=5.0) as server:
            server.show("front", scenes[0][0])
            server.show("side", boxes[0][0])
            cameras = CameraSet(
                [
                    CameraSettings(name=v, url=server.url(v), burst_frames=2, burst_interval_s=0.1)
                    for v in ("front", "side")
                ]
            )
            recognition = Recognition(
                workers=1, evidence=EvidenceStore(tmp_path / "evidence", 10_000_000)
            )
            plate = PlateCameraSource(
                "plate-camera", "plate", cameras, ["front"], recognition, min_confidence=0.5
            )
            boxes_source = ContainerCameraSource(
                "container-camera", "containers", cameras, ["side"], recognition
            )
            async with asyncio.TaskGroup() as tg:
                runs = [tg.create_task(s.run(emit)) for s in (plate, boxes_source)]
                async with recognition.use():  # the models are loaded once both sources hold them
                    for i, ((scene, _), (box, _)) in enumerate(zip(scenes, boxes, strict=True)):
                        await server.show_async("front", scene)
                        await server.show_async("side", box)
                        await asyncio.sleep(0.5)  # the newest frame is the truck's
                        before = len(events)
                        plate.trigger(f"pass-{i}")
                        boxes_source.trigger(f"pass-{i}")
                        async with asyncio.timeout(60):
                            while len(events) < before + 2:
                                arrived.clear()
                                await arrived.wait()
                for task in runs:
                    task.cancel()
        return events

    gc.collect()
    gc.freeze()  # earlier tests' objects: a collection over them is the runner's pause
    try:
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            events = asyncio.run(run(), debug=True)
    finally:
        gc.unfreeze()
    slow = [r.getMessage() for r in caplog.records if "took" in r.getMessage()]
    assert slow == [], "a callback held the event loop while recognition ran"

    # and recognition did its work, on the photos' own labels
    plates = [e for e in events if isinstance(e, PlateRead)]
    containers = [e for e in events if isinstance(e, ContainersRead)]
    assert len(plates) == len(containers) == PASSES
    assert sum(p.text == label for p, (_, label) in zip(plates, scenes, strict=True)) >= 2
    read = [{c.number for c in e.containers} for e in containers]
    assert sum(label in got for got, (_, label) in zip(read, boxes, strict=True)) >= 2
