"""A simulated IP camera: MJPEG over HTTP (multipart/x-mixed-replace) on 127.0.0.1.

One path per camera view (``http://127.0.0.1:PORT/VIEW``). Every connected client receives the
view's current image again and again at the configured frame rate, the way a real camera streams
a static scene; ``show(view, image)`` swaps the image at any moment. ``GET /VIEW.jpg`` returns one
JPEG. The server can be stopped and started again on the same port, and ``freeze(view)`` keeps
connections open while sending nothing, so a lane's camera driver can be tested against a stream
that dies or stalls.

Only the stdlib serves HTTP; OpenCV encodes JPEG.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
from dataclasses import dataclass, field
from types import TracebackType

import cv2
import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)

BOUNDARY = "gatewaydframe"
_VIEW_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_MAX_REQUEST = 8192


def encode_jpeg(image: NDArray[np.uint8], quality: int = 85) -> bytes:
    """Encode a BGR (or grey) image as JPEG bytes."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("OpenCV could not encode the image as JPEG")
    return bytes(buf)


@dataclass
class _View:
    jpeg: bytes | None = None
    version: int = 0
    frozen: bool = False
    sent: int = 0  # parts sent to all clients


@dataclass
class MjpegServer:
    """Serves each camera view as an MJPEG stream on the loopback interface.

    Use as ``async with MjpegServer(views=["front"]) as srv:`` or ``await srv.start()`` /
    ``await srv.stop()``. ``port=0`` picks a free port on the first start; later starts reuse
    it, so a client's URL stays valid across a restart.
    """

    views: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0
    fps: float = 10.0
    jpeg_quality: int = 85

    def __post_init__(self) -> None:
        if not ipaddress.ip_address(self.host).is_loopback:
            raise ValueError(f"the simulated camera serves loopback only, not {self.host}")
        if self.fps <= 0:
            raise ValueError("fps must be positive")
        self._views: dict[str, _View] = {}
        for view in self.views:
            self._view(view)
        self._server: asyncio.Server | None = None
        self._stopping = asyncio.Event()
        self._clients: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0  # clients accepted since construction

    def _view(self, name: str) -> _View:
        if not _VIEW_RE.match(name):
            raise ValueError(f"view names use letters, digits, '_', '-', '.': {name!r}")
        return self._views.setdefault(name, _View())

    # --- what the simulator calls -------------------------------------------------------------

    def show(self, view: str, image: NDArray[np.uint8] | bytes) -> None:
        """Make ``image`` (BGR array, or JPEG bytes) the view's current picture.

        Encoding a 1920x1080 array takes tens of milliseconds; from the event loop prefer
        ``show_async``, or pass JPEG bytes.
        """
        jpeg = image if isinstance(image, bytes) else encode_jpeg(image, self.jpeg_quality)
        v = self._view(view)
        v.jpeg, v.version = jpeg, v.version + 1

    async def show_async(self, view: str, image: NDArray[np.uint8] | bytes) -> None:
        """``show`` with the JPEG encoding done in a worker thread."""
        if not isinstance(image, bytes):
            image = await asyncio.to_thread(encode_jpeg, image, self.jpeg_quality)
        self.show(view, image)

    def freeze(self, view: str, frozen: bool = True) -> None:
        """Keep the view's connections open but stop sending frames (a stalled camera)."""
        self._view(view).frozen = frozen

    def frames_sent(self, view: str) -> int:
        """How many frames the view has sent, over all clients."""
        return self._view(view).sent

    def url(self, view: str) -> str:
        """The stream URL of one view (the server must have been started once)."""
        if self.port == 0:
            raise RuntimeError("start the server first: the port is chosen on start")
        return f"http://{self.host}:{self.port}/{view}"

    @property
    def running(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._server is not None

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen (on the same port as before, after a restart)."""
        if self._server is not None:
            return
        self._stopping = asyncio.Event()
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("simulated cameras on http://%s:%d/", self.host, self.port)

    async def stop(self) -> None:
        """Stop listening and drop every client connection, as a camera losing power would."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        # Handlers end by themselves on this event and the aborted transport; cancelling them
        # instead trips a Python 3.11 asyncio callback that logs a spurious CancelledError.
        self._stopping.set()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> MjpegServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- HTTP ---------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass  # a client going away is normal for a camera
        except asyncio.LimitOverrunError:
            with contextlib.suppress(ConnectionError):
                await self._reply(writer, 431, "Request Header Fields Too Large")
        finally:
            self._clients.discard(task)
            self._writers.discard(writer)
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _MAX_REQUEST:
            await self._reply(writer, 431, "Request Header Fields Too Large")
            return
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(parts) != 3 or parts[0] not in ("GET", "HEAD"):
            await self._reply(writer, 405, "Method Not Allowed")
            return
        path = parts[1].split("?", 1)[0].strip("/")
        if path == "":
            names = "\n".join(sorted(self._views)) + "\n"
            await self._reply(writer, 200, "OK", names.encode(), "text/plain; charset=utf-8")
            return
        if path.endswith(".jpg") and path[:-4] in self._views:
            jpeg = self._views[path[:-4]].jpeg
            if jpeg is None:
                await self._reply(writer, 503, "Service Unavailable")
            else:
                await self._reply(writer, 200, "OK", jpeg, "image/jpeg")
            return
        if path not in self._views:
            await self._reply(writer, 404, "Not Found")
            return
        await self._stream(self._views[path], writer)

    async def _reply(
        self,
        writer: asyncio.StreamWriter,
        code: int,
        reason: str,
        body: bytes = b"",
        ctype: str = "text/plain",
    ) -> None:
        body = body or f"{code} {reason}\n".encode()
        writer.write(
            f"HTTP/1.0 {code} {reason}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()

    async def _stream(self, view: _View, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.0 200 OK\r\nCache-Control: no-cache\r\nPragma: no-cache\r\n"
            b"Connection: close\r\n"
            + f"Content-Type: multipart/x-mixed-replace; boundary={BOUNDARY}\r\n\r\n".encode()
        )
        await writer.drain()
        period = 1.0 / self.fps
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            # the camera's own frame clock: a stream paces itself in real time
            next_at = max(next_at + period, loop.time())
            jpeg = view.jpeg
            if jpeg is not None and not view.frozen:
                writer.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                    + jpeg
                    + b"\r\n"
                )
                await writer.drain()
                view.sent += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), max(0.0, next_at - loop.time()))
            if self._stopping.is_set():
                return
