"""The camera driver against real sources: a folder, a video file, and an MJPEG stream."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from drivers.camera import Camera, CameraSettings, CameraTimeout, Frame, grab_frame, source_kind
from sim.camera_server import MjpegServer

LEVELS = [10, 50, 90, 130, 170, 210]  # one grey level per replayed image


async def wait_until(cond: Callable[[], bool], limit_s: float = 20.0) -> None:
    """Poll a condition; a generous limit, since the machine is shared and noisy."""
    async with asyncio.timeout(limit_s):
        # the capture thread changes what we watch and sets no asyncio event for it
        while not cond():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


def level(frame: Frame) -> int:
    """Which replayed image a frame shows: the nearest of LEVELS to its mean grey."""
    mean = float(frame.image.mean())
    return min(LEVELS, key=lambda v: abs(v - mean))


def solid(bgr: tuple[int, int, int], w: int = 320, h: int = 240) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = bgr
    return img


def colour(frame: Frame) -> str:
    b, _g, r = (float(c) for c in frame.image.reshape(-1, 3).mean(axis=0))
    return "red" if r > 150 > b else "blue" if b > 150 > r else "other"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "frames"
    d.mkdir()
    for i, v in enumerate(LEVELS):
        cv2.imwrite(str(d / f"{i:04d}.png"), np.full((120, 160, 3), v, np.uint8))
    (d / "notes.txt").write_text("not an image")
    return d


async def test_folder_replay_gives_consecutive_fresh_frames(folder: Path) -> None:
    settings = CameraSettings(name="replay", url=str(folder), replay_fps=30)
    async with Camera(settings) as cam:
        await wait_until(lambda: cam.latest() is not None)
        before = cam.latest()
        assert before is not None
        frames = await cam.burst(4, 0.0, timeout_s=20)
        assert len(frames) == 4
        seqs = [f.seq for f in frames]
        assert seqs == sorted(set(seqs))
        assert seqs[0] > before.seq
        assert all(f.captured_at >= before.captured_at for f in frames)
        # consecutive frames are consecutive images of the folder, in name order
        idx = [LEVELS.index(level(f)) for f in frames]
        assert all((b - a) % len(LEVELS) == 1 for a, b in itertools.pairwise(idx))
        assert frames[0].image.shape == (120, 160, 3)
        assert not frames[0].image.flags.writeable
        assert cam.health().state == "up"


async def test_burst_keeps_the_requested_spacing(folder: Path) -> None:
    settings = CameraSettings(name="replay", url=str(folder), replay_fps=40)
    async with Camera(settings) as cam:
        frames = await cam.burst(3, 0.1, timeout_s=20)
    assert len(frames) == 3
    gaps = [b.captured_at - a.captured_at for a, b in itertools.pairwise(frames)]
    assert all(g >= 0.1 for g in gaps)


async def test_a_slow_consumer_gets_the_newest_frame_not_a_backlog(folder: Path) -> None:
    settings = CameraSettings(name="replay", url=str(folder), replay_fps=50)
    async with Camera(settings) as cam:
        await wait_until(lambda: cam.latest() is not None)
        first = cam.latest()
        assert first is not None
        # the consumer looks away while the camera keeps capturing
        await wait_until(lambda: (f := cam.latest()) is not None and f.seq >= first.seq + 8)
        newest_at_request = cam.latest()
        assert newest_at_request is not None
        (frame,) = await cam.burst(1, 0.0, timeout_s=20)
    # a queueing driver would hand over first.seq + 1 here
    assert frame.seq > newest_at_request.seq


async def test_video_file_replay(tmp_path: Path) -> None:
    path = tmp_path / "pass.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25.0, (160, 120))
    assert writer.isOpened()
    for v in LEVELS:
        writer.write(np.full((120, 160, 3), v, np.uint8))
    writer.release()
    assert source_kind(str(path)) == "file"

    settings = CameraSettings(name="file", url=str(path), replay_fps=30)
    async with Camera(settings) as cam:
        frames = await cam.burst(8, 0.0, timeout_s=20)
        assert cam.health().state == "up"
    assert len(frames) == 8
    idx = [LEVELS.index(level(f)) for f in frames]
    # in order, and back to the start after the last frame
    assert all((b - a) % len(LEVELS) == 1 for a, b in itertools.pairwise(idx))


async def test_replay_without_loop_ends_down(folder: Path) -> None:
    settings = CameraSettings(name="once", url=str(folder), replay_fps=60, replay_loop=False)
    async with Camera(settings) as cam:
        await wait_until(lambda: cam.health().detail == "end of replay")
        assert cam.health().state == "down"
        assert cam.health().accepted == len(LEVELS)
        with pytest.raises(CameraTimeout):
            await cam.snapshot(timeout_s=0.3)


async def test_mjpeg_stream_shows_what_the_simulator_shows() -> None:
    async with MjpegServer(views=["front", "side"], fps=20) as srv:
        srv.show("front", solid((0, 0, 255)))
        srv.show("side", solid((255, 0, 0)))
        settings = CameraSettings(name="front", url=srv.url("front"), stall_timeout_s=3)
        async with Camera(settings) as cam:
            frames = await cam.burst(3, 0.0, timeout_s=20)
            assert [colour(f) for f in frames] == ["red"] * 3
            assert len({f.seq for f in frames}) == 3

            srv.show("front", solid((255, 0, 0)))
            # once the newest frame shows the change, no older picture comes back
            await wait_until(lambda: (f := cam.latest()) is not None and colour(f) == "blue")
            frames = await cam.burst(3, 0.0, timeout_s=20)
            assert [colour(f) for f in frames] == ["blue"] * 3

            snap = await cam.snapshot()
            assert colour(snap) == "blue"
            status = cam.status()
            assert status["state"] == "up"
            assert status["view"] == "front"
            assert isinstance(status["frames"], int)
            assert status["frames"] >= 7


async def test_reconnects_after_the_stream_dies_and_logs_each_change_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # state changes are logged as every device's are (drivers.supervisor.Health)
    caplog.set_level(logging.INFO, logger="drivers.supervisor")
    async with MjpegServer(views=["front"], fps=20) as srv:
        srv.show("front", solid((0, 0, 255)))
        settings = CameraSettings(
            name="front",
            url=srv.url("front"),
            stall_timeout_s=2,
            open_timeout_s=2,
            backoff_initial_s=0.05,
            backoff_max_s=0.5,
        )
        changes: list[str] = []
        async with Camera(settings, on_state=lambda h: changes.append(h.state)) as cam:
            await wait_until(lambda: cam.health().state == "up")
            await srv.stop()
            await wait_until(lambda: cam.health().state == "down")
            down = cam.health()
            # several failed attempts while the server is away
            await wait_until(lambda: cam.health().reconnects >= down.reconnects + 3)
            assert cam.health().state == "down"

            await srv.start()
            srv.show("front", solid((255, 0, 0)))
            await wait_until(lambda: cam.health().state == "up")
            frames = await cam.burst(2, 0.0, timeout_s=20)
            assert [colour(f) for f in frames] == ["blue", "blue"]

    assert changes == ["up", "down", "up"]
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "camera front down" in m]) == 1
    assert len([m for m in messages if "camera front up" in m]) == 2


async def test_a_stalled_stream_is_noticed_and_recovers() -> None:
    async with MjpegServer(views=["top"], fps=20) as srv:
        srv.show("top", solid((0, 0, 255)))
        settings = CameraSettings(
            name="top",
            url=srv.url("top"),
            stall_timeout_s=1,
            backoff_initial_s=0.05,
            backoff_max_s=0.5,
        )
        async with Camera(settings) as cam:
            await wait_until(lambda: cam.health().state == "up")
            srv.freeze("top")  # connection stays open, nothing arrives
            await wait_until(lambda: cam.health().state == "down")
            srv.freeze("top", False)
            await wait_until(lambda: cam.health().state == "up")
            assert cam.health().reconnects >= 1
            assert len(await cam.burst(2, 0.0, timeout_s=20)) == 2


async def test_a_camera_that_never_opens_is_down_and_bursts_come_back_empty(
    tmp_path: Path,
) -> None:
    settings = CameraSettings(
        name="gone", url=str(tmp_path / "missing.mp4"), backoff_initial_s=0.05, backoff_max_s=0.2
    )
    async with Camera(settings) as cam:
        await wait_until(lambda: cam.health().state == "down")
        assert "no such video file" in cam.health().detail
        assert await cam.burst(2, 0.0, timeout_s=0.3) == []


async def test_undecodable_images_are_counted_not_fatal(folder: Path) -> None:
    (folder / "0002b.jpg").write_bytes(b"\xff\xd8 garbage, not a jpeg")
    settings = CameraSettings(name="replay", url=str(folder), replay_fps=60)
    async with Camera(settings) as cam:
        await wait_until(lambda: cam.health().rejected >= 1)
        assert cam.health().state == "up"
        assert len(await cam.burst(2, 0.0, timeout_s=20)) == 2


async def test_mjpeg_frames_cut_short_never_carry_the_last_trucks_pixels() -> None:
    # A decoder fills the missing rows of a JPEG cut short from the previous frame: the last
    # truck's plate, read again for the next. Such parts are refused, counted, and a stream of
    # nothing else is down, saying why.
    async with MjpegServer(views=["front"], fps=20) as srv:
        srv.show("front", solid((255, 255, 255)))  # truck A
        settings = CameraSettings(
            name="front", url=srv.url("front"), stall_timeout_s=1, backoff_initial_s=0.05
        )
        async with Camera(settings) as cam:
            await wait_until(lambda: cam.health().state == "up")
            black = bytes(cv2.imencode(".jpg", solid((0, 0, 0)))[1])
            srv.show("front", black[: len(black) * 6 // 10])  # truck B, every part cut short
            shown = cam.health().rejected
            await wait_until(lambda: cam.health().rejected > shown + 5)
            assert cam.health().accepted + cam.health().rejected > 0
            frames = await cam.burst(3, 0.0, timeout_s=1.5)
            assert frames == []  # nothing fresh, and never truck A again
            await wait_until(lambda: cam.health().state == "down")
            assert "none can be used: JPEG cut short" in cam.health().detail
            srv.show("front", black)  # whole again
            await wait_until(lambda: cam.health().state == "up")
            (frame,) = await cam.burst(1, 0.0, timeout_s=20)
            assert frame.image.max() < 30


async def test_a_frame_larger_than_any_camera_gives_is_refused_before_it_is_decoded() -> None:
    huge = bytes(
        cv2.imencode(
            ".jpg", np.full((6000, 9000, 3), 90, np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 30]
        )[1]
    )
    async with MjpegServer(views=["front"], fps=5) as srv:
        srv.show("front", huge)
        settings = CameraSettings(name="front", url=srv.url("front"), stall_timeout_s=2)
        async with Camera(settings) as cam:
            await wait_until(lambda: cam.health().rejected >= 2)
            assert cam.latest() is None
            await wait_until(lambda: cam.health().state == "down")
            assert "9000x6000 pixels: more than any lane camera gives" in cam.health().detail


async def test_a_folder_replay_skips_pictures_cut_short_or_too_large(folder: Path) -> None:
    whole = (folder / "0000.png").read_bytes()
    (folder / "0001.png").write_bytes(whole[: len(whole) // 2])
    cv2.imwrite(str(folder / "0002.png"), np.zeros((9000, 9000, 3), np.uint8))
    settings = CameraSettings(name="replay", url=str(folder), replay_fps=60)
    async with Camera(settings) as cam:
        await wait_until(lambda: cam.health().rejected >= 2)
        seen = {level(f) for f in await cam.burst(8, 0.0, timeout_s=20)}
    assert LEVELS[1] not in seen
    assert LEVELS[2] not in seen


def test_grab_frame_reads_one_picture(folder: Path) -> None:
    frame = grab_frame(CameraSettings(name="replay", url=str(folder)))
    assert level(frame) == LEVELS[0]


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("rtsp://admin:pw@10.1.2.3:554/Streaming/Channels/101", "rtsp"),
        ("https://cam.local/mjpg/video.mjpg", "http"),
        ("/dev/video2", "device"),
    ],
)
def test_source_kinds(url: str, kind: str) -> None:
    assert source_kind(url) == kind
    assert CameraSettings(name="v", url=url).url == url


@pytest.mark.parametrize(
    "fields",
    [
        {"url": "ftp://cam/x"},
        {"url": "/dev/video0", "bogus": 1},
        {"url": "/dev/video0", "name": "front cam"},
        {"url": "/dev/video0", "backoff_initial_s": 5, "backoff_max_s": 1},
        {"url": "/dev/video0", "burst_frames": 10, "burst_interval_s": 1, "burst_timeout_s": 5},
        {"url": "rtsp://admin:pw@10.0.0.5:554a/stream1"},  # no port: the thread died on it
    ],
)
def test_bad_settings_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as err:
        CameraSettings.model_validate({"name": "front", **fields})
    assert all(":pw@" not in e["msg"] for e in err.value.errors())  # nor a password shown
