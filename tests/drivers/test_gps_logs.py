"""GPS codec on real receiver logs, checked against gpsd's own decode of the same logs.

Each ``<name>.log.chk`` (gpsd's regression oracle) interleaves the sentences gpsd read with the
JSON reports it made. Its TPV reports that carry a time and a position are gpsd's fixes; the
time of day identifies the receiver epoch, which is what our fixes carry too. gpsd's dates are
not comparable as such: its regression runs apply a GPS week-rollover guess, so several logs
come out exactly 1024 weeks later than the receiver's own RMC date.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from drivers.codec import Rejected
from drivers.gps import GpsFix, decode_capture, strip_comments

LOGS = [
    "GPSmap-76S",
    "beidou-bd",
    "bu353-glonass",
    "gp-320fw-2019-04-07-coldboot",
    "haicom-305N",
    "mt3339",
    "neo-m8n",
    "skytraq-dgps",
    "telit-he910",
    "ublox-zed-f9p-nmea",
]
ROLLOVER_DAYS = 1024 * 7
NOW = "2025-01-01T00:00:00Z"
DEG_TOLERANCE = 1e-8  # gpsd prints 9 decimals; ~1 mm
SPEED_TOLERANCE = 0.002  # m/s; gpsd prints 3 decimals of its own knot conversion


def _decode(path: Path) -> list[object]:
    with path.open("rb") as f:
        return list(decode_capture(strip_comments(f)))


def _gpsd_fixes(chk: Path) -> dict[str, list[dict[str, object]]]:
    """gpsd's TPV reports with a time and a position, by time of day (HH:MM:SS.mmm)."""
    by_time: dict[str, list[dict[str, object]]] = {}
    for line in chk.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith('{"class":"TPV"'):
            continue
        tpv = json.loads(line)
        if "time" in tpv and "lat" in tpv and "lon" in tpv:
            by_time.setdefault(tpv["time"][11:23], []).append(tpv)
    return by_time


@pytest.mark.parametrize("name", LOGS)
def test_fixes_agree_with_gpsd(shared_data: Path, name: str) -> None:
    log = shared_data / "nmea" / f"{name}.log"
    items = _decode(log)
    ours = [i for i in items if isinstance(i, GpsFix)]
    gpsd = _gpsd_fixes(log.with_suffix(".log.chk"))
    by_time = {f.time[11:23]: f for f in ours}
    assert len(by_time) == len(ours), "one fix per epoch"

    # every fix gpsd made from this log, we made too, at the same place
    missing = sorted(set(gpsd) - set(by_time))
    assert not missing, f"gpsd has fixes we lack at {missing[:5]}"
    for time_of_day, reports in gpsd.items():
        fix = by_time[time_of_day]
        for tpv in reports:
            assert abs(float(tpv["lat"]) - fix.lat) <= DEG_TOLERANCE, (time_of_day, tpv, fix)
            assert abs(float(tpv["lon"]) - fix.lon) <= DEG_TOLERANCE, (time_of_day, tpv, fix)
        # gpsd also reports speeds it derives from successive positions; the one from RMC
        # (what we report) must be among the epoch's reports
        speeds = [float(str(t["speed"])) for t in reports if "speed" in t]
        if speeds and fix.speed_kmh is not None:
            assert min(abs(s - fix.speed_kmh / 3.6) for s in speeds) <= SPEED_TOLERANCE
        gpsd_date = dt.date.fromisoformat(str(reports[-1]["time"])[:10])
        our_date = dt.date.fromisoformat(fix.time[:10])
        assert (gpsd_date - our_date).days in (0, ROLLOVER_DAYS), (gpsd_date, our_date)

    # and our valid fixes are ones gpsd also saw as 2-D or 3-D fixes (gpsd reports a cycle
    # when the next one starts, so the last epoch of a log may have no report)
    valid = [f for f in ours if f.valid]
    seen = [f for f in valid if f.time[11:23] in gpsd]
    assert len(seen) >= len(valid) - 1
    for fix in seen:
        assert all(int(str(t["mode"])) >= 2 for t in gpsd[fix.time[11:23]])


EXPECTED_VALID = {
    # a receiver in simulator mode (RMC mode S, GGA quality 8) never gives a valid fix
    "GPSmap-76S": 0,
    # cold start: one real fix before the reboot, then void RMCs with garbage dates
    "gp-320fw-2019-04-07-coldboot": 1,
    # BU-353 reports HDOP 4.87 / 4.54 on three epochs: over the 4.0 default
    "bu353-glonass": 5,
}


@pytest.mark.parametrize("name", sorted(EXPECTED_VALID))
def test_valid_fix_counts(shared_data: Path, name: str) -> None:
    items = _decode(shared_data / "nmea" / f"{name}.log")
    assert sum(1 for i in items if isinstance(i, GpsFix) and i.valid) == EXPECTED_VALID[name]


def test_cold_boot_log_is_survived_without_a_false_fix(shared_data: Path) -> None:
    items = _decode(shared_data / "nmea" / "gp-320fw-2019-04-07-coldboot.log")
    rejected = [i for i in items if isinstance(i, Rejected)]
    reasons = {r.reason for r in rejected}
    # the README counts 41 truncated or concatenated sentences with bad checksums
    assert len(rejected) >= 41
    assert {"bad checksum", "truncated or no checksum", "not printable ASCII"} <= reasons
    (valid,) = [i for i in items if isinstance(i, GpsFix) and i.valid]
    # the one fix gpsd also reports as a 3-D fix with a time (data line 10, before the reboot)
    assert valid.time == "2019-04-07T00:03:45.030Z"
    assert valid.lat == pytest.approx(48.149988333, abs=DEG_TOLERANCE)
    assert valid.lon == pytest.approx(11.584663333, abs=DEG_TOLERANCE)
    after_reboot = [i for i in items if isinstance(i, GpsFix) and i.timestamp != valid.timestamp]
    assert after_reboot
    assert not any(f.valid for f in after_reboot)


def test_cli_prints_one_fix_per_line_and_the_counts(shared_data: Path) -> None:
    log = shared_data / "nmea" / "gp-320fw-2019-04-07-coldboot.log"
    run = subprocess.run(
        [sys.executable, "-m", "drivers.gps", "--strip-comments", str(log)],
        capture_output=True,
        check=True,
        text=True,
    )
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    *fix_lines, counts = lines
    assert counts == {"accepted": len(fix_lines), "rejected": counts["rejected"]}
    assert counts["rejected"] >= 41
    assert all({"time", "lat", "lon", "valid"} <= set(f) for f in fix_lines)
    assert sum(f["valid"] for f in fix_lines) == 1
    # judged against a clock of 2025, the 2019 fix is stale
    run = subprocess.run(
        [sys.executable, "-m", "drivers.gps", "--strip-comments", "--now", NOW, str(log)],
        capture_output=True,
        check=True,
        text=True,
    )
    assert '"valid": true' not in run.stdout


@pytest.mark.parametrize("codec", ["gps", "qr"])
def test_cli_names_a_capture_it_cannot_read(tmp_path: Path, codec: str) -> None:
    for path, why in ((tmp_path / "gone.log", "No such file or directory"), (tmp_path, "")):
        run = subprocess.run(
            [sys.executable, "-m", f"drivers.{codec}", str(path)],
            capture_output=True,
            check=False,
            text=True,
        )
        assert run.returncode == 2
        assert f"cannot read {path}: {why}" in run.stderr
        assert "Traceback" not in run.stderr
