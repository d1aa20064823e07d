"""The one opener every serial driver uses: device paths, tcp://host:port, a port locked
against a second reader, stale bytes dropped on open, and a clean close of a pulled cable."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import serial
from pydantic import ValidationError

from drivers.eseal import EsealSettings
from drivers.gps import GpsSettings
from drivers.qr import QrScannerSettings
from drivers.serial_link import (
    KEEPALIVE,
    PYSERIAL_SCHEMES,
    SerialPortSettings,
    open_line,
    open_serial,
)
from drivers.weighbridge import WeighbridgeSettings
from sim.ptyport import PtyPort

KEY = "00" * 16


@pytest.fixture
async def pty() -> AsyncIterator[PtyPort]:
    port = PtyPort()
    port.open()
    try:
        yield port
    finally:
        port.close()


async def test_a_pty_path_reads_what_the_device_sends_after_the_open(pty: PtyPort) -> None:
    pty.write(b"from before the gap\r\n")  # waits in the line until someone opens it
    async with open_serial(SerialPortSettings(port=pty.path)) as (reader, _writer):
        pty.write(b"fresh\r\n")
        assert await asyncio.wait_for(reader.readuntil(b"\n"), 2) == b"fresh\r\n"


async def test_a_second_reader_of_an_open_port_is_refused(pty: PtyPort) -> None:
    async with open_line(pty.path) as (reader, _writer):
        with pytest.raises(OSError, match="lock"):
            async with open_line(pty.path):
                pass
        pty.write(b"still ours\n")
        assert await asyncio.wait_for(reader.readuntil(b"\n"), 2) == b"still ours\n"


async def test_a_pulled_cable_closes_without_an_error(pty: PtyPort) -> None:
    async with open_line(pty.path) as (reader, _writer):
        pty.unplug()
        with contextlib.suppress(OSError):  # the read fails (or ends): the port is gone
            while await asyncio.wait_for(reader.read(100), 2):
                pass
        # leaving the block closes the vanished port without raising
    with pytest.raises(OSError, match="No such file"):
        async with open_line(pty.path):
            pass  # the port is gone until the cable is back


# tcp:// is our own socket; socket:// is pyserial's URL handler on an asyncio socket
@pytest.mark.parametrize("scheme", ["tcp", "socket"])
async def test_a_network_port_opens_and_reads(scheme: str) -> None:
    async def greet(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"$GPTXT,hello*00\r\n")
        await writer.drain()

    server = await asyncio.start_server(greet, "127.0.0.1", 0)
    async with server:
        port = f"{scheme}://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        async with open_serial(SerialPortSettings(port=port)) as (reader, writer):
            assert await asyncio.wait_for(reader.readuntil(b"\n"), 2) == b"$GPTXT,hello*00\r\n"
            # an idle line is probed: a serial server gone without a word fails the read
            sock = writer.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == KEEPALIVE[0]
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == KEEPALIVE[2]


async def test_a_network_port_that_does_not_answer_fails_within_the_connect_timeout() -> None:
    # a listener whose accept queue is full drops new connections: the connect hangs, as to a
    # host that has gone away
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    fillers = [socket.socket() for _ in range(3)]
    for f in fillers:
        f.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            f.connect(address)
    try:
        for scheme in ("tcp", "socket"):
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(OSError, match=r"no answer within 0\.5 s"):
                async with open_line(f"{scheme}://127.0.0.1:{address[1]}", connect_timeout_s=0.5):
                    pass
            assert loop.time() - started < 2.0, scheme
    finally:
        for s in (*fillers, listener):
            s.close()


@pytest.mark.parametrize(
    "make",
    [
        lambda port: WeighbridgeSettings(port=port, format="toledo"),
        lambda port: EsealSettings(port=port, key=KEY),
        lambda port: GpsSettings(port=port),
        lambda port: QrScannerSettings(port=port),
    ],
    ids=["weighbridge", "eseal", "gps", "qr"],
)
def test_every_serial_driver_takes_the_same_port_forms(make: Callable[[str], Any]) -> None:
    good = (
        "/dev/ttyUSB0",
        "socket://127.0.0.1:7001",
        "rfc2217://10.0.0.5:4001",
        "tcp://127.0.0.1:10110",
        "TCP://127.0.0.1:10110",
    )
    for port in good:
        assert make(port).port == port
    for bad in ("", "  ", "tcp://host-without-port", "tcp://:10110", "sockt://127.0.0.1:7001"):
        with pytest.raises(ValidationError):
            make(bad)


def test_a_mistyped_url_scheme_is_a_config_error_naming_it() -> None:
    with pytest.raises(ValidationError, match=r"unknown URL scheme 'sockt'.*socket://"):
        GpsSettings(port="sockt://127.0.0.1:7001")


def test_pyserial_s_loopback_is_a_config_error_not_a_silent_device() -> None:
    with pytest.raises(ValidationError, match=r"loop:// is pyserial's loopback, not a device"):
        GpsSettings(port="loop://")


def test_the_url_schemes_accepted_are_the_ones_pyserial_can_open() -> None:
    handlers = Path(serial.__file__).parent / "urlhandler"
    assert {p.stem.removeprefix("protocol_") for p in handlers.glob("protocol_*.py")} == set(
        PYSERIAL_SCHEMES
    )


@pytest.mark.parametrize(
    ("model", "values"),
    [
        ("weighbridge", {"format": "toledo", "stability": {"band_kg": "inf"}}),  # all "stable"
        ("weighbridge", {"format": "toledo", "stability": {"capacity_kg": "inf"}}),
        ("eseal", {"response_timeout_s": "inf", "key": "00" * 16}),  # never reported down
        ("gps", {"silence_s": "inf"}),
        ("qr", {"idle_gap_s": "nan"}),
    ],
)
def test_settings_refuse_infinity_and_nan_which_would_switch_a_check_off(
    model: str, values: dict[str, object]
) -> None:
    cls = {
        "weighbridge": WeighbridgeSettings,
        "eseal": EsealSettings,
        "gps": GpsSettings,
        "qr": QrScannerSettings,
    }[model]
    with pytest.raises(ValidationError) as err:
        cls.model_validate({"port": "/dev/ttyUSB0", **values})
    assert [e["type"] for e in err.value.errors()] == ["finite_number"]
