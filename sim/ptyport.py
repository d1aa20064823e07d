"""The device end of a pty pair, behind a path that survives a pulled cable.

A simulated serial device holds the master side of a pty; the driver opens ``path``, a symlink
to the slave side, exactly as it would open ``/dev/ttyUSB0``. ``unplug()`` closes the pty (the
driver's reads fail at once, as when a USB adapter is pulled, and the path disappears);
``replug()`` makes a new pty behind the same path.

The simulator keeps its own descriptor on the slave open, so the master never reads EIO while
no driver is attached; whatever it writes meanwhile waits in the pty, and pyserial flushes it
when the driver opens the port (a real UART's receive buffer behaves the same way).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import tty
from collections.abc import Callable
from pathlib import Path


class PtyPort:
    """Master side of a pty pair with a stable path and cable controls.

    ``on_data`` receives what the driver writes. Call ``open()`` inside a running event loop.
    """

    def __init__(
        self, on_data: Callable[[bytes], None] | None = None, *, link: str | Path | None = None
    ) -> None:
        self.on_data = on_data
        self._own_dir: Path | None = None
        if link is None:
            self._own_dir = Path(tempfile.mkdtemp(prefix="gatewayd-pty-"))
            link = self._own_dir / "port"
        self.link = Path(link)
        self._master: int | None = None
        self._slave: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def path(self) -> str:
        """What the driver opens."""
        return str(self.link)

    @property
    def plugged(self) -> bool:
        """The pty exists and the path points at it."""
        return self._master is not None

    def open(self) -> None:
        """Create the pty and the path (the cable is plugged in)."""
        if self._master is not None:
            return
        self._loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no CR/LF translation before the driver configures it
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        tmp = self.link.with_name(self.link.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(os.ttyname(slave))
        tmp.replace(self.link)
        self._loop.add_reader(master, self._readable)

    def unplug(self) -> None:
        """Pull the cable: close the pty; the driver's port fails and the path disappears."""
        if self._master is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(self._master)
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        os.close(self._master)
        if self._slave is not None:
            os.close(self._slave)
        self._master = self._slave = None

    def replug(self) -> None:
        """Plug the cable back in: a fresh pty behind the same path."""
        self.open()

    def close(self) -> None:
        """Unplug for good and remove the temporary folder."""
        self.unplug()
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)

    def write(self, data: bytes) -> bool:
        """Send bytes to the driver; False if unplugged or the pty is full (bytes dropped)."""
        if self._master is None:
            return False
        try:
            sent = os.write(self._master, data)
        except (BlockingIOError, OSError):
            return False
        return sent == len(data)

    def _readable(self) -> None:
        if self._master is None:
            return
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError:
            return
        if data and self.on_data is not None:
            self.on_data(data)
