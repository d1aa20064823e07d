"""Camera path figures: capture from the simulated MJPEG camera, bursts, loop lag, renders.

    .venv/bin/python -m bench.camera [--seconds 5]

Prints: frames per second the driver takes from a 25 frame/s stream at 1280x720 and 1920x1080,
the process CPU while capturing, how long a burst of 5 frames 0.2 s apart takes, the worst
event-loop lag while bursts run, render time per synthetic scene, and evidence writes per
second. Figures are from this machine only; re-run before quoting them.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

from drivers.camera import Camera, CameraSettings
from recognition.evidence import EvidenceStore
from sim.camera_server import MjpegServer
from sim.render import ContainerMarking, render_container_view, render_plate_scene


async def lag_probe(stop: asyncio.Event, lags: list[float]) -> None:
    """Sleep 10 ms again and again; record how late each wake-up is."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        t = loop.time()
        await asyncio.sleep(0.01)
        lags.append(loop.time() - t - 0.01)


async def capture(seconds: float) -> None:
    plate = render_plate_scene("沪A12345", "blue", seed=1, difficulty=0.5).image
    box = render_container_view(ContainerMarking("MSKU1234565"), "side", 1, difficulty=0.5).image
    async with MjpegServer(views=["plate", "side"], fps=25) as srv:
        await srv.show_async("plate", plate)
        await srv.show_async("side", box)
        for view, shape in (("plate", plate.shape), ("side", box.shape)):
            settings = CameraSettings(name=view, url=srv.url(view), burst_timeout_s=10)
            async with Camera(settings) as cam:
                await cam.burst(1, timeout_s=20)  # connected and streaming
                f0, c0, t0 = cam.health().accepted, time.process_time(), time.monotonic()
                await asyncio.sleep(seconds)
                frames = cam.health().accepted - f0
                cpu = (time.process_time() - c0) / (time.monotonic() - t0)
                stop, lags = asyncio.Event(), []
                probe = asyncio.create_task(lag_probe(stop, lags))
                took = []
                for _ in range(5):
                    t = time.monotonic()
                    got = await cam.burst(5, 0.2)
                    took.append(time.monotonic() - t)
                    assert len(got) == 5
                stop.set()
                await probe
            print(
                f"{view:5s} {shape[1]}x{shape[0]}: {frames / seconds:5.1f} frames/s captured, "
                f"process CPU {cpu * 100:4.0f} % of one core (server included), "
                f"burst of 5 @0.2 s median {statistics.median(took) * 1000:4.0f} ms, "
                f"worst loop lag {max(lags) * 1000:4.1f} ms"
            )


def renders() -> None:
    box = ContainerMarking("MSKU1234565", "45G1")
    jobs = {
        "plate scene 1280x720": lambda s: render_plate_scene("沪A12345", "blue", s),
        "container side 1920x1080": lambda s: render_container_view(box, "side", s),
        "container top 1920x1080": lambda s: render_container_view(box, "top", s),
    }
    for name, job in jobs.items():
        job(0)  # font and glyph caches
        times = []
        for seed in range(1, 6):
            t = time.perf_counter()
            job(seed)
            times.append(time.perf_counter() - t)
        print(f"render {name}: median {statistics.median(times) * 1000:4.0f} ms over 5")


def evidence() -> None:
    crop = render_plate_scene("沪A12345", "blue", seed=1).image[300:348, 500:660].copy()
    with tempfile.TemporaryDirectory() as d:
        store = EvidenceStore(d, 20 * 1024 * 1024)
        t = time.perf_counter()
        for i in range(300):
            store.save_crop(f"pass-{i // 3}", "plate", crop)
        dt = time.perf_counter() - t
        print(f"evidence: {300 / dt:5.0f} crops/s (160x48 JPEG, {store.stats().bytes} bytes kept)")


def main() -> None:
    """Run the measurements and print one line each."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0, help="capture window per view")
    args = ap.parse_args()
    asyncio.run(capture(args.seconds))
    renders()
    evidence()


if __name__ == "__main__":
    main()
