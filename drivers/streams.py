"""Byte streams for line-oriented devices: a serial port, a pyserial URL, or a TCP socket.

A GPS may sit on a USB serial adapter or stream NMEA over TCP (a ser2net box or the receiver's
own server); a QR scanner sits on a serial port. The drivers read bytes and leave framing to
their codecs, so one opener serves them all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Protocol
from urllib.parse import urlsplit

TCP_SCHEME = "tcp://"


class AsyncReader(Protocol):
    """What a device reads from (an ``asyncio.StreamReader`` fits)."""

    async def read(self, n: int = -1, /) -> bytes:
        """Up to ``n`` bytes; b"" at end of stream."""
        ...


def parse_tcp(port: str) -> tuple[str, int] | None:
    """``(host, port)`` for a ``tcp://host:port`` address, None for a serial port.

    >>> parse_tcp("tcp://127.0.0.1:10110")
    ('127.0.0.1', 10110)
    >>> parse_tcp("/dev/ttyUSB0") is None
    True
    """
    if not port.startswith(TCP_SCHEME):
        return None
    parts = urlsplit(port)
    if not parts.hostname or parts.port is None:
        raise ValueError(f"{port!r} is not tcp://host:port")
    return parts.hostname, parts.port


def check_port(port: str) -> str:
    """Validate a port setting: a device path, a pyserial URL, or ``tcp://host:port``."""
    if not port.strip():
        raise ValueError("port is empty")
    parse_tcp(port)
    return port


@contextlib.asynccontextmanager
async def open_stream(port: str, baudrate: int) -> AsyncIterator[asyncio.StreamReader]:
    """Open ``port`` for reading and close it on exit.

    Bytes a serial port buffered before we opened it are dropped: they may be from before a
    gap (a cable pulled and plugged back), and a reading from before a gap must not arrive
    after it.
    """
    tcp = parse_tcp(port)
    writer: asyncio.StreamWriter
    if tcp is not None:
        reader, writer = await asyncio.open_connection(*tcp)
    else:
        import serial_asyncio_fast

        # the port is opened in an executor by the library, so a slow open never blocks the loop
        reader, writer = await serial_asyncio_fast.open_serial_connection(
            url=port, baudrate=baudrate
        )
        serial = writer.transport.get_extra_info("serial")
        if serial is not None:
            serial.reset_input_buffer()
    try:
        yield reader
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)
