"""A real Mosquitto broker on a loopback port, for tests, benchmarks and `gatewayd sim`.

The broker is Debian's ``/usr/sbin/mosquitto`` with a generated config: loopback only,
persistence in the work folder (so queued QoS 1 messages survive a restart), optional TLS and
password file. ``stop`` ends it with SIGTERM (Mosquitto saves its state then), ``kill`` with
SIGKILL. Every broker started here is also stopped at interpreter exit, so none outlives the
process that started it.
"""

from __future__ import annotations

import atexit
import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from sim.net import free_port


def stop_process(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL if the process lingers ``timeout`` seconds; reaped either way."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


MOSQUITTO = os.environ.get("GATEWAYD_MOSQUITTO", "/usr/sbin/mosquitto")
_LIVE: set[Broker] = set()


def mosquitto_available() -> bool:
    """True when the broker binary is installed."""
    return Path(MOSQUITTO).is_file() or shutil.which("mosquitto") is not None


@dataclass(frozen=True)
class BrokerTls:
    """The broker's TLS listener: its certificate, and the CA clients must be signed by."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    require_certificate: bool = False


class Broker:
    """One Mosquitto process on 127.0.0.1; start and stop it as often as needed."""

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        persistence: bool = True,
        tls: BrokerTls | None = None,
        password_file: Path | None = None,
        max_queued_messages: int = 100_000,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.persistence = persistence
        self.tls = tls
        self.password_file = password_file
        self.max_queued_messages = max_queued_messages
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.config_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"

    @property
    def address(self) -> str:
        """HOST:PORT, as `gatewayd sim --broker` takes it."""
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True while the process lives."""
        return self.proc is not None and self.proc.poll() is None

    def _config(self) -> str:
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'false' if self.password_file else 'true'}",
            f"max_queued_messages {self.max_queued_messages}",
            "max_inflight_messages 20",
            "set_tcp_nodelay true",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if os.geteuid() == 0:
            lines.append(f"user {getpass.getuser()}")  # keep root's files readable to it
        if self.persistence:
            data = self.workdir / "data"
            data.mkdir(exist_ok=True)
            lines += ["persistence true", f"persistence_location {data}/", "autosave_interval 1"]
        if self.password_file is not None:
            lines.append(f"password_file {self.password_file}")
        if self.tls is not None:
            lines += [
                f"cafile {self.tls.ca_file}",
                f"certfile {self.tls.cert_file}",
                f"keyfile {self.tls.key_file}",
                f"require_certificate {'true' if self.tls.require_certificate else 'false'}",
            ]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker and wait until it accepts connections."""
        if self.running:
            return
        self.config_path.write_text(self._config(), encoding="utf-8")
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _LIVE.add(self)
        self.starts += 1
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited at start: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"mosquitto not listening after {timeout} s") from None
                time.sleep(0.01)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (the broker saves its persistent state), then SIGKILL if it lingers."""
        if self.proc is None:
            return
        stop_process(self.proc, timeout)
        self.proc = None
        _LIVE.discard(self)

    def kill(self) -> None:
        """SIGKILL: the broker dies without saving anything."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        self.proc = None
        _LIVE.discard(self)

    def log_tail(self, lines: int = 20) -> str:
        """The end of the broker's log."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def make_password_file(path: Path, users: dict[str, str]) -> Path:
    """A Mosquitto password file (hashed by mosquitto_passwd) for these users."""
    path.write_text("", encoding="utf-8")
    for user, password in users.items():
        subprocess.run(
            ["mosquitto_passwd", "-b", str(path), user, password],
            check=True,
            capture_output=True,
            timeout=10,
        )
    return path


@atexit.register
def _stop_all() -> None:
    for broker in list(_LIVE):
        broker.kill()
