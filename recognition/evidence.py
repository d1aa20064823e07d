"""Evidence images: the crops a reading came from (and optionally whole frames), kept per pass.

Layout, so an officer finds a pass's pictures by its id::

    ROOT/2025-03-01/PASS_ID/PASS_ID_003_plate.jpg

(the date of the pass's first picture; the number orders the pictures within the pass).
``files_for(pass_id)`` lists them. The store keeps to a disk budget in bytes: before a write
that would exceed it, the oldest pictures go first, whole passes at a time as they empty.

A lane must never stop for want of evidence: a failed write (full disk, read-only mount,
undecodable image) is logged, counted and answered with ``None``, never raised. The store is
safe to use from several threads; writes block on the disk, so call it from a worker thread.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

Image = NDArray[np.uint8]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_TMP_SUFFIX = ".tmp"
STUCK_RETRY_S = 30.0  # how often pictures that could not be deleted are tried again
_KNOWN_PASSES = 4096  # passes whose folder and picture count are remembered
_NAME_MAX = 80
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_PICTURE = re.compile(r"_\d{3,}_[A-Za-z0-9_.-]+\.jpg(?:\.tmp)?")  # after "PASS_ID"


def safe_name(text: str, fallback: str = "unnamed") -> str:
    """``text`` reduced to a file-name-safe form (no separators, no leading dots), at most
    ``_NAME_MAX`` characters: a longer one keeps its head and a hash of the whole, so that two
    names differing only at the end (two passes of one lane in one second) stay apart.

    >>> safe_name("lane01/2025-03-01#0042"), safe_name("../.."), safe_name("沪A12345")
    ('lane01_2025-03-01_0042', 'unnamed', 'A12345')
    >>> long = "L" * 64 + "-20250301T080002-"
    >>> safe_name(long + "a1b2c3") != safe_name(long + "d4e5f6"), len(safe_name(long + "x"))
    (True, 80)
    """
    cleaned = _UNSAFE.sub("_", text).strip("._")
    if len(cleaned) > _NAME_MAX:
        digest = hashlib.blake2s(text.encode("utf-8", "surrogatepass"), digest_size=4).hexdigest()
        cleaned = f"{cleaned[: _NAME_MAX - 9]}_{digest}"
    return cleaned or fallback


class EvidenceSettings(BaseModel):
    """Where and how much evidence a lane keeps."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    directory: Path = Field(description="Folder holding the evidence (created if missing).")
    budget_bytes: int = Field(
        default=2 * 1024**3,
        ge=1024 * 1024,
        description="Disk space the evidence may use; the oldest pictures are deleted first.",
    )
    jpeg_quality: int = Field(default=90, ge=30, le=100, description="JPEG quality of crops.")
    keep_frames: bool = Field(
        default=False, description="Also keep the whole camera frames, not only the crops."
    )
    frame_jpeg_quality: int = Field(
        default=75, ge=30, le=100, description="JPEG quality of whole frames."
    )


@dataclass(frozen=True)
class EvidenceStats:
    """Counters for health reports."""

    files: int
    bytes: int
    budget_bytes: int
    written: int  # pictures written since start
    deleted: int  # pictures deleted to keep to the budget
    failed: int  # pictures that could not be written
    last_error: str


@dataclass
class _Pass:
    folder: Path
    next_index: int


