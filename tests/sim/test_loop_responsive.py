"""No call on the lane's event loop blocks it: asyncio debug mode reports any callback that
holds the loop longer than 50 ms, and a whole simulated run must produce none."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from sim.run import simulate
from sim.scenario import generate


@pytest.mark.slow
def test_no_callback_holds_the_loop_over_50_ms(caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        loop.slow_callback_duration = 0.05
        report = await simulate(generate(30, seed=3), seed=3, fast=True)
        assert report.summary()["wrong"] == 0

    # The test process carries every earlier test's objects; a full garbage collection over
    # them is a pause of the test runner, not of the lane (which freezes its start-up heap
    # the same way): leave them out of collections.
    gc.collect()
    gc.freeze()
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        asyncio.run(run(), debug=True)
    gc.unfreeze()
    slow = [r.getMessage() for r in caplog.records if "took" in r.getMessage()]
    assert slow == []
