"""The evidence store: found by pass id, kept to its budget oldest first, never raising."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from gatewayd.cameras import MAX_EVIDENCE_WRITES, Recognition
from recognition import evidence
from recognition.evidence import EvidenceSettings, EvidenceStore

DAY = datetime(2025, 3, 1, 9, 30)


def crop(seed: int, w: int = 160, h: int = 48) -> np.ndarray:
    """A noisy crop: JPEG cannot squeeze it much, so sizes are realistic and similar."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def on_disk(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_size for p in root.rglob("*") if p.is_file()}


def test_pictures_are_found_by_pass_id(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path, 10_000_000, now=lambda: DAY)
    a = store.save_crop("lane01-0001", "plate", crop(1))
    b = store.save_crop("lane01-0001", "container-side", crop(2))
    c = store.save_crop("lane01-0002", "plate", crop(3))
    assert a is not None
    assert b is not None
    assert c is not None
    assert a.parent == tmp_path / "2025-03-01" / "lane01-0001"
    assert a.name.startswith("lane01-0001_")
    assert store.files_for("lane01-0001") == [a, b]
    assert store.files_for("lane01-0002") == [c]
    assert store.files_for("lane01-9999") == []
    decoded = cv2.imread(str(a))
    assert decoded.shape == (48, 160, 3)
    assert store.usage_bytes() == sum(on_disk(tmp_path).values())


def test_the_budget_holds_and_the_oldest_go_first(tmp_path: Path) -> None:
    size = len(cv2.imencode(".jpg", crop(0), [cv2.IMWRITE_JPEG_QUALITY, 90])[1])
    budget = int(size * 3.5)  # room for three crops
    store = EvidenceStore(tmp_path, budget, now=lambda: DAY)
    paths = []
    for i in range(8):
        path = store.save_crop(f"pass-{i}", "plate", crop(i))
        assert path is not None
        paths.append(path)
        assert store.usage_bytes() <= budget
        assert sum(on_disk(tmp_path).values()) <= budget
    kept = set(on_disk(tmp_path))
    assert kept == set(paths[-3:])
    assert store.files_for("pass-0") == []
    assert not (tmp_path / "2025-03-01" / "pass-0").exists()  # emptied pass folders go too
    stats = store.stats()
    assert (stats.files, stats.written, stats.deleted, stats.failed) == (3, 8, 5, 0)


def test_age_order_survives_a_restart(tmp_path: Path) -> None:
    size = len(cv2.imencode(".jpg", crop(0), [cv2.IMWRITE_JPEG_QUALITY, 90])[1])
    budget = int(size * 4.5)
    first = EvidenceStore(tmp_path, budget, now=lambda: DAY)
    # written in the reverse of name order: age, not name, decides what goes first
    old = [first.save_crop(f"p-{c}", "plate", crop(i)) for i, c in enumerate("zyx")]
    second = EvidenceStore(tmp_path, budget, now=lambda: DAY)
    assert second.usage_bytes() == first.usage_bytes()
    new = [second.save_crop(f"q-{i}", "plate", crop(10 + i)) for i in range(2)]
    assert set(on_disk(tmp_path)) == {*old[1:], *new}  # p-z was the oldest
    again = second.save_crop("p-x", "plate", crop(20))  # a pass seen before the restart
    assert again is not None
    assert again.name == "p-x_002_plate.jpg"  # numbering goes on, nothing is overwritten
    assert set(on_disk(tmp_path)) == {old[2], *new, again}  # p-y made room


