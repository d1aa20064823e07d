"""Weighbridge and e-seal figures: codec throughput, and the reader's command latency on a pty.

Run: ``python -m bench.serial_devices`` (prints a table; takes about 10 s).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Callable

from pydantic import SecretStr

from drivers.eseal import (
    EsealReader,
    EsealSettings,
    MessageDecoder,
    SealReading,
    encode_frame,
    read_seal_payload,
)
from drivers.weighbridge import (
    ToledoDecoder,
    Xk3190Decoder,
    toledo_frame,
    xk3190_equals_frame,
    xk3190_frame,
)
from sim.eseal_device import EsealReaderSim


def throughput(name: str, make: Callable[[], object], stream: bytes, frames: int) -> None:
    """Decode ``stream`` in 64-byte reads, best of 5; print frames per second."""
    best = float("inf")
    for _ in range(5):
        decoder = make()
        start = time.perf_counter()
        for i in range(0, len(stream), 64):
            decoder.feed(stream[i : i + 64])  # type: ignore[attr-defined]
        best = min(best, time.perf_counter() - start)
    print(f"{name:<34} {frames / best:>12,.0f} frames/s  {len(stream) / best / 1e6:6.1f} MB/s")


def codecs() -> None:
    rng = random.Random(1)
    n = 20_000
    weights = [rng.randrange(60_000) for _ in range(n)]
    throughput(
        "toledo (18-byte, checksum)",
        ToledoDecoder,
        b"".join(toledo_frame(w, motion=w % 7 == 0) for w in weights),
        n,
    )
    throughput("xk3190 tF=0 (STX, XOR)", Xk3190Decoder, b"".join(map(xk3190_frame, weights)), n)
    throughput(
        "xk3190 tF=1 ('=' reversed)",
        Xk3190Decoder,
        b"".join(map(xk3190_equals_frame, weights)),
        n,
    )
    seal = SealReading("CN1234567", "sealed", 87, 3)
    responses = b"".join(
        encode_frame(1, i & 0xFF, 0x90, read_seal_payload(seal, rng.randbytes(8))) for i in range(n)
    )
    throughput("e-seal read_seal responses", lambda: MessageDecoder("responses"), responses, n)
    noisy = bytearray(b"".join(map(xk3190_frame, weights)))
    for _ in range(len(noisy) // 50):  # a flipped bit every 50 bytes
        noisy[rng.randrange(len(noisy))] ^= 1 << rng.randrange(8)
    throughput("xk3190 tF=0, 1 bit in 400 flipped", Xk3190Decoder, bytes(noisy), n)


async def command_latency() -> None:
    """Unlock + arm through the driver while it polls every 250 ms, against the simulator."""
    key = bytes(range(16))
    async with EsealReaderSim(key) as sim:
        sim.set_seal("CN1234567")
        reader = EsealReader(EsealSettings(port=sim.path, key=SecretStr(key.hex())))
        up = asyncio.Event()
        supervisor = reader.supervisor(
            lambda reading: None, lambda health: up.set() if health.state == "up" else None
        )
        task = asyncio.create_task(supervisor.run())
        try:
            await up.wait()
            times = []
            for i in range(40):
                await asyncio.sleep(0.013 * (i % 20))  # land at different points of a poll
                start = time.perf_counter()
                await (reader.unlock if i % 2 == 0 else reader.arm)("CN1234567")
                times.append((time.perf_counter() - start) * 1000)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    times.sort()
    print(
        f"{'e-seal unlock/arm over a pty (ms)':<34} p50 {statistics.median(times):5.2f}"
        f"  p95 {times[int(len(times) * 0.95)]:5.2f}  max {times[-1]:5.2f}  (n={len(times)},"
        " 2 exchanges each)"
    )


def main() -> None:
    """Print the figures."""
    codecs()
    asyncio.run(command_latency())


if __name__ == "__main__":
    main()
