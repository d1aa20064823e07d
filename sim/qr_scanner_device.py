"""A simulated fixed QR scanner in line mode on a pty: each scan is the payload and a CR LF.

with SimQrScanner() as scanner:
    settings = QrScannerSettings(port=scanner.port)
    scanner.scan(payload)
"""

from __future__ import annotations

from sim.ptyport import PtyPort


class SimQrScanner:
    """A scanner whose serial line is ``port``; ``scan(payload)`` sends one read code.

    Plug it in (``with`` or ``plug()``) inside a running event loop: the port reads the
    host's side of the line on that loop.
    """

    def __init__(self, *, terminator: bytes = b"\r\n", path: str | None = None) -> None:
        self.terminator = terminator
        self._pty = PtyPort(link=path)
        self.scans_sent = 0

    @property
    def port(self) -> str:
        """The path the driver opens."""
        return self._pty.path

    @property
    def plugged(self) -> bool:
        """True while the port exists."""
        return self._pty.plugged

    def scan(self, payload: str) -> None:
        """The scanner read a code: send its text and the line terminator."""
        self._pty.write(payload.encode("utf-8") + self.terminator)
        self.scans_sent += 1

    def write(self, data: bytes) -> None:
        """Send raw bytes (line noise, a half line) down the line."""
        self._pty.write(data)

    def plug(self) -> None:
        """Connect the cable (again)."""
        self._pty.open()

    def unplug(self) -> None:
        """Pull the cable: the port disappears until ``plug()``."""
        self._pty.unplug()

    def close(self) -> None:
        """Remove the port for good."""
        self._pty.close()

    def __enter__(self) -> SimQrScanner:
        self.plug()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
