"""Start a lane on its real devices from a config."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from drivers.modbus_io import RelayIO
from gatewayd.config import LaneConfig
from gatewayd.daemon import Lane, LaneLink
from gatewayd.sources import ReadingSource

log = logging.getLogger(__name__)


def build_sources(config: LaneConfig) -> list[ReadingSource]:
    """The reading sources the config names; refuses kinds that need the simulator."""
    sources: list[ReadingSource] = []
    for kind, device in config.devices:
        if device is None:
            continue
        if device.kind == "sim":
            raise ValueError(
                f"devices.{kind}: kind 'sim' exists only under `gatewayd sim`; "
                "configure the real device"
            )
    return sources


def build_link(config: LaneConfig) -> LaneLink | None:
    """The central link the config's [mqtt] section asks for, if any."""
    if config.mqtt is None:
        return None
    from gatewayd.link import CentralLink

    return CentralLink(config)


async def run_lane(config: LaneConfig) -> None:
    """Run until SIGINT or SIGTERM."""
    lane = Lane(config, RelayIO(config.relay), build_sources(config), link=build_link(config))
    task = asyncio.create_task(lane.run(), name="lane")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    log.info("lane %s up", config.lane.id)
    with contextlib.suppress(asyncio.CancelledError):
        await task
