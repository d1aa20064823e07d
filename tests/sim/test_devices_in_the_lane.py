"""The lane with every field device on its real wire protocol over a pty: weighbridge (Toledo),
e-seal reader, GPS (NMEA), QR scanner."""

from __future__ import annotations

import asyncio

import pytest

from gatewayd.reasons import Outcome
from sim.run import simulate
from sim.scenario import generate


@pytest.mark.slow
def test_seals_are_unlocked_after_a_release_and_only_then() -> None:
    report = asyncio.run(simulate(generate(60, seed=11), seed=11, fast=True))
    assert report.summary()["wrong"] == 0
    released = {
        r.vehicle.seal.id
        for r in report.results
        if r.outcome is Outcome.RELEASE and r.vehicle.seal is not None
    }
    assert report.seals_unlocked is not None
    assert set(report.seals_unlocked) == released
    assert len(report.seals_unlocked) == len(released)  # each once
