"""Opening a serial line for a driver: a device path or a pyserial URL, never blocking the loop.

The port may be a device (``/dev/ttyUSB0``, a pty) or a pyserial URL such as
``socket://127.0.0.1:7001`` (a serial server on the network, or the simulator). pyserial's
``loop://`` does not work with the asyncio serial package, so tests use pty pairs or sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

import serial_asyncio_fast
from pydantic import BaseModel, ConfigDict, Field

READ_SIZE = 4096  # bytes per read: frames are tens of bytes, so this drains any backlog


class SerialPortSettings(BaseModel):
    """Where a serial device is and how its line is framed."""

    model_config = ConfigDict(extra="forbid")

    port: str = Field(
        min_length=1,
        description="Serial device path (/dev/ttyUSB0, /dev/serial/by-id/...) or a pyserial URL "
        "such as socket://127.0.0.1:7001",
    )
    baudrate: int = Field(default=9600, gt=0, description="Line speed in bits per second")
    bytesize: Literal[7, 8] = Field(default=8, description="Data bits per character")
    parity: Literal["N", "E", "O"] = Field(default="N", description="Parity: none, even or odd")
    stopbits: Literal[1, 2] = Field(default=1, description="Stop bits per character")
    reconnect_max_s: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="Longest wait between attempts to reopen the port after it failed; keeps "
        "the device back within a few seconds of a cable being plugged in again",
    )


async def open_serial(
    settings: SerialPortSettings,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open the port (pyserial runs its blocking open in an executor); raises OSError.

    The port is locked for this process: a second reader (a technician's ``device read``
    while the daemon runs) is refused with a clear error instead of stealing bytes from it.
    """
    return await serial_asyncio_fast.open_serial_connection(
        url=settings.port,
        baudrate=settings.baudrate,
        bytesize=settings.bytesize,
        parity=settings.parity,
        stopbits=settings.stopbits,
        exclusive=True,
    )


async def close_serial(writer: asyncio.StreamWriter, timeout_s: float = 1.0) -> None:
    """Close a port, ignoring the errors of a port that is already gone."""
    writer.close()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(timeout_s):
            await writer.wait_closed()