class EvidenceStore:
    """JPEG evidence under a directory, on a byte budget with oldest-first deletion."""

    def __init__(
        self,
        directory: Path | str,
        budget_bytes: int,
        *,
        jpeg_quality: int = 90,
        keep_frames: bool = False,
        frame_jpeg_quality: int = 75,
        now: Callable[[], datetime] = datetime.now,
    ) -> None:
        """Open (and index) the store; scans existing files, so call it at start-up."""
        self.root = Path(directory)
        self.budget_bytes = int(budget_bytes)
        self.jpeg_quality = jpeg_quality
        self.keep_frames = keep_frames
        self.frame_jpeg_quality = frame_jpeg_quality
        self._now = now
        self._lock = threading.Lock()
        self._files: OrderedDict[Path, int] = OrderedDict()  # oldest first
        self._stuck: dict[Path, int] = {}  # old files a delete failed on, still counted
        self._retry_stuck_at = 0.0  # monotonic time they may be tried again
        self._used = 0
        self._reserved = 0  # bytes promised to writes in flight
        self._passes: OrderedDict[str, _Pass] = OrderedDict()
        self._last_mtime_ns = 0
        self._written = self._deleted = self._failed = 0
        self._failing = False
        self._last_error = ""
        self._scan()

    @classmethod
    def from_settings(cls, settings: EvidenceSettings) -> EvidenceStore:
        """A store configured from the lane's settings."""
        return cls(
            settings.directory,
            settings.budget_bytes,
            jpeg_quality=settings.jpeg_quality,
            keep_frames=settings.keep_frames,
            frame_jpeg_quality=settings.frame_jpeg_quality,
        )

    # --- writing ------------------------------------------------------------------------------

    def save_crop(self, pass_id: str, label: str, image: Image) -> Path | None:
        """Keep one crop (BGR or grey) of a pass; its path, or None if it could not be kept."""
        return self._save(pass_id, label, image, self.jpeg_quality)

    def save_frame(self, pass_id: str, view: str, image: Image) -> Path | None:
        """Keep a whole camera frame if the store keeps frames; else do nothing (None)."""
        if not self.keep_frames:
            return None
        return self._save(pass_id, f"frame-{view}", image, self.frame_jpeg_quality)

    def save_jpeg(self, pass_id: str, label: str, jpeg: bytes) -> Path | None:
        """Keep an already encoded JPEG (e.g. ``Frame.jpeg()``)."""
        if not jpeg.startswith(b"\xff\xd8"):
            self._fail(f"{label}: not a JPEG")
            return None
        return self._write(pass_id, label, jpeg)

    def _save(self, pass_id: str, label: str, image: Image, quality: int) -> Path | None:
        try:
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        except (cv2.error, TypeError, ValueError) as exc:
            self._fail(f"{label}: cannot encode: {exc}")
            return None
        if not ok:
            self._fail(f"{label}: cannot encode")
            return None
        return self._write(pass_id, label, bytes(buf))

    def _write(self, pass_id: str, label: str, data: bytes) -> Path | None:
        size = len(data)
        if size > self.budget_bytes:
            self._fail(f"{label}: {size} bytes exceed the whole budget")
            return None
        with self._lock:
            self._evict(size)
            full = self._used + self._reserved + size > self.budget_bytes
            if not full:
                self._reserved += size
                path = self._next_path(pass_id, label)
        if full:  # only old files that cannot be deleted are left: the budget still holds
            self._fail(f"{label}: budget full ({self._last_error})")
            return None
        try:
            self._store(path, data)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                # the disk filled before our budget did: older evidence makes room for newer
                with self._lock:
                    self._evict(size, room=self._room_on_disk(size))
                try:
                    self._store(path, data)
                except OSError as again:
                    exc = again
                else:
                    return self._written_ok(path, size)
            with self._lock:
                self._reserved -= size
            self._fail(f"{path.name}: {exc.strerror or exc}")
            return None
        return self._written_ok(path, size)

    def _written_ok(self, path: Path, size: int) -> Path:
        with self._lock:
            self._reserved -= size
            self._files[path] = size
            self._used += size
            self._written += 1
            recovered, self._failing = self._failing, False
        if recovered:
            log.info("evidence writes work again (%d failed so far)", self._failed)
        return path

    def _store(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + _TMP_SUFFIX)
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        with self._lock:  # strictly increasing mtimes keep the age order across restarts
            stamp = max(time.time_ns(), self._last_mtime_ns + 1)
            self._last_mtime_ns = stamp
        os.utime(path, ns=(stamp, stamp))

    def _fail(self, reason: str) -> None:
        with self._lock:
            self._failed += 1
            self._last_error = reason
            first, self._failing = not self._failing, True
        if first:
            log.warning("evidence not kept: %s (further failures are counted)", reason)
        else:
            log.debug("evidence not kept: %s", reason)

    def _next_path(self, pass_id: str, label: str) -> Path:
        """A fresh file name for the pass (caller holds the lock)."""
        key = safe_name(pass_id)
        p = self._passes.get(key)
        if p is None:
            existing = sorted(
                f
                for f in self.root.glob(f"*/{key}")
                if not (f.is_symlink() or f.parent.is_symlink())
            )
            folder = existing[0] if existing else self.root / self._now().strftime("%Y-%m-%d") / key
            count = len(list(folder.glob("*.jpg"))) if existing else 0
            p = _Pass(folder, count + 1)
            self._passes[key] = p
            while len(self._passes) > _KNOWN_PASSES:
                self._passes.popitem(last=False)
        else:
            self._passes.move_to_end(key)
        while True:  # never overwrite, even a file written by an earlier run
            path = p.folder / f"{key}_{p.next_index:03d}_{safe_name(label, 'image')}.jpg"
            p.next_index += 1
            if path not in self._files and not path.exists():
                return path

    # --- keeping to the budget ----------------------------------------------------------------

    def _evict(self, incoming: int, room: int = 0) -> None:
        """Delete oldest files until ``incoming`` fits (and ``room`` more is free); holds lock.

        A file that cannot be deleted (permissions, a read-only mount) still takes its space:
        it stays counted, is tried again when room is needed (at most every ``STUCK_RETRY_S``),
        and newer files go in its place meanwhile.
        """
        if self._used + self._reserved + incoming <= self.budget_bytes and room <= 0:
            return
        now = time.monotonic()
        if self._stuck and now >= self._retry_stuck_at:
            # not on every write: thousands of files on a read-only mount would each be tried
            self._retry_stuck_at = now + STUCK_RETRY_S
            for path, size in list(self._stuck.items()):
                if self._delete(path):
                    del self._stuck[path]
                    self._used -= size
                    room -= size
        while self._files and (
            self._used + self._reserved + incoming > self.budget_bytes or room > 0
        ):
            path, size = self._files.popitem(last=False)
            if self._delete(path):
                self._used -= size
                room -= size
            else:
                self._stuck[path] = size
                self._retry_stuck_at = now + STUCK_RETRY_S

    def _delete(self, path: Path) -> bool:
        """Delete one picture (holds lock); False when it is still there."""
        try:
            path.unlink()
        except FileNotFoundError:
            pass  # removed by hand: it no longer takes space either
        except OSError as exc:
            self._last_error = f"cannot delete old evidence {path.name}: {exc.strerror or exc}"
            if path not in self._stuck:
                log.warning("cannot delete old evidence %s: %s", path, exc)
            return False
        self._deleted += 1
        self._prune(path.parent)
        return True

    def _room_on_disk(self, size: int) -> int:
        try:
            st = os.statvfs(self.root)
        except OSError:
            return 2 * size
        return max(0, 2 * size - st.f_bavail * st.f_frsize)

    def _prune(self, folder: Path) -> None:
        """Remove a pass folder, then its date folder, once empty."""
        for d in (folder, folder.parent):
            if d == self.root or self.root not in d.parents:
                return
            try:
                d.rmdir()
            except OSError:
                return  # not empty (or gone): keep it

    def _scan(self) -> None:
        found: list[tuple[int, Path, int]] = []
        for path in self._walk():
            try:
                st = path.stat()
            except OSError:
                continue
            if path.name.endswith(_TMP_SUFFIX):  # a write cut short by a crash
                path.unlink(missing_ok=True)
                continue
            found.append((st.st_mtime_ns, path, st.st_size))
        for mtime, path, size in sorted(found):
            self._files[path] = size
            self._used += size
            self._last_mtime_ns = max(self._last_mtime_ns, mtime)
        with self._lock:
            self._evict(0)
        if found:
            log.info(
                "evidence store %s: %d files, %d bytes of %d",
                self.root,
                len(self._files),
                self._used,
                self.budget_bytes,
            )

    def _walk(self) -> Iterator[Path]:
        """The pictures this store wrote: ``DAY/KEY/KEY_NNN_label.jpg`` and nothing else (a
        report someone saved beside them is not evidence to delete), never through a link
        (which could lead out of the root)."""
        if not self.root.is_dir():
            return
        for day in _entries(self.root):
            if not (day.is_dir(follow_symlinks=False) and _DAY.fullmatch(day.name)):
                continue
            for folder in _entries(Path(day.path)):
                if not folder.is_dir(follow_symlinks=False):
                    continue
                for picture in _entries(Path(folder.path)):
                    name = picture.name
                    if (
                        picture.is_file(follow_symlinks=False)
                        and name.startswith(folder.name)
                        and _PICTURE.fullmatch(name[len(folder.name) :])
                    ):
                        yield Path(picture.path)

    # --- reading ------------------------------------------------------------------------------

    def files_for(self, pass_id: str) -> list[Path]:
        """The pictures kept for one pass, in the order they were saved."""
        key = safe_name(pass_id)
        return sorted(self.root.glob(f"*/{key}/{key}_*.jpg"))

    def usage_bytes(self) -> int:
        """Bytes the kept pictures take."""
        with self._lock:
            return self._used

    def stats(self) -> EvidenceStats:
        """A snapshot of the counters."""
        with self._lock:
            return EvidenceStats(
                files=len(self._files) + len(self._stuck),
                bytes=self._used,
                budget_bytes=self.budget_bytes,
                written=self._written,
                deleted=self._deleted,
                failed=self._failed,
                last_error=self._last_error,
            )


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return list(it)
    except OSError:
        return []