def test_a_lowered_budget_applies_at_start(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path, 10_000_000, now=lambda: DAY)
    paths = [store.save_crop(f"p{i}", "plate", crop(i)) for i in range(4)]
    smaller = EvidenceStore(tmp_path, store.usage_bytes() // 2, now=lambda: DAY)
    assert smaller.usage_bytes() <= store.usage_bytes() // 2
    assert paths[-1] in on_disk(tmp_path)
    assert paths[0] not in on_disk(tmp_path)


def test_several_threads_share_one_budget(tmp_path: Path) -> None:
    size = len(cv2.imencode(".jpg", crop(0), [cv2.IMWRITE_JPEG_QUALITY, 90])[1])
    budget = size * 10
    store = EvidenceStore(tmp_path, budget, now=lambda: DAY)
    errors: list[BaseException] = []
    results: list[Path | None] = []
    lock = threading.Lock()

    def worker(t: int) -> None:
        try:
            for i in range(25):
                r = store.save_crop(f"t{t}-{i}", "plate", crop(t * 100 + i))
                with lock:
                    results.append(r)
        except BaseException as exc:  # the test reports it below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert all(r is not None for r in results)
    files = on_disk(tmp_path)
    assert sum(files.values()) <= budget
    assert store.usage_bytes() == sum(files.values())
    stats = store.stats()
    assert stats.written == 100
    assert stats.deleted + stats.files == 100
    assert stats.files == len(files)


def test_a_failing_disk_is_logged_once_counted_and_survived(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="recognition.evidence")
    store = EvidenceStore(tmp_path, 10_000_000, now=lambda: DAY)
    (tmp_path / "2025-03-01").write_text("a file where the day's folder should be")
    assert store.save_crop("p1", "plate", crop(1)) is None
    assert store.save_crop("p2", "plate", crop(2)) is None
    assert store.stats().failed == 2
    assert "p2_001_plate.jpg" in store.stats().last_error
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1

    (tmp_path / "2025-03-01").unlink()  # the technician frees the path
    path = store.save_crop("p3", "plate", crop(3))
    assert path is not None
    assert path.is_file()
    assert any("work again" in r.getMessage() for r in caplog.records)
    assert store.usage_bytes() == path.stat().st_size


def undeletable(picture: Path) -> None:
    """Swap a picture for a folder of its name: the kernel refuses to unlink it (EISDIR),
    as it would a file on a read-only mount, and the test can still see every byte."""
    picture.unlink()
    picture.mkdir()


def test_old_evidence_that_cannot_be_deleted_still_counts_against_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(evidence, "STUCK_RETRY_S", 0.0)  # tried again at every write
    size = len(cv2.imencode(".jpg", crop(0), [cv2.IMWRITE_JPEG_QUALITY, 90])[1])
    store = EvidenceStore(tmp_path, int(size * 3.5), now=lambda: DAY)  # three crops
    paths = [store.save_crop(f"pass-{i}", "plate", crop(i)) for i in range(3)]
    assert None not in paths
    stuck = paths[0]
    assert stuck is not None
    undeletable(stuck)
    newest = store.save_crop("pass-3", "plate", crop(3))
    assert newest is not None
    # pass-0 could not go, so pass-1 went in its place: the budget holds on disk
    assert set(on_disk(tmp_path)) == {paths[2], newest}
    assert store.usage_bytes() == sum(on_disk(tmp_path).values()) + size
    assert store.stats().files == 3

    for path in paths[2], newest:
        assert path is not None
        undeletable(path)
    assert store.save_crop("pass-4", "plate", crop(4)) is None  # nothing left it may delete
    assert "budget full" in store.stats().last_error
    assert "cannot delete" in store.stats().last_error

    for path in stuck, paths[2], newest:
        assert path is not None
        path.rmdir()  # the technician clears them (or the mount is writable again)
    last = store.save_crop("pass-5", "plate", crop(5))
    assert last is not None
    assert store.usage_bytes() == sum(on_disk(tmp_path).values()) == last.stat().st_size


def test_bad_input_is_refused_without_raising(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path, 1024 * 1024, now=lambda: DAY)
    assert store.save_crop("p1", "plate", np.zeros((0, 0, 3), np.uint8)) is None
    assert store.save_jpeg("p1", "frame", b"not a jpeg") is None
    huge = crop(1, 2000, 2000)  # far more than the whole budget once encoded
    assert store.save_crop("p1", "frame", huge) is None
    assert store.stats().failed == 3
    assert on_disk(tmp_path) == {}


def test_pass_ids_cannot_escape_the_directory(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    store = EvidenceStore(root, 10_000_000, now=lambda: DAY)
    path = store.save_crop("../../etc/passwd", "../x", crop(1))
    assert path is not None
    assert root in path.parents
    assert store.files_for("../../etc/passwd") == [path]


def test_the_budget_deletes_only_pictures_it_wrote_and_never_through_a_link(
    tmp_path: Path,
) -> None:
    root = tmp_path / "evidence"
    report = root / "exports" / "2025-02-audit" / "officer-report.pdf"
    odd = root / "2025-01-01" / "notes" / "notes.txt"
    outside = tmp_path / "elsewhere" / "keep" / "ledger-backup.db"
    for path in (report, odd, outside):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"\0" * 600_000)
    (root / "2024-12-31").symlink_to(tmp_path / "elsewhere")  # an old day moved to another disk
    store = EvidenceStore(root, 1024 * 1024, now=lambda: DAY)
    assert store.stats().files == 0  # none of them is evidence
    for i in range(40):
        store.save_crop(f"L1-{i}", "plate", crop(i, 480, 160))
    assert store.stats().deleted > 0  # the budget was at work...
    for path in (report, odd, outside):  # ...on its own pictures only
        assert path.stat().st_size == 600_000


def test_two_passes_of_a_long_lane_id_in_one_second_keep_their_own_pictures(
    tmp_path: Path,
) -> None:
    lane = "shekou-north-container-checkpoint-lane-03-entry-inbound-primary"  # 64 characters
    p1, p2 = f"{lane}-20250301T101010-1a2b3c", f"{lane}-20250301T101010-9f8e7d"
    store = EvidenceStore(tmp_path, 10_000_000, now=lambda: DAY)
    first, second = store.save_crop(p1, "plate", crop(1)), store.save_crop(p2, "plate", crop(2))
    assert store.files_for(p1) == [first]
    assert store.files_for(p2) == [second]


def test_frames_are_kept_only_when_asked(tmp_path: Path) -> None:
    frame = crop(1, 320, 180)
    assert EvidenceStore(tmp_path / "a", 10_000_000).save_frame("p1", "front", frame) is None
    settings = EvidenceSettings(directory=tmp_path / "b", budget_bytes=10_000_000, keep_frames=True)
    store = EvidenceStore.from_settings(settings)
    path = store.save_frame("p1", "front", frame)
    assert path is not None
    assert path.name.endswith("frame-front.jpg")
    jpeg = cv2.imencode(".jpg", frame)[1].tobytes()
    kept = store.save_jpeg("p1", "snapshot", jpeg)
    assert kept is not None
    assert kept.read_bytes() == jpeg


def test_a_stalled_disk_does_not_hold_the_trucks_reading(tmp_path: Path) -> None:
    # The picture's temporary file is a FIFO nobody reads: opening it to write blocks, as a
    # write to a hung mount does.
    store = EvidenceStore(tmp_path, 10_000_000, now=lambda: DAY)
    folder = tmp_path / "2025-03-01" / "P1"
    folder.mkdir(parents=True)
    stall = folder / "P1_001_plate.jpg.tmp"
    os.mkfifo(stall)
    (tmp_path / "2025-03-01" / "Q0").mkdir()
    stall_too = tmp_path / "2025-03-01" / "Q0" / "Q0_001_plate.jpg.tmp"  # both writer threads
    os.mkfifo(stall_too)

    def drain() -> None:
        for fifo in stall, stall_too:
            with open(fifo, "rb") as unblock:
                unblock.read()

    async def keep() -> tuple[str | None, float, str | None, int]:
        recognition = Recognition(workers=1, evidence=store, evidence_wait_s=0.3)
        async with recognition.use():
            workers = recognition.pool
            started = time.monotonic()
            try:
                async with asyncio.timeout(5):
                    stalled = await recognition.keep("P1", "plate", crop(1))
                # more passes' crops meanwhile: they wait behind it, but only so many
                recognition.evidence_wait_s = 0.01
                for i in range(40):
                    assert await recognition.keep(f"Q{i}", "plate", crop(2)) is None
                queued = recognition._writing
            finally:
                waited = time.monotonic() - started
                # the disk comes back: the stalled write completes, the next one is kept
                await asyncio.to_thread(drain)
            async with asyncio.timeout(10):
                # the writes waiting behind it go through (threads: no event to await)
                while recognition._writing:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            recognition.evidence_wait_s = 5.0
            later = await recognition.keep("P2", "plate", crop(2))
            # and the same workers, untouched by it all, read the next truck
            assert recognition.pool is workers
            assert (await recognition.read_containers(crop(3))) == []
        return stalled, waited, later, queued

    stalled, waited, later, queued = asyncio.run(keep())
    assert stalled is None
    assert waited < 1.0
    assert queued == MAX_EVIDENCE_WRITES  # the rest were not kept: no pile-up in memory
    assert later is not None
    assert Path(later).is_file()


def test_pictures_that_cannot_be_deleted_are_not_tried_again_at_every_write(
    tmp_path: Path,
) -> None:
    size = len(cv2.imencode(".jpg", crop(0), [cv2.IMWRITE_JPEG_QUALITY, 90])[1])
    store = EvidenceStore(tmp_path, int(size * 2.5), now=lambda: DAY)  # two crops
    first = [store.save_crop(f"pass-{i}", "plate", crop(i)) for i in range(2)]
    for path in first:
        assert path is not None
        undeletable(path)
    tried: list[Path] = []
    unlink = Path.unlink

    def counting(self: Path, missing_ok: bool = False) -> None:
        tried.append(self)
        unlink(self, missing_ok=missing_ok)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "unlink", counting)
        for i in range(2, 12):
            store.save_crop(f"pass-{i}", "plate", crop(i))
    assert sum(p in first for p in tried) == 2  # once each, not once per write
