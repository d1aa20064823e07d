"""Camera driver: OpenCV capture in a thread that keeps only the newest frame.

Sources, chosen by the form of ``url``:

- ``rtsp://`` / ``rtsps://``: an IP camera's RTSP stream (FFmpeg);
- ``http://`` / ``https://``: an MJPEG stream (multipart/x-mixed-replace, FFmpeg);
- ``/dev/videoN``: a USB or CSI camera (V4L2);
- a path to a video file, or to a folder of images (replayed in name order): for replaying
  recorded passes on a bench or in the simulator.

A capture thread reads frames as fast as the source gives them and keeps only the newest one,
so a lane never works on a backlog. When the stream dies or stalls the thread marks the camera
down, waits a capped exponential backoff with jitter and opens it again. The lane asks for
frames with ``await camera.burst()``: the next few distinct frames captured after the call,
waited for without blocking the event loop.

Frames are shared between consumers, so their pixel arrays are read-only: copy before drawing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from drivers.images import BadImage, check_size, read_image
from drivers.images import decode as decode_image
from drivers.supervisor import Backoff, DriverError, Health, State

log = logging.getLogger(__name__)

# OpenCV and FFmpeg print a line to stderr on every failed open, which a camera that is down
# retries for hours; our own log says it once per change. Quiet them unless the operator has
# asked for their output (the FFmpeg level is read when its backend first loads).
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
if "OPENCV_LOG_LEVEL" not in os.environ:
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

Image = NDArray[np.uint8]  # BGR, as OpenCV decodes
SourceKind = Literal["rtsp", "http", "device", "file", "folder"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
_DEVICE_RE = re.compile(r"^/dev/video\d+$")
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class CameraTimeout(DriverError):
    """No fresh frame arrived in time (the camera is down, stalled, or closed)."""


def source_kind(url: str) -> SourceKind:
    """Which kind of source a camera URL names.

    >>> source_kind("rtsp://10.0.0.5:554/stream1"), source_kind("http://cam/video.mjpg")
    ('rtsp', 'http')
    >>> source_kind("/dev/video0"), source_kind("/data/pass-0001.mp4")
    ('device', 'file')
    """
    m = _SCHEME_RE.match(url)
    if m:
        scheme = m.group(1).lower()
        if scheme in ("rtsp", "rtsps"):
            return "rtsp"
        if scheme in ("http", "https"):
            return "http"
        raise ValueError(
            f"unsupported camera URL scheme {scheme!r}: use rtsp://, http(s)://, "
            "/dev/videoN, a video file or a folder of images"
        )
    if _DEVICE_RE.match(url):
        return "device"
    return "folder" if Path(url).is_dir() else "file"


def redact_url(url: str) -> str:
    """The URL with any password replaced, fit for logs and status output.

    >>> redact_url("rtsp://admin:s3cret@10.0.0.5:554/Streaming/Channels/101")
    'rtsp://admin:***@10.0.0.5:554/Streaming/Channels/101'
    >>> redact_url("/dev/video0")
    '/dev/video0'
    """
    if not _SCHEME_RE.match(url):
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]  # as written, even a port that is no number
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


class CameraSettings(BaseModel):
    """One camera view of a lane (front plate, container side, top, ...)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(
        pattern=r"^[A-Za-z0-9_.-]+$",
        max_length=64,
        description="View name used in logs, evidence and `gatewayctl camera snapshot VIEW`.",
    )
    url: str = Field(
        min_length=1,
        description="rtsp://..., http(s)://... (MJPEG), /dev/videoN, a video file or a folder "
        "of images (replayed in name order). Credentials in the URL are redacted in logs.",
    )
    burst_frames: int = Field(
        default=5, ge=1, le=50, description="Frames taken per burst when a truck arrives."
    )
    burst_interval_s: float = Field(
        default=0.2,
        ge=0.0,
        le=10.0,
        description="Least capture-time gap between frames of one burst (0: consecutive frames).",
    )
    burst_timeout_s: float = Field(
        default=5.0,
        gt=0.0,
        le=120.0,
        description="A burst returns the frames it has after this long.",
    )
    stall_timeout_s: float = Field(
        default=5.0,
        gt=0.0,
        le=120.0,
        description="A stream that delivers no frame for this long is down and is reopened.",
    )
    open_timeout_s: float = Field(
        default=10.0, gt=0.0, le=120.0, description="How long opening a network stream may take."
    )
    backoff_initial_s: float = Field(
        default=0.5, gt=0.0, le=60.0, description="First wait before reopening a failed camera."
    )
    backoff_max_s: float = Field(
        default=30.0, gt=0.0, le=600.0, description="Longest wait between reopening attempts."
    )
    replay_fps: float | None = Field(
        default=None,
        gt=0.0,
        le=240.0,
        description="Pace of a replayed file or folder; default: the file's own rate, "
        "5 frames/s for a folder. Ignored for live sources.",
    )
    replay_loop: bool = Field(
        default=True,
        description="Start a replayed file or folder again at its end (else the camera goes "
        "down for good at the end).",
    )
    width: int | None = Field(
        default=None, ge=16, le=8192, description="Requested width of a /dev/videoN camera."
    )
    height: int | None = Field(
        default=None, ge=16, le=8192, description="Requested height of a /dev/videoN camera."
    )

    @field_validator("url")
    @classmethod
    def _known_source(cls, url: str) -> str:
        m = _SCHEME_RE.match(url)
        if m and m.group(1).lower() not in ("rtsp", "rtsps", "http", "https"):
            source_kind(url)  # raises with the list of supported forms
        if m:
            try:
                urlsplit(url).port  # noqa: B018 - parsed for its check: 554a is no port
            except ValueError as exc:
                raise ValueError(f"{redact_url(url)}: {exc}") from None
        return url

    @model_validator(mode="after")
    def _consistent(self) -> CameraSettings:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be at least backoff_initial_s")
        if self.burst_timeout_s <= (self.burst_frames - 1) * self.burst_interval_s:
            raise ValueError(
                "burst_timeout_s must exceed (burst_frames - 1) * burst_interval_s, "
                "or no burst could ever complete"
            )
        return self


