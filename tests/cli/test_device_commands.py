"""`gatewayctl device ...` against simulated devices speaking the real protocols over ptys."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from sim.eseal_device import EsealReaderSim
from sim.weighbridge_device import WeighbridgeSim

ROOT = Path(__file__).resolve().parents[2]
KEY = bytes(range(16))


def _config(tmp_path: Path, *, weight: str | None = None, seal: str | None = None) -> Path:
    text = (ROOT / "config" / "lane.example.toml").read_text(encoding="utf-8")
    if weight:
        text = text.replace(
            '[devices.weight]\nkind = "sim"',
            f'[devices.weight]\nkind = "weighbridge"\nport = "{weight}"\nformat = "toledo"\n'
            "stability = { hold_s = 0.3 }",
        )
    if seal:
        text = text.replace(
            '[devices.seal]\nkind = "sim"',
            f'[devices.seal]\nkind = "eseal"\nport = "{seal}"\nkey = "{KEY.hex()}"',
        )
    path = tmp_path / "lane.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def _ctl(*args: str) -> tuple[int, list[dict[str, object]], str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from gatewayd.ctl import main; main()",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    assert proc.returncode is not None
    return proc.returncode, lines, err.decode()


async def test_read_weighbridge_prints_settled_weights(tmp_path: Path) -> None:
    async with WeighbridgeSim("toledo", time_scale=10, rate_hz=10) as scale:
        scale.set_load(24_680)
        config = _config(tmp_path, weight=scale.path)
        code, lines, err = await _ctl(
            "device",
            "read",
            "weighbridge",
            "--config",
            str(config),
            "--count",
            "1",
            "--seconds",
            "20",
        )
    assert code == 0, err
    assert lines == [{**lines[0], "type": "StableWeight", "kg": 24_680.0, "stable": True}]


async def test_read_weighbridge_raw_shows_every_frame_with_its_bytes(tmp_path: Path) -> None:
    async with WeighbridgeSim("toledo", time_scale=10, rate_hz=10) as scale:
        scale.set_load(5_000)
        scale.inject(b"\x02garbage\r")
        config = _config(tmp_path, weight=scale.path)
        code, lines, err = await _ctl(
            "device",
            "read",
            "weighbridge",
            "--raw",
            "--config",
            str(config),
            "--count",
            "5",
            "--seconds",
            "20",
        )
    assert code == 0, err
    assert len(lines) == 5
    frames = [line for line in lines if line["type"] == "WeightReading"]
    assert frames
    assert all(isinstance(f["raw"], str) and f["raw"].startswith("02") for f in frames)


async def test_unlock_a_seal_for_commissioning(tmp_path: Path) -> None:
    async with EsealReaderSim(KEY) as reader:
        reader.set_seal("ES12345678", "sealed")
        config = _config(tmp_path, seal=reader.path)
        code, lines, err = await _ctl(
            "device", "eseal", "unlock", "ES12345678", "--config", str(config)
        )
        assert code == 0, err
        assert lines == [{"seal_id": "ES12345678", "action": "unlock", "state": lines[0]["state"]}]
        assert [(c, s, st) for c, s, st in reader.executed] == [
            (reader.executed[0][0], "ES12345678", "ok")
        ]
        # a seal that is not in the field is refused, and says so
        code, _, err = await _ctl(
            "device", "eseal", "unlock", "ES00000000", "--config", str(config)
        )
        assert code == 1
        assert "ES00000000" in err


async def test_a_simulated_device_in_the_config_has_nothing_to_read(tmp_path: Path) -> None:
    code, _, err = await _ctl("device", "read", "weighbridge", "--config", str(_config(tmp_path)))
    assert code == 1
    assert "devices.weight is of kind 'sim'" in err
