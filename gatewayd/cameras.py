"""Cameras as reading sources: on arrival each view takes a burst of frames, recognition reads
them off the event loop, and the fused answer becomes the lane's plate or container reading.

OCR runs in a small pool of worker processes, each loading the models once. Cameras are shared
between sources (the front camera may read the plate and a QR code on a phone); a refcount
starts them with the first source and stops them with the last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

from drivers.camera import Camera, CameraSettings, Frame
from drivers.qr import decode_frame_async
from drivers.supervisor import Health
from gatewayd.events import (
    ContainerSeen,
    ContainersRead,
    DeviceFault,
    DeviceRecovered,
    PlateRead,
    QrScanned,
)
from gatewayd.judge import ReadingKind
from gatewayd.sources import Emit
from recognition import models
from recognition.containers import (
    ContainerReader,
    ContainerReading,
    FusedContainer,
    fuse_containers,
)
from recognition.engine import OcrEngine
from recognition.evidence import EvidenceStore
from recognition.plate_fusion import FusedPlate
from recognition.plates import PlateReader, PlateReading

log = logging.getLogger(__name__)
T = TypeVar("T")


# -- the recognition worker process ---------------------------------------------------------
# OCR runs in worker processes, not threads: the plate decoder and the container assembly are
# Python, and in a thread they would hold the GIL for tens of milliseconds at a time, stalling
# the lane's event loop. A worker loads the models once, when it starts.

_readers: dict[str, Any] = {}
WORKER_NICENESS = 5
MAX_EVIDENCE_WRITES = 32  # crops waiting for a stalled disk; more are not kept


def _start_worker(plate_model: Path | None) -> None:
    # below the lane's own process: barrier and loop events must never wait for OCR
    os.nice(WORKER_NICENESS)
    engine = OcrEngine(
        {"EngineConfig.onnxruntime.intra_op_num_threads": 1}, plate_model=plate_model
    )
    engine.warm_up()
    _readers["plates"] = PlateReader(engine)
    _readers["containers"] = ContainerReader(engine)


def _read_plate(views: list[list[Any]], min_confidence: float) -> FusedPlate[PlateReading]:
    reader: PlateReader = _readers["plates"]
    return reader.read_pass(views, min_confidence=min_confidence)


def _read_containers(image: Any) -> list[ContainerReading]:
    reader: ContainerReader = _readers["containers"]
    return reader.read(image)


async def spawn_pool(
    count: int, initializer: Callable[..., object], *initargs: Any
) -> ProcessPoolExecutor:
    """A pool of ``count`` worker processes, each started (``initializer`` run) on return.

    Spawned, not forked: the lane runs camera threads a fork would copy mid-flight. A pool
    starts a process on ``submit`` in the submitting thread, and starting one takes tens to
    hundreds of milliseconds: the submits go through a worker thread, never the loop.
    """
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        count, mp_context=context, initializer=initializer, initargs=initargs
    )
    try:
        futures = await asyncio.to_thread(lambda: [pool.submit(os.getpid) for _ in range(count)])
        await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    return pool


async def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Stop a pool's workers, dropping work not yet started (joined off the loop)."""
    await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)


class _Shared:
    """Something several sources use at once: started for the first, stopped after the last."""

    def __init__(self) -> None:
        self._users = 0
        self._lock = asyncio.Lock()

    async def _start(self) -> None:
        raise NotImplementedError

    async def _stop(self) -> None:
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def use(self) -> AsyncIterator[None]:
        """Hold it (started) while inside; the last user to leave stops it."""
        async with self._lock:
            if self._users == 0:
                await self._start()
            self._users += 1
        try:
            yield
        finally:
            async with self._lock:
                self._users -= 1
                if self._users == 0:
                    await self._stop()


