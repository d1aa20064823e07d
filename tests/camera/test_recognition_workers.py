"""The OCR workers: one that dies (killed for memory, a crash in native code) costs the read in
hand, not every read after it."""

from __future__ import annotations

import os
import signal
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import cv2
import pytest

from gatewayd.cameras import Recognition


async def test_a_killed_worker_is_replaced_and_the_next_pass_is_read(shared_data: Path) -> None:
    folder = shared_data / "plates" / "scenes"
    scene = cv2.imread(str(sorted(folder.glob("*.jpg"))[0]))
    assert scene is not None
    recognition = Recognition(workers=1, evidence=None)
    async with recognition.use():
        assert (await recognition.read_plate([[scene]], 0.5)).text
        pool = recognition.pool
        assert pool is not None
        for pid in list(pool._processes):  # the kernel's OOM killer, say
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):
            await recognition.read_plate([[scene]], 0.5)
        fused = await recognition.read_plate([[scene]], 0.5)  # new workers, same answer
        assert fused.text
        assert recognition.pool is not pool
