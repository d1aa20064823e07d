"""Start a lane on its real devices from a config."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Mapping
from typing import cast

from drivers.eseal import EsealReader
from drivers.modbus_io import RelayIO
from drivers.weighbridge import Weighbridge
from gatewayd.cameras import (
    CameraSet,
    ContainerCameraSource,
    PlateCameraSource,
    QrCameraSource,
    Recognition,
)
from gatewayd.config import (
    CameraDevice,
    EsealDevice,
    GpsDevice,
    LaneConfig,
    QrScannerDevice,
    SimDeviceConfig,
    WeighbridgeDevice,
)
from gatewayd.daemon import Lane, LaneLink
from gatewayd.devices import EsealSource, GpsSource, QrScannerSource, WeighbridgeSource
from gatewayd.judge import ReadingKind
from gatewayd.sources import ReadingSource
from recognition.evidence import EvidenceStore

log = logging.getLogger(__name__)


def build_sources(
    config: LaneConfig, simulated: Mapping[ReadingKind, ReadingSource] | None = None
) -> list[ReadingSource]:
    """The reading sources the config names.

    A device of kind ``sim`` takes its source from ``simulated`` (given only by
    ``gatewayd sim``); a field lane refuses it.
    """
    sources: list[ReadingSource] = []
    cameras: CameraSet | None = None
    recognition: Recognition | None = None
    for name, device in config.devices:
        kind = cast(ReadingKind, name)
        match device:
            case None:
                continue
            case SimDeviceConfig():
                if simulated is None or kind not in simulated:
                    raise ValueError(
                        f"devices.{kind}: kind 'sim' exists only under `gatewayd sim`; "
                        "configure the real device"
                    )
                sources.append(simulated[kind])
            case WeighbridgeDevice():
                sources.append(
                    WeighbridgeSource(
                        Weighbridge(device),
                        name=device.name,
                        min_vehicle_kg=device.min_vehicle_kg,
                    )
                )
            case EsealDevice():
                sources.append(EsealSource(EsealReader(device), name=device.name))
            case GpsDevice():
                sources.append(GpsSource(device, name=device.name, clock=time.time))
            case QrScannerDevice():
                sources.append(QrScannerSource(device, name=device.name))
            case CameraDevice():
                if cameras is None or recognition is None:
                    cameras = CameraSet(config.cameras)
                    recognition = Recognition(
                        workers=config.recognition.workers,
                        evidence=EvidenceStore.from_settings(config.evidence)
                        if config.evidence
                        else None,
                    )
                source_name = device.name or f"{kind}-camera"
                args = (source_name, kind, cameras, device.views, recognition)
                if kind == "plate":
                    min_confidence = config.decision.min_confidence
                    sources.append(PlateCameraSource(*args, min_confidence=min_confidence))
                elif kind == "containers":
                    sources.append(ContainerCameraSource(*args))
                elif kind == "qr":
                    sources.append(QrCameraSource(*args))
    return sources


def build_link(config: LaneConfig) -> LaneLink | None:
    """The central link the config's [mqtt] section asks for, if any."""
    if config.mqtt is None:
        # Nothing prunes or alerts on the outbox without a link: say so once, at start.
        log.warning(
            "lane %s has no [mqtt] section and works alone: passes and alerts stay in its "
            "ledger's outbox, unsent and unpruned, until a central link is configured",
            config.lane.id,
        )
        return None
    from gatewayd.link import CentralLink

    return CentralLink(config)


async def run_lane(config: LaneConfig) -> None:
    """Run until SIGINT or SIGTERM."""
    lane = Lane(config, RelayIO(config.relay), build_sources(config), link=build_link(config))
    task = asyncio.create_task(lane.run(), name="lane")
    stopping: asyncio.Task[None] | None = None

    async def stop() -> None:
        await lane.stop()
        task.cancel()

    def on_signal() -> None:
        nonlocal stopping
        if stopping is None:  # the event in hand is finished first (Lane.stop)
            log.info("stopping: finishing the event in hand")
            stopping = asyncio.create_task(stop(), name="stop")
        else:  # asked again: at once
            task.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    log.info("lane %s up", config.lane.id)
    with contextlib.suppress(asyncio.CancelledError):
        await task
