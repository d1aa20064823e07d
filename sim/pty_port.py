"""The device end of a simulated serial line: a pty pair behind a stable path.

The driver opens ``path`` (a symlink to the pty's slave side) exactly as it would open
/dev/ttyUSB0; the simulated device writes bytes into the master side. ``unplug()`` closes the
pair and removes the link, as pulling a USB adapter does (the driver's next read fails, its
reopen finds no port); ``plug()`` makes a fresh pair behind the same path.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import tty
from pathlib import Path


class PtyPort:
    """A pty pair whose slave is reachable at ``path``; writes never block the simulator.

    Bytes written while nobody reads pile up in the kernel's buffer until it is full, then
    are dropped, as a UART overruns: the device does not wait for its host.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        if path is None:
            self._tmpdir: tempfile.TemporaryDirectory[str] | None = tempfile.TemporaryDirectory(
                prefix="gatewayd-pty-"
            )
            path = Path(self._tmpdir.name) / "tty"
        else:
            self._tmpdir = None
        self.path = str(path)
        self._master: int | None = None
        self._slave: int | None = None
        self.dropped = 0  # bytes lost because the line was full or unplugged

    @property
    def plugged(self) -> bool:
        """True while the port exists."""
        return self._master is not None

    def plug(self) -> None:
        """Create the port (a new pty pair behind ``path``); a no-op when plugged."""
        if self._master is not None:
            return
        master, slave = os.openpty()
        # raw: no echo back into the master, no CR/LF translation, no line buffering
        tty.setraw(slave)
        os.set_blocking(master, False)
        link = Path(self.path)
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        link.symlink_to(os.ttyname(slave))
        # holding the slave open keeps the pair alive while the driver is away
        self._master, self._slave = master, slave

    def unplug(self) -> None:
        """Remove the port: the driver's reads fail, and it cannot reopen until ``plug()``."""
        with contextlib.suppress(FileNotFoundError):
            Path(self.path).unlink()
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None

    def write(self, data: bytes) -> int:
        """Send bytes to the host; returns how many went out (the rest are dropped)."""
        if self._master is None:
            self.dropped += len(data)
            return 0
        try:
            sent = os.write(self._master, data)
        except (BlockingIOError, OSError):
            sent = 0
        self.dropped += len(data) - sent
        return sent

    def read(self, limit: int = 4096) -> bytes:
        """Bytes the host sent to the device so far (b"" when none); never blocks."""
        if self._master is None:
            return b""
        try:
            return os.read(self._master, limit)
        except (BlockingIOError, OSError):
            return b""

    def close(self) -> None:
        """Unplug for good and remove the temporary folder."""
        self.unplug()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> PtyPort:
        self.plug()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
