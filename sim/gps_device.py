"""A simulated GPS receiver speaking NMEA 0183 (RMC, GGA, GSA) over a pty or loopback TCP.

The simulator world moves it with ``set_position``; it sends one epoch every
``1 / (rate_hz * speedup)`` real seconds, stamped with ``clock()`` (the world's UTC time, so a
fast simulation keeps GPS time and lane time in step). ``unplug()`` / ``plug()`` pull and
restore the cable; ``set_silent(True)`` keeps the port but stops talking.

    async with SimGps(transport="pty") as gps:
        gps.set_position(31.2304, 121.4737, hdop=0.9)
        settings = GpsSettings(port=gps.port)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import pynmea2

from sim.ptyport import PtyPort

KNOTS_PER_KMH = 1 / 1.852
_TCP_BUFFER = 64 * 1024


@dataclass(frozen=True)
class GpsState:
    """What the receiver believes: a fix (valid) or no fix, and its quality."""

    lat: float = 0.0
    lon: float = 0.0
    valid: bool = False
    hdop: float = 0.9
    satellites: int = 9
    quality: int = 1  # GGA fix quality when valid: 1 GPS, 2 DGPS, 4 RTK
    speed_kmh: float = 0.0
    course_deg: float = 0.0


def _dm(value: float, degree_digits: int) -> str:
    minutes_total = round(abs(value) * 60.0, 5)
    degrees = int(minutes_total // 60)
    minutes = minutes_total - degrees * 60
    return f"{degrees:0{degree_digits}d}{minutes:08.5f}"


def epoch_sentences(state: GpsState, when: float, talker: str = "GP") -> bytes:
    """The sentences a receiver sends for one epoch at ``when`` (seconds since the epoch)."""
    moment = dt.datetime.fromtimestamp(when, dt.UTC)
    hhmmss = moment.strftime("%H%M%S") + f".{moment.microsecond // 10000:02d}"
    ddmmyy = moment.strftime("%d%m%y")
    if state.valid:
        lat, ns = _dm(state.lat, 2), "N" if state.lat >= 0 else "S"
        lon, ew = _dm(state.lon, 3), "E" if state.lon >= 0 else "W"
        speed = f"{state.speed_kmh * KNOTS_PER_KMH:.3f}"
        course = f"{state.course_deg:.2f}"
        rmc = (hhmmss, "A", lat, ns, lon, ew, speed, course, ddmmyy, "", "", "A")
        gga = (
            hhmmss,
            lat,
            ns,
            lon,
            ew,
            str(state.quality),
            f"{state.satellites:02d}",
            f"{state.hdop:.2f}",
            "12.0",
            "M",
            "8.3",
            "M",
            "",
            "",
        )
        used = [f"{prn:02d}" for prn in range(1, min(state.satellites, 12) + 1)]
        gsa = ("A", "3", *used, *[""] * (12 - len(used)), "1.60", f"{state.hdop:.2f}", "1.20")
    else:
        rmc = (hhmmss, "V", "", "", "", "", "", "", ddmmyy, "", "", "N")
        gga = (hhmmss, "", "", "", "", "0", "00", "", "", "M", "", "M", "", "")
        gsa = ("A", "1", *[""] * 12, "", "", "")
    lines = [
        pynmea2.RMC(talker, "RMC", rmc).render(),
        pynmea2.GGA(talker, "GGA", gga).render(),
        pynmea2.GSA(talker, "GSA", gsa).render(),
    ]
    return "".join(f"{line}\r\n" for line in lines).encode("ascii")


class SimGps:
    """A GPS receiver on a pty (``port`` is its path) or on loopback TCP
    (``port`` is ``tcp://127.0.0.1:N``), ready for ``GpsSettings(port=...)``.

    ``rate_hz=None`` sends nothing by itself: tests call ``await emit()`` for each epoch.
    """

    def __init__(
        self,
        *,
        transport: Literal["pty", "tcp"] = "pty",
        rate_hz: float | None = 1.0,
        speedup: float = 1.0,
        clock: Callable[[], float] = time.time,
        talker: str = "GP",
        path: str | None = None,
    ) -> None:
        self.transport = transport
        self.rate_hz = rate_hz
        self.speedup = speedup
        self.clock = clock
        self.talker = talker
        self.state = GpsState()
        self.silent = False
        self.epochs_sent = 0
        self._pty = PtyPort(link=path) if transport == "pty" else None
        self._server: asyncio.Server | None = None
        self._tcp_port = 0
        self._clients: set[asyncio.StreamWriter] = set()
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> str:
        """What the driver opens: the pty path or ``tcp://127.0.0.1:N``."""
        if self._pty is not None:
            return self._pty.path
        return f"tcp://127.0.0.1:{self._tcp_port}"

    def set_position(
        self,
        lat: float,
        lon: float,
        valid: bool = True,
        hdop: float = 0.9,
        *,
        satellites: int = 9,
        quality: int = 1,
        speed_kmh: float = 0.0,
    ) -> None:
        """Where the receiver is; ``valid=False`` sends no-fix epochs (status V, quality 0)."""
        self.state = GpsState(lat, lon, valid, hdop, satellites, quality, speed_kmh)

    def set_silent(self, silent: bool) -> None:
        """Stop (or resume) talking while the port stays open: a hung receiver."""
        self.silent = silent

    async def start(self) -> None:
        """Plug in and start sending epochs (when ``rate_hz`` is set)."""
        await self.plug()
        if self.rate_hz is not None and self._task is None:
            self._task = asyncio.create_task(self._run(), name="sim-gps")

    async def stop(self) -> None:
        """Stop sending and remove the port."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.unplug()
        if self._pty is not None:
            self._pty.close()

    async def plug(self) -> None:
        """Connect the cable (again): the port reappears at the same address."""
        if self._pty is not None:
            self._pty.open()
        elif self._server is None:
            self._server = await asyncio.start_server(
                self._on_client, "127.0.0.1", self._tcp_port, reuse_address=True
            )
            self._tcp_port = self._server.sockets[0].getsockname()[1]

    async def unplug(self) -> None:
        """Pull the cable: the port disappears and open connections drop."""
        if self._pty is not None:
            self._pty.unplug()
            return
        if self._server is not None:
            self._server.close()
            for writer in list(self._clients):
                writer.close()
            self._clients.clear()
            await self._server.wait_closed()
            self._server = None

    async def emit(self) -> None:
        """Send one epoch now (unless silent)."""
        if not self.silent:
            self.write(epoch_sentences(self.state, self.clock(), self.talker))
            self.epochs_sent += 1

    def write(self, data: bytes) -> None:
        """Send raw bytes (a test's junk, a corrupted sentence) down the line."""
        if self._pty is not None:
            self._pty.write(data)
            return
        for writer in list(self._clients):
            if writer.is_closing():
                self._clients.discard(writer)
            elif writer.transport.get_write_buffer_size() < _TCP_BUFFER:
                writer.write(data)  # a host that stops reading loses data, as on a UART

    async def _run(self) -> None:
        assert self.rate_hz is not None
        period = 1.0 / (self.rate_hz * self.speedup)
        while True:
            await self.emit()
            await asyncio.sleep(period)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while await reader.read(1024):
                pass  # receivers ignore what the host says
        except OSError:
            pass
        finally:
            self._clients.discard(writer)
            writer.close()

    async def __aenter__(self) -> SimGps:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
