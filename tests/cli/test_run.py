"""`gatewayd run` as an operator starts it: one lane per ledger, clear errors for a ledger or a
socket it cannot have, and a stop that finishes what is in hand. Devices are configured but
absent (every address is a closed port on 127.0.0.1): the lane runs with them down."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from pathlib import Path

import pytest

from tests.commands import EXAMPLE_CONFIG, GATEWAYCTL, GATEWAYD, ROOT, gatewayd, run


def lane_config(tmp_path: Path, *, ledger: Path | None = None, socket: Path | None = None) -> Path:
    """The example config, its paths under ``tmp_path`` and its devices at closed local ports."""
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    for old, new in [
        ("/var/lib/gatewayd/ledger.db", str(ledger or tmp_path / "ledger.db")),
        ("/var/lib/gatewayd/evidence", str(tmp_path / "evidence")),
        ("/run/gatewayd/control.sock", str(socket or tmp_path / "control.sock")),
        ('host = "10.20.3.50"', 'host = "127.0.0.1"'),
        ("port = 502", "port = 9"),
        ("tcp://10.20.3.70:4001", "tcp://127.0.0.1:9"),
        ("/dev/ttyACM0", str(tmp_path / "no-scanner")),
        ("/dev/ttyUSB0", str(tmp_path / "no-scale")),
        ("/dev/ttyUSB1", str(tmp_path / "no-reader")),
    ]:
        assert old in text, old
        text = text.replace(old, new)
    for host in ("10.20.3.61:554", "10.20.3.62:554", "10.20.3.63:554", "10.20.3.64"):
        assert host in text, host
        text = text.replace(host, "127.0.0.1:9")
    assert "10.20." not in text
    text += "\n[recognition]\nworkers = 1\n"
    path = tmp_path / "lane.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def start(config: Path, log: Path | None = None) -> asyncio.subprocess.Process:
    """``gatewayd run``; its output to ``log`` (a lane that runs on logs more than a pipe
    holds, and would block on it), else to pipes for ``communicate``."""
    out = log.open("wb") if log else asyncio.subprocess.PIPE
    try:
        return await asyncio.create_subprocess_exec(
            *GATEWAYD, "run", "--config", str(config), cwd=ROOT, stdout=out, stderr=out,
        )  # fmt: skip
    finally:
        if log:
            out.close()  # type: ignore[union-attr]


async def until_up(socket: Path, limit_s: float = 60) -> None:
    async with asyncio.timeout(limit_s):
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(str(socket))
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.write(b'{"cmd": "status"}\n')
            line = await reader.readline()
            writer.close()
            if "phase" in json.loads(line):
                return


async def settled(ledger: Path, quiet_s: float = 3.0, limit_s: float = 60) -> list[tuple[str, str]]:
    """The outbox once a lane has written nothing to it for ``quiet_s`` (its absent devices
    each raise a fault alert as they fail to open)."""
    async with asyncio.timeout(limit_s):
        rows = outbox(ledger)
        while True:
            await asyncio.sleep(quiet_s)
            now = outbox(ledger)
            if now == rows:
                return rows
            rows = now


def outbox(ledger: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(ledger) as db:
        return db.execute("SELECT kind, payload FROM outbox ORDER BY seq").fetchall()


async def test_a_second_lane_on_the_same_ledger_is_refused_before_it_touches_anything(
    tmp_path: Path,
) -> None:
    config = lane_config(tmp_path)
    first = await start(config, log=tmp_path / "first.log")
    try:
        await until_up(tmp_path / "control.sock")
        before = await settled(tmp_path / "ledger.db")  # its own devices' faults are in
        second = await start(config)
        _, err = await asyncio.wait_for(second.communicate(), 60)
        assert second.returncode == 1
        assert "is in use by another lane process (is this lane started twice?)" in err.decode()
        assert "Traceback" not in err.decode()
        # it opened no device and wrote nothing: central hears of no fault on a healthy lane
        assert outbox(tmp_path / "ledger.db") == before
        first.send_signal(signal.SIGTERM)
        await asyncio.wait_for(first.wait(), 20)
        assert first.returncode == 0
    finally:
        if first.returncode is None:
            first.kill()
            await asyncio.wait_for(first.wait(), 20)


@pytest.mark.parametrize("case", ["a folder", "not a database", "under a file"])
def test_a_ledger_the_lane_cannot_open_is_named_without_a_traceback(
    tmp_path: Path, case: str
) -> None:
    ledger = tmp_path / "ledger.db"
    if case == "a folder":
        ledger.mkdir()
        why = "unable to open database file"
    elif case == "not a database":
        ledger.write_bytes(b"these are not the pages of a ledger\n" * 200)
        why = "file is not a database"
    else:
        (tmp_path / "plain").write_text("a file")
        ledger = tmp_path / "plain" / "ledger.db"
        why = "File exists"  # what mkdir says of the file where the folder should be
    result = gatewayd("run", "--config", str(lane_config(tmp_path, ledger=ledger)), timeout=120)
    assert result.returncode == 1
    assert f"ledger {ledger}" in result.stderr
    assert why in result.stderr
    assert "Traceback" not in result.stderr


def test_a_control_socket_that_cannot_be_made_is_named_without_a_traceback(
    tmp_path: Path,
) -> None:
    (tmp_path / "plain").write_text("a file")
    socket = tmp_path / "plain" / "control.sock"
    result = gatewayd("run", "--config", str(lane_config(tmp_path, socket=socket)), timeout=120)
    assert result.returncode == 1
    assert f"cannot serve {socket}: File exists" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_config_is_runnable_as_the_tests_write_it(tmp_path: Path) -> None:
    result = run(GATEWAYCTL, "config", "validate", str(lane_config(tmp_path)), timeout=60)
    assert result.returncode == 0, result.stderr