class Recognition(_Shared):
    """The lane's OCR: worker processes holding the models, and the evidence store.
    ``use()`` holds the workers (started, models loaded)."""

    def __init__(
        self, *, workers: int, evidence: EvidenceStore | None, evidence_wait_s: float = 0.5
    ) -> None:
        super().__init__()
        self.workers = workers
        self.evidence = evidence
        self.evidence_wait_s = evidence_wait_s  # a reading waits no longer for its picture
        self._writing = 0  # evidence writes submitted and not yet done
        self.pool: ProcessPoolExecutor | None = None
        self.io: ThreadPoolExecutor | None = None
        self.plate_model: Path | None = None  # the plate recognition model, when installed
        self._respawning = asyncio.Lock()

    def _written(self, _: asyncio.Future[Path | None]) -> None:
        self._writing -= 1

    async def _start(self) -> None:
        # checked here, once, so that a missing model is said in the lane's own log
        try:
            self.plate_model = await asyncio.to_thread(models.installed)
        except models.ModelError as exc:
            log.warning("plates are read with the general model, and held more often: %s", exc)
            self.plate_model = None
        self.pool = await spawn_pool(self.workers, _start_worker, self.plate_model)
        self.io = ThreadPoolExecutor(2, thread_name_prefix="evidence")

    async def _stop(self) -> None:
        pool, io = self.pool, self.io
        self.pool = self.io = None
        if pool is not None:
            await stop_pool(pool)
        if io is not None:
            io.shutdown(wait=False, cancel_futures=True)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a worker. A worker that died (killed for memory, a crash in native
        code) breaks the whole pool: the read in hand fails, and the workers are started
        again for the next one instead of every later read failing until a restart."""
        pool = self.pool
        if pool is None:
            if self._users == 0:
                raise RuntimeError("recognition is not running")
            pool = await self._respawn(None)  # the last start failed: try again
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
        except BrokenProcessPool:
            await self._respawn(pool)
            raise

    async def _respawn(self, broken: ProcessPoolExecutor | None) -> ProcessPoolExecutor:
        async with self._respawning:
            if self.pool is not broken and self.pool is not None:
                return self.pool  # another read started them already
            if self._users == 0:
                raise RuntimeError("recognition is not running")
            self.pool = None
            if broken is not None:
                log.error("an OCR worker died: starting the workers again")
                broken.shutdown(wait=False, cancel_futures=True)
            self.pool = await spawn_pool(self.workers, _start_worker, self.plate_model)
            return self.pool

    async def read_plate(
        self, views: list[list[Any]], min_confidence: float
    ) -> FusedPlate[PlateReading]:
        """The fused plate of a pass's frames: each view's burst, view by view."""
        return await self._run(_read_plate, views, min_confidence)

    async def read_containers(self, image: Any) -> list[ContainerReading]:
        """The container numbers in one frame."""
        return await self._run(_read_containers, image)

    async def keep(self, pass_id: str, label: str, crop: Any) -> str | None:
        """Save an evidence crop (encoded and written in a thread); its path, or None when
        not kept."""
        if self.evidence is None or crop is None:
            return None
        if self._writing >= MAX_EVIDENCE_WRITES:
            # the disk has stalled for a while: crops would pile up in memory behind it
            log.warning("evidence %s of %s not kept: %d writes still waiting", label, pass_id,
                        self._writing)  # fmt: skip
            return None
        self._writing += 1
        saving = asyncio.get_running_loop().run_in_executor(
            self.io, self.evidence.save_crop, pass_id, label, crop
        )
        saving.add_done_callback(self._written)
        try:
            async with asyncio.timeout(self.evidence_wait_s):
                path: Path | None = await asyncio.shield(saving)
        except TimeoutError:
            # a stalled disk (a hung mount, a dying card) must not hold the truck's reading:
            # it goes without the picture's path; the write finishes or fails on its own
            log.warning(
                "evidence %s of %s not written within %g s: the reading goes without it",
                label,
                pass_id,
                self.evidence_wait_s,
            )
            return None
        return str(path) if path else None


class CameraSet(_Shared):
    """The lane's camera views, open while any source uses them (``use()``)."""

    def __init__(self, settings: Sequence[CameraSettings]) -> None:
        super().__init__()
        self.settings = {s.name: s for s in settings}
        self.cameras: dict[str, Camera] = {}
        self._health_listeners: list[Callable[[str, Health], None]] = []

    def listen(self, callback: Callable[[str, Health], None]) -> None:
        """Be told (on the loop) when a view goes up or down."""
        self._health_listeners.append(callback)

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        for name, settings in self.settings.items():

            def changed(health: Health, view: str = name) -> None:
                loop.call_soon_threadsafe(self._changed, view, health)

            camera = Camera(settings, on_state=changed)
            camera.start()
            self.cameras[name] = camera

    async def _stop(self) -> None:
        cameras, self.cameras = list(self.cameras.values()), {}
        await asyncio.gather(*(c.aclose() for c in cameras))

    def _changed(self, view: str, health: Health) -> None:
        for callback in self._health_listeners:
            callback(view, health)

    async def bursts(self, views: Sequence[str]) -> dict[str, list[Frame]]:
        """A burst from each view, taken together."""
        cameras = [self.cameras[v] for v in views if v in self.cameras]
        got = await asyncio.gather(*(c.burst() for c in cameras))
        return {c.name: frames for c, frames in zip(cameras, got, strict=True)}


