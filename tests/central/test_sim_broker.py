"""`gatewayd sim --broker`: the simulated lane and central through a real Mosquitto."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from sim.central import SimCentral
from sim.central_server import SimCentralServer
from sim.mosquitto import Broker, mosquitto_available
from sim.run import simulate
from sim.scenario import generate
from tests.commands import gatewayd


@pytest.mark.slow
async def test_with_the_broker_down_all_run_the_lane_decides_and_delivers_when_it_returns(
    tmp_path: Path,
) -> None:
    if not mosquitto_available():
        pytest.skip("mosquitto is not installed")
    broker = Broker(tmp_path / "broker")
    # central's persistent session exists at the broker from before the run (as at a real
    # site), so what the lane publishes when the broker returns is queued for central
    broker.start()
    try:
        await SimCentralServer(SimCentral(), "sim-site", "127.0.0.1", broker.port).register()
    finally:
        await asyncio.to_thread(broker.stop)  # saved; now down for the whole run
    back: list[float] = []

    async def broker_returns() -> None:
        await asyncio.to_thread(broker.start)
        back.append(time.monotonic())

    try:
        report = await simulate(
            generate(200, 1),
            seed=1,
            fast=True,
            workdir=tmp_path / "work",
            broker=("127.0.0.1", broker.port),
            after_traffic=broker_returns,
        )
    finally:
        broker.kill()
    summary = report.summary()
    assert summary["vehicles"] == 200
    assert summary["wrong"] == 0
    assert report.collisions == 0
    central = summary["central"]
    assert central["passes"] == 200
    assert central["delivered"] == 200
    assert central["missing"] == 0
    assert central["delivered_s"] is not None
    assert central["delivered_s"] <= 10.0  # from the broker's return
    assert central["ledger_synced"]  # and the lane took central's confirmations back
    assert central["alerts"] > 0  # holds and rejects were alerted through the outbox too


def test_gatewayd_sim_with_a_broker_reports_what_central_received(broker: Broker) -> None:
    result = gatewayd(
        "sim",
        "--vehicles",
        "20",
        "--seed",
        "4",
        "--fast",
        "--json",
        "--broker",
        broker.address,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["wrong"] == 0
    assert summary["central"]["delivered"] == summary["central"]["passes"] == 20
    assert summary["central"]["missing"] == 0


def test_gatewayd_sim_refuses_a_broker_address_that_is_not_host_and_port() -> None:
    result = gatewayd("sim", "--vehicles", "1", "--fast", "--broker", "localhost", timeout=300)
    assert result.returncode == 2
    assert "HOST:PORT" in result.stderr