@dataclass(frozen=True, eq=False)
class Frame:
    """One captured picture and when the driver got it."""

    view: str
    seq: int  # 1, 2, ... per camera since start: distinct frames have distinct numbers
    captured_at: float  # the camera's clock (time.monotonic by default) when read
    wall_time: float  # time.time() at the same moment, for records and evidence names
    image: Image  # BGR, read-only (shared by every consumer)

    def jpeg(self, quality: int = 90) -> bytes:
        """The picture as JPEG bytes (blocks a few ms: call it in a worker thread)."""
        ok, buf = cv2.imencode(".jpg", self.image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise ValueError("could not encode frame as JPEG")
        return bytes(buf)


# --- sources: blocking readers used only by the capture thread --------------------------------


class _Source(Protocol):
    kind: SourceKind

    def read(self) -> Image | None:
        """The next picture; None at the end of a replay that does not loop; raises on failure."""
        ...

    def close(self) -> None: ...


class _Pacer:
    """Spaces replayed frames in real time; waits on the stop event so closing is prompt."""

    def __init__(self, fps: float, stop: threading.Event) -> None:
        self.period = 1.0 / fps
        self.stop = stop
        self.next_at: float | None = None

    def wait(self) -> None:
        now = time.monotonic()
        if self.next_at is not None and self.next_at > now:
            self.stop.wait(self.next_at - now)
        self.next_at = max(now, self.next_at or now) + self.period


class _CaptureSource:
    """A cv2.VideoCapture: network stream, device, or video file."""

    def __init__(
        self,
        settings: CameraSettings,
        kind: SourceKind,
        stop: threading.Event,
        on_reject: Callable[[], None],
    ):
        self.kind = kind
        self.settings = settings
        self.stop = stop
        self.on_reject = on_reject
        self.pacer: _Pacer | None = None
        self.frames_since_open = 0
        self.cap = self._open()
        if kind == "file":
            fps = settings.replay_fps or self.cap.get(cv2.CAP_PROP_FPS) or 5.0
            self.pacer = _Pacer(min(max(fps, 0.1), 240.0), stop)

    def _open(self) -> cv2.VideoCapture:
        s = self.settings
        if self.kind in ("rtsp", "http"):
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                int(s.open_timeout_s * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                int(s.stall_timeout_s * 1000),
            ]
            cap = cv2.VideoCapture(s.url, cv2.CAP_FFMPEG, params)
            if self.kind == "http" and cap.isOpened():
                # each MJPEG part as sent, undecoded: FFmpeg fills a part cut short with the
                # previous frame's pixels (the last truck's plate), so parts are checked whole
                # and decoded here (drivers.images)
                cap.set(cv2.CAP_PROP_FORMAT, -1)
        elif self.kind == "device":
            cap = cv2.VideoCapture(s.url, cv2.CAP_V4L2)
            if cap.isOpened():
                cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
                if s.width:
                    cap.set(cv2.CAP_PROP_FRAME_WIDTH, s.width)
                if s.height:
                    cap.set(cv2.CAP_PROP_FRAME_HEIGHT, s.height)
        else:
            if not Path(s.url).is_file():
                raise DriverError(f"no such video file: {s.url}")
            cap = cv2.VideoCapture(s.url)
        if not cap.isOpened():
            cap.release()
            raise DriverError(f"cannot open {redact_url(s.url)}")
        return cap

    def read(self) -> Image | None:
        deadline = time.monotonic() + self.settings.stall_timeout_s
        refused = ""
        while True:
            if self.pacer is not None:
                self.pacer.wait()
            ok, image = self.cap.read()
            if not (ok and image is not None and image.size):
                break
            try:
                frame = self._checked(image)
            except BadImage as exc:
                # counted and skipped; a stream of nothing else is down, and says why
                refused = str(exc)
                log.debug("%s: frame refused: %s", self.settings.name, exc)
                self.on_reject()
                if time.monotonic() > deadline:
                    raise DriverError(f"frames arrive but none can be used: {refused}") from None
                continue
            self.frames_since_open += 1
            return frame
        if self.kind != "file":
            if refused:
                raise DriverError(f"frames arrive but none can be used: {refused}")
            raise DriverError(
                f"stream ended or stalled (no frame within {self.settings.stall_timeout_s:g} s)"
            )
        if self.frames_since_open == 0:
            raise DriverError(f"no decodable frame in {self.settings.url}")
        if not self.settings.replay_loop:
            return None
        self.cap.release()  # rewind by reopening: seeking is unreliable in some containers
        self.cap = self._open()
        self.frames_since_open = 0
        return self.read()

    def _checked(self, image: NDArray[Any]) -> Image:
        if self.kind == "http":
            return decode_image(image.tobytes())  # an MJPEG part, as sent
        height, width = image.shape[:2]
        check_size(width, height)
        return np.asarray(image, dtype=np.uint8)

    def close(self) -> None:
        self.cap.release()


class _FolderSource:
    """Images in a folder, replayed in name order (zero-pad numbers to keep them in order)."""

    kind: SourceKind = "folder"

    def __init__(
        self, settings: CameraSettings, stop: threading.Event, on_reject: Callable[[], None]
    ):
        self.settings = settings
        self.folder = Path(settings.url)
        self.pacer = _Pacer(settings.replay_fps or 5.0, stop)
        self.on_reject = on_reject
        self.files: list[Path] = []
        self.index = 0
        self.decoded_this_round = 0
        self._list()

    def _list(self) -> None:
        if not self.folder.is_dir():
            raise DriverError(f"no such folder: {self.folder}")
        self.files = sorted(
            p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        if not self.files:
            raise DriverError(f"no images in {self.folder}")
        self.index = 0
        self.decoded_this_round = 0

    def read(self) -> Image | None:
        while True:
            if self.index >= len(self.files):
                if self.decoded_this_round == 0:
                    raise DriverError(f"no readable image in {self.folder}")
                if not self.settings.replay_loop:
                    return None
                self._list()  # pick up images added since the last round
            path = self.files[self.index]
            self.index += 1
            try:
                image = read_image(path)
            except BadImage as exc:
                log.debug("%s: %s: %s", self.settings.name, path, exc)
                self.on_reject()
                continue
            self.decoded_this_round += 1
            self.pacer.wait()
            return image

    def close(self) -> None:
        self.files = []


def _open_source(
    settings: CameraSettings, stop: threading.Event, on_reject: Callable[[], None]
) -> _Source:
    kind = source_kind(settings.url)
    if kind == "folder":
        return _FolderSource(settings, stop, on_reject)
    return _CaptureSource(settings, kind, stop, on_reject)


class _ReplayEnded(Exception):
    pass


# --- the camera -------------------------------------------------------------------------------


class Camera:
    """One camera view: a capture thread keeping the newest frame, and an async API for the lane.

    ``start()`` (or ``async with``) launches the thread; ``close()`` stops it. Every method but
    ``close`` returns at once or awaits without blocking the event loop.
    """

    def __init__(
        self,
        settings: CameraSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        healthy_after_s: float = 5.0,
        on_state: Callable[[Health], None] | None = None,
    ) -> None:
        """``on_state`` receives a copy of the health on every up/down change, called from the
        capture thread: hand it to the event loop with ``loop.call_soon_threadsafe``."""
        self.settings = settings
        self._on_state = on_state
        self._clock = clock
        self._backoff = Backoff(
            initial=settings.backoff_initial_s,
            maximum=settings.backoff_max_s,
            rng=rng or random.Random(),
        )
        self._healthy_after_s = healthy_after_s
        self._lock = threading.Lock()  # guards _latest, _seq, _health, _waiters
        self._health = Health(name=f"camera {settings.name}", since=clock())
        self._latest: Frame | None = None
        self._seq = 0
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        """The view name."""
        return self.settings.name

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start capturing (idempotent). Returns at once; the source opens in the thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, name=f"camera-{self.settings.name}", daemon=True
        )
        self._thread.start()

    def close(self, timeout_s: float | None = None) -> None:
        """Stop capturing and wait for the thread (blocks up to a read or open timeout)."""
        self._stop.set()
        self._wake_waiters()
        thread = self._thread
        if thread is None:
            return
        s = self.settings
        thread.join(timeout_s if timeout_s is not None else s.open_timeout_s + s.stall_timeout_s)
        if thread.is_alive():
            log.warning("camera %s: capture thread still blocked in the source", s.name)

    async def aclose(self) -> None:
        """``close()`` from async code, in a worker thread."""
        await asyncio.to_thread(self.close)

    async def __aenter__(self) -> Camera:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- what the lane and the technician read ------------------------------------------------

    def latest(self) -> Frame | None:
        """The newest frame so far, however old (None before the first)."""
        with self._lock:
            return self._latest

    def health(self) -> Health:
        """A copy of the camera's health; an open stream silent past the stall timeout is down."""
        with self._lock:
            health = replace(self._health)
        age = self._age(health)
        if health.state == "up" and age is not None and age > self.settings.stall_timeout_s:
            health.state, health.detail = "down", f"no frame for {age:.1f} s"
        return health

    def status(self) -> dict[str, object]:
        """A JSON-ready health report for status messages and ``gatewayctl``."""
        health = self.health()
        age = self._age(health)
        return {
            **health.as_dict(),
            "view": self.settings.name,
            "source": redact_url(self.settings.url),
            "frames": health.accepted,
            "last_frame_age_s": None if age is None else round(age, 3),
        }

    def _age(self, health: Health) -> float | None:
        if health.last_reading_at is None:
            return None
        return max(0.0, self._clock() - health.last_reading_at)

    async def burst(
        self,
        n: int | None = None,
        interval_s: float | None = None,
        timeout_s: float | None = None,
    ) -> list[Frame]:
        """The next ``n`` distinct frames captured after this call, at least ``interval_s`` apart.

        Never returns a frame captured before the call. Defaults come from the settings. If the
        camera cannot deliver them within ``timeout_s`` the frames so far are returned (maybe
        none); ``health()`` says why.
        """
        s = self.settings
        n = s.burst_frames if n is None else n
        interval = s.burst_interval_s if interval_s is None else interval_s
        timeout = s.burst_timeout_s if timeout_s is None else timeout_s
        if n < 1:
            raise ValueError("a burst takes at least one frame")
        frames: list[Frame] = []
        requested_at = self._clock()
        event = asyncio.Event()
        entry = (asyncio.get_running_loop(), event)
        with self._lock:
            after = self._latest.seq if self._latest is not None else 0
            self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                while len(frames) < n and not self._stop.is_set():
                    event.clear()  # before looking: a frame published after the look wakes us
                    frame = self.latest()
                    if (
                        frame is not None
                        and frame.seq > after
                        and frame.captured_at >= requested_at
                        and (not frames or frame.captured_at - frames[-1].captured_at >= interval)
                    ):
                        frames.append(frame)
                        after = frame.seq
                        continue
                    await event.wait()
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._waiters.remove(entry)
        return frames

    async def snapshot(self, timeout_s: float | None = None) -> Frame:
        """The first frame captured after the call (for ``gatewayctl camera snapshot VIEW``).

        Raises ``CameraTimeout`` if none comes within ``timeout_s`` (default: the stall timeout).
        """
        timeout = self.settings.stall_timeout_s if timeout_s is None else timeout_s
        frames = await self.burst(1, 0.0, timeout)
        if not frames:
            health = self.health()
            raise CameraTimeout(
                f"camera {self.name}: no frame within {timeout:g} s "
                f"({health.state}{': ' + health.detail if health.detail else ''})"
            )
        return frames[0]

    # --- the capture thread -------------------------------------------------------------------

    def _set(self, state: State, detail: str) -> None:
        with self._lock:
            if not self._health.change(state, detail, now=self._clock(), announce=False):
                return
            snapshot = replace(self._health)
        # logged outside the lock: a slow log handler must not hold up the lane's frame reads
        snapshot.announce()
        if self._on_state is not None:
            try:
                self._on_state(snapshot)
            except Exception:  # a broken callback must not stop the capture
                log.exception("camera %s: state callback failed", self.name)

    def _reject(self) -> None:
        with self._lock:
            self._health.rejected += 1

    def _publish(self, image: Image) -> None:
        image.flags.writeable = False
        with self._lock:
            self._seq += 1
            now = self._clock()
            self._latest = Frame(self.name, self._seq, now, time.time(), image)
            self._health.accepted += 1
            self._health.last_reading_at = now
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(event.set)

    def _run(self) -> None:
        # The one retry loop of its own among the drivers: OpenCV's read() blocks in native code,
        # which an asyncio Supervisor cannot drive, so this thread applies the supervisor's
        # Backoff and Health itself. It never touches the event loop except to wake waiters.
        s = self.settings
        source_desc = f"{source_kind(s.url)} {redact_url(s.url)}"
        while not self._stop.is_set():
            up_at: float | None = None
            source: _Source | None = None
            try:
                source = _open_source(s, self._stop, self._reject)
                while not self._stop.is_set():
                    image = source.read()
                    if image is None:
                        raise _ReplayEnded
                    if self._stop.is_set():
                        break
                    self._publish(image)
                    if up_at is None:
                        up_at = self._clock()
                        self._set("up", source_desc)
            except _ReplayEnded:
                self._set("down", "end of replay")
                return
            except (DriverError, OSError, cv2.error) as exc:
                self._set("down", str(exc) or type(exc).__name__)
            except Exception as exc:  # the thread must outlive any surprise from a source
                log.exception("camera %s: unexpected failure", self.name)
                self._set("down", f"{type(exc).__name__}: {exc}")
            finally:
                if source is not None:
                    with contextlib.suppress(Exception):
                        source.close()
            if self._stop.is_set():
                return
            if up_at is not None and self._clock() - up_at >= self._healthy_after_s:
                self._backoff.reset()
            with self._lock:
                self._health.reconnects += 1
            self._stop.wait(self._backoff.next())


def grab_frame(settings: CameraSettings, timeout_s: float | None = None) -> Frame:
    """Open the source, read one frame and close it (blocking): a snapshot with no lane running.

    A busy USB camera cannot be opened twice: with the daemon running, ask its ``Camera``.
    Raises ``DriverError`` when the source cannot be opened or gives no frame.
    """
    if timeout_s is not None:
        settings = settings.model_copy(
            update={"open_timeout_s": timeout_s, "stall_timeout_s": timeout_s}
        )
    stop = threading.Event()
    source = _open_source(settings, stop, lambda: None)
    try:
        image = source.read()
    finally:
        source.close()
    if image is None:
        raise DriverError(f"camera {settings.name}: no frame")
    image.flags.writeable = False
    return Frame(settings.name, 1, time.monotonic(), time.time(), image)
