"""The simulated MJPEG camera: real HTTP multipart on loopback, robust to rude clients."""

from __future__ import annotations

import asyncio
import re

import cv2
import numpy as np
import pytest

from sim.camera_server import MjpegServer


def solid(bgr: tuple[int, int, int]) -> np.ndarray:
    img = np.zeros((90, 160, 3), np.uint8)
    img[:] = bgr
    return img


async def request(srv: MjpegServer, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(srv.host, srv.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {srv.host}\r\n\r\n".encode())
    await writer.drain()
    return reader, writer


async def read_part(reader: asyncio.StreamReader) -> np.ndarray:
    """Read one multipart part the way any MJPEG client does and decode its JPEG."""
    async with asyncio.timeout(20):
        head = await reader.readuntil(b"\r\n\r\n")
        while not head.lstrip().startswith(b"--"):  # skip the HTTP response head
            head = await reader.readuntil(b"\r\n\r\n")
        m = re.search(rb"Content-Length: (\d+)", head)
        assert m is not None
        assert b"Content-Type: image/jpeg" in head
        body = await reader.readexactly(int(m.group(1)))
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def red(image: np.ndarray) -> bool:
    b, _, r = image.reshape(-1, 3).mean(axis=0)
    return bool(r > 150 > b)


async def test_stream_is_multipart_jpeg_and_follows_show() -> None:
    async with MjpegServer(views=["front"], fps=30) as srv:
        srv.show("front", solid((0, 0, 255)))
        reader, writer = await request(srv, "/front")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 200")
        assert b"multipart/x-mixed-replace; boundary=" in head
        assert red(await read_part(reader))
        await srv.show_async("front", solid((255, 0, 0)))
        async with asyncio.timeout(20):
            while red(await read_part(reader)):
                pass
        writer.close()


async def test_rude_clients_do_not_hurt_the_others() -> None:
    async with MjpegServer(views=["front"], fps=30) as srv:
        srv.show("front", solid((0, 0, 255)))
        # one never sends a request, one sends garbage, one stops reading, one vanishes
        _, silent = await asyncio.open_connection(srv.host, srv.port)
        r1, garbage = await asyncio.open_connection(srv.host, srv.port)
        garbage.write(b"\x00\xff junk\r\n\r\n")
        _, stuck = await request(srv, "/front")
        r2, vanish = await request(srv, "/front")
        await read_part(r2)
        vanish.transport.abort()
        assert (await r1.read()).startswith(b"HTTP/1.0 405")

        reader, writer = await request(srv, "/front")
        for _ in range(3):
            assert red(await read_part(reader))
        writer.close()
        assert srv.connections == 5
    # stop() returned although clients were still connected, one of them not reading
    for w in (silent, garbage, stuck):
        w.close()


async def test_unknown_view_single_jpeg_and_index() -> None:
    async with MjpegServer(views=["front", "side"]) as srv:
        srv.show("front", solid((0, 0, 255)))
        r, w = await request(srv, "/nowhere")
        assert (await r.read()).startswith(b"HTTP/1.0 404")
        w.close()
        r, w = await request(srv, "/side.jpg")  # no picture yet
        assert (await r.read()).startswith(b"HTTP/1.0 503")
        w.close()
        r, w = await request(srv, "/front.jpg")
        reply = await r.read()
        w.close()
        head, body = reply.split(b"\r\n\r\n", 1)
        assert b"image/jpeg" in head
        assert red(cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR))
        r, w = await request(srv, "/")
        assert (await r.read()).endswith(b"front\nside\n")
        w.close()


async def test_restart_keeps_the_port_and_drops_clients() -> None:
    srv = MjpegServer(views=["top"], fps=30)
    await srv.start()
    url = srv.url("top")
    srv.show("top", solid((0, 0, 255)))
    reader, writer = await request(srv, "/top")
    await read_part(reader)
    await srv.stop()
    assert not srv.running
    async with asyncio.timeout(20):
        await reader.read()  # the server hung up on its clients
    assert reader.at_eof()
    writer.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(srv.host, srv.port)
    await srv.start()
    try:
        assert srv.url("top") == url
        reader, writer = await request(srv, "/top")
        assert red(await read_part(reader))
        writer.close()
    finally:
        await srv.stop()


async def test_freeze_keeps_the_connection_but_sends_nothing() -> None:
    async with MjpegServer(views=["front"], fps=50) as srv:
        srv.show("front", solid((0, 0, 255)))
        reader, writer = await request(srv, "/front")
        await read_part(reader)
        srv.freeze("front")
        sent = srv.frames_sent("front")
        await asyncio.sleep(0.3)  # the stream's own pace is real time: 15 frames' worth
        assert srv.frames_sent("front") <= sent + 1
        srv.freeze("front", False)
        await read_part(reader)
        writer.close()


def test_serves_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        MjpegServer(host="0.0.0.0")
    with pytest.raises(ValueError, match="view names"):
        MjpegServer(views=["front/../x"])
