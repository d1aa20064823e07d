"""Opening a device's byte line: a serial port, a pyserial URL, or a TCP socket.

Every serial driver (weighbridge, e-seal reader, GPS, QR scanner) opens its line here. The
port may be a device (``/dev/ttyUSB0``, a pty), a pyserial URL such as
``socket://127.0.0.1:7001`` (a serial server on the network, or the simulator), or
``tcp://host:port`` (a receiver or a ser2net box streaming over TCP). pyserial's ``loop://``
is refused: it is no device, so tests use pty pairs or sockets. Drivers read
bytes and leave framing to their codecs.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Annotated, Generic, Literal, Protocol, TypeVar
from urllib.parse import urlsplit

import serial_asyncio_fast
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from drivers.codec import Rejected
from drivers.supervisor import Backoff, Device, Health, Supervisor

READ_SIZE = 4096  # bytes per read: frames are tens of bytes, so this drains any backlog
TCP_SCHEME = "tcp://"
# the URL schemes pyserial's serial_for_url has a handler for (serial/urlhandler/protocol_*.py);
# anything else with "://" would only fail when the port is opened
PYSERIAL_SCHEMES = frozenset({"alt", "cp2110", "hwgrep", "loop", "rfc2217", "socket", "spy"})
# ... but loop:// reads back what is written to it: never a device, and a lane configured with
# one would sit silent with its device reported up
NOT_A_DEVICE = frozenset({"loop"})
FIRST_REOPEN_S = 0.25  # a port that failed is tried again this soon, then less often
# a network port whose host is gone answers nothing: without a bound, a connect waits for the
# kernel's own (minutes), and the device is not reported down or tried again meanwhile
CONNECT_TIMEOUT_S = 5.0
# TCP keepalive on network lines: first probe after 10 s idle, then every 5 s, 3 unanswered
# probes and the line is dead (about 25 s)
KEEPALIVE = (10, 5, 3)

T = TypeVar("T")
R = TypeVar("R")


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
    if port[: len(TCP_SCHEME)].lower() != TCP_SCHEME:  # schemes are case-insensitive
        return None
    parts = urlsplit(port)
    if not parts.hostname or parts.port is None:
        raise ValueError(f"{port!r} is not tcp://host:port")
    return parts.hostname, parts.port


def check_port(port: str) -> str:
    """Validate a port setting: a device path, a pyserial URL, or ``tcp://host:port``.

    >>> check_port("socket://127.0.0.1:7001")
    'socket://127.0.0.1:7001'
    >>> check_port("sockt://127.0.0.1:7001")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: unknown URL scheme 'sockt': use tcp://host:port, a device path, or one of ...
    """
    if not port.strip():
        raise ValueError("port is empty")
    scheme, sep, _ = port.partition("://")
    if sep and scheme.lower() in NOT_A_DEVICE:
        raise ValueError(f"{scheme}:// is pyserial's loopback, not a device")
    if sep and scheme.lower() != "tcp" and scheme.lower() not in PYSERIAL_SCHEMES:
        known = ", ".join(f"{name}://" for name in sorted(PYSERIAL_SCHEMES - NOT_A_DEVICE))
        raise ValueError(
            f"unknown URL scheme {scheme!r}: use tcp://host:port, a device path, "
            f"or one of pyserial's {known}"
        )
    parse_tcp(port)
    return port


Port = Annotated[str, AfterValidator(check_port)]
"""A settings field holding a port: checked by ``check_port`` when the settings load."""


class SerialPortSettings(BaseModel):
    """Where a serial device is and how its line is framed."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    port: Port = Field(
        min_length=1,
        description="Serial device path (/dev/ttyUSB0, /dev/serial/by-id/...), a pyserial URL "
        "such as socket://127.0.0.1:7001, or tcp://host:port",
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


