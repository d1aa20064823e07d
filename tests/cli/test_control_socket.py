"""The lane's control socket served for a lane built on the simulated devices (not running: the
socket answers from the core's state and queues overrides): requests it cannot read get an
error and the socket goes on; it never takes the place of a file, nor of a lane that runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from drivers.modbus_io import RelayIO
from gatewayd import control
from gatewayd.control import ControlSocketError, may_override, request, serve
from gatewayd.daemon import Lane
from gatewayd.runner import build_sources
from tests.commands import GATEWAYCTL, example_config, run_async
from tests.sim.harness import lane_config, sim_sources


def _lane(tmp_path: Path) -> Lane:
    config = lane_config(tmp_path, relay_port=1)
    return Lane(config, RelayIO(config.relay), build_sources(config, sim_sources()))


@contextlib.asynccontextmanager
async def serving(
    lane: Lane, path: Path, officers_group: str | None = None
) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(serve(lane, path, officers_group=officers_group))
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


async def test_connections_beyond_the_limit_are_turned_away_and_the_lane_still_answers(
    tmp_path: Path,
) -> None:
    sock = tmp_path / "control.sock"
    async with serving(_lane(tmp_path), sock):
        held = [await asyncio.open_unix_connection(str(sock)) for _ in range(control.MAX_CLIENTS)]
        assert (await request(sock, {"cmd": "status"})) == {"error": "too many connections"}
        for _, writer in held:
            writer.close()
        for _ in range(100):  # until the server has seen them go (at most 5 s)
            answer = await request(sock, {"cmd": "status"})
            if "error" not in answer:
                break
            await asyncio.sleep(0.05)
        assert answer["phase"] == "idle"


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


def test_who_may_override_is_root_and_the_officers_group() -> None:
    assert may_override(0, "nogroup")  # root always
    assert may_override(65534, None)  # no group set: whoever reaches the socket
    assert may_override(65534, "nogroup")  # nobody's own group
    assert not may_override(65534, "root")
    assert not may_override(65534, "no-such-group")


SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder any user may reach (pytest's own are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="gatewayd-ctl-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another user")
@pytest.mark.skipif(not os.access(SYSTEM_PYTHON, os.X_OK), reason="no system python")
async def test_a_user_outside_the_officers_group_gets_status_but_no_override(
    open_folder: Path,
) -> None:
    sock = open_folder / "control.sock"
    async with serving(_lane(open_folder), sock, officers_group="root"):
        os.chmod(sock, 0o666)  # so that "nobody" reaches it at all
        ask = (
            "import json, socket, sys\n"
            "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
            "for line in sys.argv[2:]:\n"
            "    s.sendall(line.encode() + b'\\n')\n"
            "    print(s.makefile().readline(), end='')\n"
        )
        override = {"cmd": "override", "action": "release", "officer": "O-7", "reason": "r"}
        process = await asyncio.create_subprocess_exec(
            SYSTEM_PYTHON, "-c", ask, str(sock), json.dumps({"cmd": "status"}),
            json.dumps(override), user=65534, group=65534,
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(process.communicate(), 10)
        status, refused = (json.loads(line) for line in out.decode().splitlines())
        assert status["phase"] == "idle"
        assert refused == {"error": "user nobody may not override: not in group 'root'"}
        # root is always an officer: its override gets as far as the lane's own checks
        answer = await request(sock, override)
        assert "no held or rejected pass" in str(answer["error"])


async def test_an_officers_group_that_does_not_exist_stops_the_socket(tmp_path: Path) -> None:
    with pytest.raises(ControlSocketError, match="no group here"):
        await serve(_lane(tmp_path), tmp_path / "c.sock", officers_group="no-such-group")


async def test_gatewayctl_says_why_when_a_hung_lane_never_answers(tmp_path: Path) -> None:
    sock = tmp_path / "control.sock"

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    async with await asyncio.start_unix_server(never_answer, path=str(sock)):
        code, _, err = await run_async(GATEWAYCTL, "status", "--socket", str(sock), limit_s=30)
    assert code == 1
    assert f"lane not reachable at {sock}: no answer (the lane is busy or hung)" in err


async def test_a_malformed_seal_id_is_refused_before_the_reader_is_opened(tmp_path: Path) -> None:
    config = tmp_path / "lane.toml"
    config.write_text(example_config(), encoding="utf-8")  # its reader's port does not exist
    code, _, err = await run_async(
        GATEWAYCTL, "device", "eseal", "arm", "es00000001", "--config", str(config)
    )
    assert code == 1
    assert "arm: seal id 'es00000001' is not 1-32 of 0-9 A-Z -" in err
    assert "Traceback" not in err
