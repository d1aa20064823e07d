"""`gatewayctl device ...` against simulated devices speaking the real protocols over ptys."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from pathlib import Path

from drivers.release_note import ReleaseNote
from sim.central import SimCentral
from sim.eseal_device import EsealReaderSim
from sim.gps_device import SimGps
from sim.qr_scanner_device import SimQrScanner
from sim.weighbridge_device import WeighbridgeSim
from tests.commands import GATEWAYCTL, example_config, run_async

KEY = bytes(range(16))


def _config(
    tmp_path: Path,
    *,
    weight: str | None = None,
    seal: str | None = None,
    gps: str | None = None,
    qr: str | None = None,
    key: str | None = None,
) -> Path:
    devices: dict[str, str] = {}
    if gps:
        devices["gps"] = f'kind = "nmea"\nport = "{gps}"'
    if qr:
        devices["qr"] = f'kind = "qr-scanner"\nport = "{qr}"'
    if weight:
        devices["weight"] = (
            f'kind = "weighbridge"\nport = "{weight}"\nformat = "toledo"\n'
            "stability = { hold_s = 0.3 }"
        )
    if seal:
        devices["seal"] = f'kind = "eseal"\nport = "{seal}"\nkey = "{KEY.hex()}"'
    text = example_config(**devices)
    if key:
        start = text.index("public_keys = [")
        end = text.index("]", start)
        text = text[:start] + f'public_keys = ["{key}"' + text[end:]
    path = tmp_path / "lane.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def _ctl(
    *args: str, meanwhile: Awaitable[object] | None = None
) -> tuple[int, list[dict[str, object]], str]:
    code, out, err = await run_async(GATEWAYCTL, *args, meanwhile=meanwhile)
    return code, [json.loads(line) for line in out.splitlines() if line.startswith("{")], err


async def test_read_weighbridge_prints_settled_weights(tmp_path: Path) -> None:
    async with WeighbridgeSim("toledo", time_scale=10, rate_hz=10) as scale:
        config = _config(tmp_path, weight=scale.path)

        async def truck_rolls_on() -> None:
            await asyncio.sleep(3)  # the empty deck first
            scale.set_load(24_680)

        code, lines, err = await _ctl(
            "device",
            "read",
            "weighbridge",
            "--config",
            str(config),
            "--count",
            "3",
            "--seconds",
            "20",
            meanwhile=truck_rolls_on(),
        )
    assert code == 0, err
    # without --raw: settled weights and status changes (the deck moving), not every frame
    assert [(line["type"], line.get("kg", line.get("status"))) for line in lines] == [
        ("StableWeight", 0.0),
        ("ScaleStatus", "motion"),
        ("StableWeight", 24_680.0),
    ]


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


async def test_a_seal_reader_that_does_not_answer_fails_the_command(tmp_path: Path) -> None:
    async with EsealReaderSim(KEY) as reader:
        reader.set_seal("ES12345678", "sealed")
        reader.mute(True)  # powered off behind a live adapter
        config = _config(tmp_path, seal=reader.path)
        code, lines, err = await _ctl(
            "device", "eseal", "unlock", "ES12345678", "--config", str(config)
        )
        assert code == 1  # never a silent success: the seal was not unlocked
        assert lines == []
        assert "did not answer: no answer" in err
        assert reader.seal is not None
        assert reader.seal.state == "sealed"


async def test_a_simulated_device_in_the_config_has_nothing_to_read(tmp_path: Path) -> None:
    config = tmp_path / "lane.toml"
    config.write_text(example_config(weight='kind = "sim"'), encoding="utf-8")
    code, _, err = await _ctl("device", "read", "weighbridge", "--config", str(config))
    assert code == 1
    assert "devices.weight is of kind 'sim'" in err


async def test_read_gps_prints_fixes_with_units(tmp_path: Path) -> None:
    async with SimGps(transport="pty", rate_hz=5.0) as receiver:
        receiver.set_position(22.4815, 113.9110, valid=True)
        config = _config(tmp_path, gps=receiver.port)
        code, lines, err = await _ctl(
            "device", "read", "gps", "--config", str(config), "--count", "2", "--seconds", "20"
        )
    assert code == 0, err
    fixes = [line for line in lines if line["type"] == "GpsFix"]
    assert fixes
    fix = fixes[-1]
    assert fix["valid"] is True
    assert abs(float(fix["lat"]) - 22.4815) < 1e-4  # type: ignore[arg-type]
    assert abs(float(fix["lon"]) - 113.9110) < 1e-4  # type: ignore[arg-type]
    assert str(fix["time"]).endswith("Z")


async def test_read_qr_shows_the_note_and_whether_it_verifies(tmp_path: Path) -> None:
    central = SimCentral(bytes(range(32)))
    note = ReleaseNote("RN-7", "沪A12345", ("MSCU1234565",), 0, 2_000_000_000)
    with SimQrScanner() as scanner:
        config = _config(tmp_path, qr=scanner.port, key=central.public_key)

        async def scan_later() -> None:
            await asyncio.sleep(2)
            scanner.scan("https://example.com/not-a-note")
            scanner.scan(central.sign(note))
            scanner.scan(central.forge(note))

        code, lines, err = await _ctl(
            "device",
            "read",
            "qr",
            "--config",
            str(config),
            "--count",
            "3",
            "--seconds",
            "20",
            meanwhile=scan_later(),
        )
    assert code == 0, err
    assert [line["kind"] for line in lines] == ["foreign", "release_note", "release_note"]
    assert [line.get("verified") for line in lines[1:]] == [True, False]
    assert lines[1]["note"] == {**lines[1]["note"], "id": "RN-7", "plate": "沪A12345"}  # type: ignore[dict-item]