@contextlib.asynccontextmanager
async def open_line(
    port: str,
    baudrate: int = 9600,
    *,
    bytesize: int = 8,
    parity: str = "N",
    stopbits: int = 1,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """Open ``port`` and close it on exit; raises OSError when it cannot be opened (or, for a
    network port, does not answer within ``connect_timeout_s``).

    A serial port is opened by pyserial in an executor (a slow open never blocks the loop)
    and locked for this process: a second reader (a technician's ``device read`` while the
    daemon runs) is refused with a clear error instead of stealing bytes from it. Bytes it
    buffered before we opened it are dropped: they may be from before a gap (a cable pulled
    and plugged back), and a reading from before a gap must not arrive after it.
    """
    tcp = parse_tcp(port)
    writer: asyncio.StreamWriter
    # only a network port is bounded: a device path opens or fails at once, and one cut off
    # mid-open in its executor thread could stay open (and locked) behind our back
    network = tcp is not None or "://" in port
    try:
        async with asyncio.timeout(connect_timeout_s if network else None):
            if tcp is not None:
                reader, writer = await asyncio.open_connection(*tcp)
            else:
                reader, writer = await serial_asyncio_fast.open_serial_connection(
                    url=port,
                    baudrate=baudrate,
                    bytesize=bytesize,
                    parity=parity,
                    stopbits=stopbits,
                    exclusive=True,
                )
    except TimeoutError:
        raise OSError(f"{port}: no answer within {connect_timeout_s:g} s") from None
    try:
        if network:
            _keep_alive(writer.transport.get_extra_info("socket"))
        serial = writer.transport.get_extra_info("serial")
        # socket:// is carried on an asyncio socket, its pyserial port never opened: a new
        # connection holds nothing stale, and resetting that port would raise
        if serial is not None and serial.is_open:
            serial.reset_input_buffer()
        yield reader, writer
    finally:
        await _close(writer)


def _keep_alive(sock: socket.socket | None) -> None:
    """Probe an idle network line, so that a peer gone without a word (a serial server that
    lost power) fails the read within about 25 s (``KEEPALIVE``) instead of never: a scanner
    is silent between scans, and would otherwise stay "up" on a dead connection for good."""
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    idle, interval, count = KEEPALIVE
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if hasattr(socket, "TCP_KEEPIDLE"):  # Linux; elsewhere the system's own timings
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)


def open_serial(
    settings: SerialPortSettings,
) -> contextlib.AbstractAsyncContextManager[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """``open_line`` with the port and framing of ``settings``."""
    return open_line(
        settings.port,
        settings.baudrate,
        bytesize=settings.bytesize,
        parity=settings.parity,
        stopbits=settings.stopbits,
    )


async def _close(writer: asyncio.StreamWriter, timeout_s: float = 1.0) -> None:
    # a vanished port (a pulled USB adapter) fails its close in ways of its own: ignore them
    writer.close()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(timeout_s):
            await writer.wait_closed()


class LineDevice(Generic[T]):
    """An opened line whose readings are what ``decode`` makes of each chunk read (a
    supervisor ``Device``). ``on_raw`` sees every chunk as read (a technician's ``--raw``)."""

    def __init__(
        self,
        reader: AsyncReader,
        decode: Callable[[bytes], Iterable[T]],
        *,
        on_raw: Callable[[bytes], None] | None = None,
        read_size: int = 1024,
    ) -> None:
        self._reader = reader
        self._decode = decode
        self._on_raw = on_raw
        self._read_size = read_size

    async def readings(self) -> AsyncIterator[T]:
        """Decoded readings until the line fails (raises) or closes (returns)."""
        while True:
            chunk = await self._reader.read(self._read_size)
            if not chunk:
                return
            if self._on_raw is not None:
                self._on_raw(chunk)
            for item in self._decode(chunk):
                yield item


def port_supervisor(
    name: str,
    open_device: Callable[[], contextlib.AbstractAsyncContextManager[Device[R | Rejected]]],
    on_reading: Callable[[R], None],
    on_state: Callable[[Health], None],
    *,
    reconnect_max_s: float,
    silence_s: float | None = None,
    backoff: Backoff | None = None,
) -> Supervisor[R]:
    """A supervisor that keeps a device's port open: a failed port is reopened after
    ``FIRST_REOPEN_S``, then ever less often up to ``reconnect_max_s`` (unless ``backoff`` is
    given); ``silence_s`` as in ``Supervisor``."""
    return Supervisor(
        health=Health(name),
        open_device=open_device,
        on_reading=on_reading,
        on_state=on_state,
        backoff=backoff or Backoff(initial=FIRST_REOPEN_S, maximum=reconnect_max_s),
        silence_s=silence_s,
    )
