"""`gatewayctl camera snapshot VIEW --ocr`: a technician aims a camera and sees what is read."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from sim.camera_server import MjpegServer
from sim.render import render_plate_scene

ROOT = Path(__file__).resolve().parents[2]


async def test_snapshot_saves_the_frame_and_shows_the_plate_read(tmp_path: Path) -> None:
    scene = render_plate_scene("苏E5M9Q1", "blue", seed=4, difficulty=0.2)
    async with MjpegServer(views=["front"], fps=5.0) as server:
        server.show("front", scene.image)
        text = (ROOT / "config" / "lane.example.toml").read_text(encoding="utf-8")
        text += f'\n[[cameras]]\nname = "front"\nurl = "{server.url("front")}"\n'
        config = tmp_path / "lane.toml"
        config.write_text(text, encoding="utf-8")
        out = tmp_path / "front.jpg"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from gatewayd.ctl import main; main()",
            "camera",
            "snapshot",
            "front",
            "--config",
            str(config),
            "--out",
            str(out),
            "--ocr",
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, stderr.decode()
    report = json.loads(stdout.decode().strip().splitlines()[-1])
    assert report["file"] == str(out)
    assert (report["width"], report["height"]) == (1280, 720)
    assert out.read_bytes().startswith(b"\xff\xd8")
    assert [p["text"] for p in report["plates"]] == ["苏E5M9Q1"]


async def test_unknown_view_is_refused_naming_the_configured_ones(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from gatewayd.ctl import main; main()",
        "camera",
        "snapshot",
        "rear",
        "--config",
        str(ROOT / "config" / "lane.example.toml"),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    assert "no camera named 'rear'" in stderr.decode()
