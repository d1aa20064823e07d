"""`gatewayctl camera snapshot VIEW --ocr`: a technician aims a camera and sees what is read."""

from __future__ import annotations

import json
from pathlib import Path

from sim.camera_server import MjpegServer
from sim.render import render_plate_scene
from tests.commands import EXAMPLE_CONFIG, GATEWAYCTL, run, run_async


def _with_camera(tmp_path: Path, server: MjpegServer) -> Path:
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    front = text.index('url = "rtsp://lane03:CHANGE-ME@10.20.3.61')  # the example's front view
    end = text.index("\n", front)
    text = text[:front] + f'url = "{server.url("front")}"' + text[end:]
    config = tmp_path / "lane.toml"
    config.write_text(text, encoding="utf-8")
    return config


async def test_snapshot_saves_the_frame_and_shows_the_plate_read(tmp_path: Path) -> None:
    scene = render_plate_scene("苏E5M9Q1", "blue", seed=4, difficulty=0.2)
    async with MjpegServer(views=["front"], fps=5.0) as server:
        server.show("front", scene.image)
        config = _with_camera(tmp_path, server)
        out = tmp_path / "front.jpg"
        code, stdout, stderr = await run_async(
            GATEWAYCTL,
            "camera",
            "snapshot",
            "front",
            "--config",
            str(config),
            "--out",
            str(out),
            "--ocr",
            limit_s=120,
        )
    assert code == 0, stderr
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["file"] == str(out)
    assert (report["width"], report["height"]) == (1280, 720)
    assert out.read_bytes().startswith(b"\xff\xd8")
    assert [p["text"] for p in report["plates"]] == ["苏E5M9Q1"]


async def test_a_snapshot_that_cannot_be_saved_is_an_error_not_a_traceback(
    tmp_path: Path,
) -> None:
    scene = render_plate_scene("苏E5M9Q1", "blue", seed=4, difficulty=0.2)
    async with MjpegServer(views=["front"], fps=5.0) as server:
        server.show("front", scene.image)
        out = tmp_path / "no-such-folder" / "front.jpg"
        code, _, stderr = await run_async(
            GATEWAYCTL,
            "camera",
            "snapshot",
            "front",
            "--config",
            str(_with_camera(tmp_path, server)),
            "--out",
            str(out),
            limit_s=120,
        )
    assert code == 1
    assert f"cannot save the snapshot to {out}" in stderr
    assert "Traceback" not in stderr


async def test_unknown_view_is_refused_naming_the_configured_ones(tmp_path: Path) -> None:
    code, _, stderr = await run_async(
        GATEWAYCTL,
        "camera",
        "snapshot",
        "rear",
        "--config",
        str(EXAMPLE_CONFIG),
    )
    assert code == 1
    assert "no camera named 'rear'" in stderr


def test_help_names_the_config_section_of_the_cameras() -> None:
    # the help is rich markup: an unescaped [cameras] vanished as a style tag
    result = run(GATEWAYCTL, "camera", "snapshot", "--help", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "[[cameras]]" in result.stdout
