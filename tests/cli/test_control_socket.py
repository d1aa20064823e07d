"""The lane's control socket served for a lane built on the simulated devices (not running: the
socket answers from the core's state and queues overrides): requests it cannot read get an
error and the socket goes on; it never takes the place of a file, nor of a lane that runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.modbus_io import RelayIO
from gatewayd import control
from gatewayd.control import ControlSocketError, request, serve
from gatewayd.daemon import Lane
from gatewayd.runner import build_sources
from tests.sim.harness import lane_config, sim_sources


def _lane(tmp_path: Path) -> Lane:
    config = lane_config(tmp_path, relay_port=1)
    return Lane(config, RelayIO(config.relay), build_sources(config, sim_sources()))


@contextlib.asynccontextmanager
async def serving(lane: Lane, path: Path) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(serve(lane, path))
    async with asyncio.timeout(5):
        while True:  # served once it answers (a stale socket file may be there before)
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_unix_connection(str(path))
                writer.close()
                break
            await asyncio.sleep(0.01)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _raw(path: Path, line: bytes) -> bytes:
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(line)
        await writer.drain()
        async with asyncio.timeout(5):
            return await reader.readline()
    finally:
        writer.close()


async def test_unreadable_requests_get_an_error_and_the_socket_goes_on(tmp_path: Path) -> None:
    sock = tmp_path / "control.sock"
    async with serving(_lane(tmp_path), sock):
        for line, error in (
            (b"\xff\xfe{}\n", "not UTF-8"),
            (b"[" * 100_000 + b"\n", "request too long"),
            (b"[" * 3000 + b"\n", "not JSON"),
            (b'{"cmd": 1e999999}\n', "unknown cmd"),
            (b"[1]\n", "expected a JSON object"),
        ):
            answer = json.loads(await _raw(sock, line))
            assert error in answer["error"], (line[:20], answer)
        status = await request(sock, {"cmd": "status"})
        assert status["phase"] == "idle"


async def test_a_client_that_never_finishes_its_line_is_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(control, "IDLE_S", 0.2)
    sock = tmp_path / "control.sock"
    async with serving(_lane(tmp_path), sock):
        reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(b'{"cmd": "sta')
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # the lane hung up on it
        writer.close()
        assert (await request(sock, {"cmd": "status"}))["phase"] == "idle"


async def test_the_socket_never_replaces_a_file_or_a_running_lane_s_socket(tmp_path: Path) -> None:
    lane = _lane(tmp_path)
    config = tmp_path / "lane.toml"
    config.write_text("[lane]\n", encoding="utf-8")
    with pytest.raises(ControlSocketError, match="not a socket"):
        await serve(lane, config)  # a mistyped path
    assert config.read_text(encoding="utf-8") == "[lane]\n"
    sock = tmp_path / "control.sock"
    async with serving(lane, sock):
        with pytest.raises(ControlSocketError, match="started twice"):
            await serve(lane, sock)
        assert (await request(sock, {"cmd": "status"}))["phase"] == "idle"
    # a socket left by a run that ended is taken over
    stale = await asyncio.start_unix_server(lambda r, w: None, path=str(sock))
    stale.close()
    await stale.wait_closed()
    assert sock.exists()
    async with serving(lane, sock):
        assert (await request(sock, {"cmd": "status"}))["phase"] == "idle"


async def test_a_lane_that_hangs_up_is_an_error_not_a_crash(tmp_path: Path) -> None:
    sock = tmp_path / "control.sock"

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.close()

    async with await asyncio.start_unix_server(hang_up, path=str(sock)):
        answer = await request(sock, {"cmd": "status"})
    assert answer == {"error": "the lane closed the connection"}


def test_gatewayd_run_names_the_part_that_could_not_start() -> None:
    from gatewayd.cli import _cannot_start

    cause = ControlSocketError("/run/x.sock exists and is not a socket: not replacing it")
    nested = ExceptionGroup("lane", [ExceptionGroup("parts", [cause]), RuntimeError("later")])
    assert _cannot_start(nested) is cause
    assert _cannot_start(ExceptionGroup("lane", [RuntimeError("a bug")])) is None