class _CameraSource:
    """A reading source backed by camera views; reads once per pass, on the lane's trigger."""

    uses_ocr = True  # holds the OCR workers while it runs

    def __init__(
        self,
        name: str,
        kind: ReadingKind,
        cameras: CameraSet,
        views: Sequence[str],
        recognition: Recognition,
    ) -> None:
        self.name = name
        self.kind: ReadingKind = kind
        self.cameras = cameras
        self.views = list(views)
        self.recognition = recognition
        self._emit: Emit | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._down: set[str] = set()
        self.failed = False  # the last burst gave no frame at all

    async def run(self, emit: Emit) -> None:
        """Hold the cameras (and the models, if it reads text) until cancelled."""
        self._emit = emit
        self.cameras.listen(self._on_camera)
        models = self.recognition.use() if self.uses_ocr else contextlib.nullcontext()
        async with self.cameras.use(), models:
            try:
                await asyncio.Event().wait()
            finally:
                for task in self._tasks.values():
                    task.cancel()

    def _on_camera(self, view: str, health: Health) -> None:
        if view not in self.views or self._emit is None:
            return
        was_down = bool(self._down)
        if health.state == "up":
            self._down.discard(view)
        else:
            self._down.add(view)
        if self._down and not was_down:
            self._emit(DeviceFault(self.name, f"camera {view}: {health.detail}"))
        elif was_down and not self._down:
            self._emit(DeviceRecovered(self.name))

    def trigger(self, pass_id: str) -> None:
        """A vehicle arrived: read this pass (in a task; returns at once)."""
        task = asyncio.get_running_loop().create_task(
            self._guarded(pass_id), name=f"{self.name}:{pass_id}"
        )
        self._tasks[pass_id] = task
        task.add_done_callback(lambda t: self._tasks.pop(pass_id, None))

    def pass_closed(self, pass_id: str) -> None:
        """The pass is over: stop reading for it."""
        task = self._tasks.pop(pass_id, None)
        if task is not None:
            task.cancel()

    async def _guarded(self, pass_id: str) -> None:
        try:
            await self.read(pass_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # a recognition failure is a missing reading, not a dead lane
            log.exception("%s: reading pass %s failed", self.name, pass_id)

    async def _frames(self) -> list[Frame]:
        return [f for burst in await self._bursts() for f in burst]

    async def _bursts(self) -> list[list[Frame]]:
        """Each view's burst (views that gave no frame left out)."""
        bursts = [b for b in (await self.cameras.bursts(self.views)).values() if b]
        emit = self._emit
        if emit is not None:
            if not bursts and not self.failed:
                self.failed = True
                emit(DeviceFault(self.name, "no frame from any view"))
            elif bursts and self.failed:
                self.failed = False
                if not self._down:  # a view still down keeps the source's fault
                    emit(DeviceRecovered(self.name))
        return bursts

    async def read(self, pass_id: str) -> None:
        """Read this pass and emit the reading."""
        raise NotImplementedError


class PlateCameraSource(_CameraSource):
    """The plate, from the views that see the front (or rear) of the truck."""

    def __init__(self, *args: Any, min_confidence: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.min_confidence = min_confidence

    async def read(self, pass_id: str) -> None:
        bursts = await self._bursts()
        if not bursts or self._emit is None:
            return
        views = [[f.image for f in burst] for burst in bursts]
        fused = await self.recognition.read_plate(views, self.min_confidence)
        evidence: tuple[str, ...] = ()
        if fused.best is not None:
            path = await self.recognition.keep(pass_id, "plate", fused.best.crop)
            evidence = (path,) if path else ()
        # doubtful or nothing read: a reading the core holds for a human, never a guess
        sure = fused.confidence if fused.status == "confident" and fused.text else 0.0
        self._emit(PlateRead(fused.text or "", sure, evidence, pass_id))


class ContainerCameraSource(_CameraSource):
    """The container numbers, fused over every view (sides, back, top)."""

    async def read(self, pass_id: str) -> None:
        bursts = await self._bursts()
        if not bursts or self._emit is None:
            return
        frames = [(f, 1.0 / len(burst)) for burst in bursts for f in burst]
        per_frame = await asyncio.gather(
            *(self.recognition.read_containers(f.image) for f, _ in frames)
        )
        # a burst's frames together are one witness (see fuse_containers)
        readings = [(r, w) for (_, w), found in zip(frames, per_frame, strict=True) for r in found]
        fused: list[FusedContainer] = fuse_containers(
            [r for r, _ in readings], weights=[w for _, w in readings]
        )
        seen = tuple(
            ContainerSeen(
                box.number,
                verified=box.verified and not box.needs_review,
                confidence=box.confidence,
                size_type=box.size_type,
            )
            for box in fused
        )
        paths = await asyncio.gather(
            *(
                self.recognition.keep(pass_id, f"container{i + 1}", box.evidence.crop)
                for i, box in enumerate(fused)
            )
        )
        self._emit(ContainersRead(seen, tuple(p for p in paths if p), pass_id))


class QrCameraSource(_CameraSource):
    """Release-note QR codes held up to a camera: frames are decoded until the pass ends."""

    uses_ocr = False  # a QR decode is short: a thread, not the OCR workers

    def __init__(self, *args: Any, period_s: float = 0.2, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.period_s = period_s

    async def read(self, pass_id: str) -> None:
        seen: set[str] = set()
        while True:
            for frame in await self._frames():
                scans = await decode_frame_async(frame.image)
                for scan in scans:
                    if scan.payload not in seen and self._emit is not None:
                        seen.add(scan.payload)
                        self._emit(QrScanned(scan.payload, pass_id))
            await asyncio.sleep(self.period_s)
