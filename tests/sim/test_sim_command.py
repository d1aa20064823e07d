"""`gatewayd sim` end to end: a lane on a real Modbus server with simulated traffic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gatewayd.reasons import Code
from sim.scenario import ANOMALIES
from tests.commands import ROOT, gatewayd


@pytest.mark.slow
def test_two_hundred_generated_vehicles_all_decided_right() -> None:
    # every device on its wire protocol; plates and boxes handed over (OCR has its own test)
    result = gatewayd("sim", "--vehicles", "200", "--seed", "1", "--fast", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["vehicles"] == 200
    assert summary["release"] + summary["hold"] + summary["reject"] == 200
    assert summary["wrong"] == 0, "\n".join(line for line in lines if "WRONG" in line)
    assert 150 <= summary["release"] <= 170  # about 80 % clean
    passes = [line for line in lines[:-1] if " #" in line]
    assert len(passes) == 200
    for code in ANOMALIES:  # every reason code occurred
        assert any(code.value in line for line in passes), code
    assert set(summary["decision_ms"]) == {"p50", "p95", "max"}
    assert summary["decision_ms"]["p50"] > 0
    assert set(summary["pass_s"]) == {"p50", "p95"}


def test_scenario_file_runs_with_its_expectations() -> None:
    result = gatewayd("sim", "--scenario", "config/scenarios/example.toml", "--fast", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary == {**summary, "vehicles": 5, "release": 2, "reject": 3, "hold": 0, "wrong": 0}


@pytest.mark.parametrize(
    ("old", "new", "key", "needle", "message"),
    [
        (
            "weight_kg = 28620",
            'weight_kg = "heavy"',
            "vehicles.0.weight_kg",
            "heavy",
            "valid number",
        ),
        (
            'expect = "release"\nreasons = []',
            "reasons = []",
            "vehicles.0.expect",
            "[[vehicles]]",
            "missing",
        ),
        (
            "weight_kg = 28620",
            "weight_kg = 28620\ncolour = 2",
            "vehicles.0.colour",
            "colour",
            "unknown key",
        ),
        (
            'reasons = ["NOTE_USED"]',
            'reasons = ["NOT_A_CODE"]',
            "vehicles.2.reasons.0",
            "NOT_A_CODE",
            "NOTE_USED",
        ),
        (
            'profile = "container-entry"',
            'profile = "no-such-profile"',
            "lane.profile",
            "no-such-profile",
            "unknown profile; known: container-entry, container-exit",
        ),
    ],
)
def test_bad_scenario_is_refused_naming_the_key_and_nothing_is_written(
    tmp_path: Path, old: str, new: str, key: str, needle: str, message: str
) -> None:
    text = (ROOT / "config/scenarios/example.toml").read_text(encoding="utf-8")
    assert old in text
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(old, new, 1), encoding="utf-8")
    line = next(
        n for n, row in enumerate(bad.read_text(encoding="utf-8").splitlines(), 1) if needle in row
    )
    work = tmp_path / "work"
    result = gatewayd("sim", "--scenario", str(bad), "--fast", "--workdir", str(work))
    assert result.returncode == 1
    assert f"{key} (line {line}): " in result.stderr, result.stderr
    assert message in result.stderr
    assert not work.exists()


def test_a_workdir_holding_a_ledger_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "ledger.db").write_bytes(b"a lane's own ledger")
    result = gatewayd("sim", "--vehicles", "1", "--fast", "--workdir", str(work))
    assert result.returncode == 1
    assert f"--workdir {work} holds a ledger.db already" in result.stderr
    assert (work / "ledger.db").read_bytes() == b"a lane's own ledger"
    assert [p.name for p in work.iterdir()] == ["ledger.db"]


def test_a_truck_released_that_should_not_be_fails_the_run(tmp_path: Path) -> None:
    # the scenario says the first truck is overweight; it is not, and the lane releases it:
    # to whoever runs the simulator (a soak, a CI job), that is a failure, not a figure
    text = (ROOT / "config/scenarios/example.toml").read_text(encoding="utf-8")
    old = 'expect = "release"\nreasons = []'
    assert old in text
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(text.replace(old, 'expect = "hold"\nreasons = ["OVERWEIGHT"]', 1), "utf-8")
    result = gatewayd("sim", "--scenario", str(wrong), "--fast", "--json")
    assert result.returncode == 2
    assert json.loads(result.stdout.strip().splitlines()[-1])["wrong_releases"] == 1


def test_generated_traffic_has_every_code_per_hundred_and_about_eighty_percent_clean() -> None:
    from sim.scenario import generate

    scenario = generate(300, seed=5)
    for block in range(3):
        vehicles = scenario.vehicles[block * 100 : (block + 1) * 100]
        codes = [c for v in vehicles for c in (v.reasons or [])]
        assert set(ANOMALIES) <= set(codes)
        assert sum(v.label == "clean" for v in vehicles) == 80
    assert Code.NOTE_USED in ANOMALIES


def test_a_run_with_ocr_ends_cleanly_with_nothing_but_its_own_log_on_stderr() -> None:
    # real OCR on rendered frames; at exit no library may complain (zxing-cpp's bindings
    # reported a format set kept for the module's life as leaked), and a frame without
    # text is not a warning
    result = gatewayd("sim", "--vehicles", "2", "--seed", "3", "--fast", "--ocr", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["vehicles"] == 2
    # OCR read a truck through; a plate read from one doubtful picture may be held, never a
    # truck let through that should not be
    assert summary["release"] >= 1
    assert summary["wrong_releases"] == 0
    assert "nanobind" not in result.stderr
    assert "Traceback" not in result.stderr
    assert "text detection result is empty" not in result.stderr


def test_a_note_whose_first_truck_was_held_is_still_unused_for_the_next(tmp_path: Path) -> None:
    # The scenario's third truck shows the first truck's note again, expecting NOTE_USED.
    # Here the first truck is overweight and held: the note was never used, and the third
    # truck (the same truck, weighed right) is its first use. Counting that release as a
    # wrong one hid nothing but noise: OCR doubt holding a first truck did exactly this.
    text = (ROOT / "config/scenarios/example.toml").read_text(encoding="utf-8")
    old = 'weight_kg = 28620\nexpect = "release"\nreasons = []'
    assert old in text
    held_first = text.replace(old, 'weight_kg = 34000\nexpect = "hold"\nreasons = ["OVERWEIGHT"]')
    scenario = tmp_path / "held-first.toml"
    scenario.write_text(held_first, encoding="utf-8")
    result = gatewayd("sim", "--scenario", str(scenario), "--fast", "--json")
    assert result.returncode == 0, result.stdout[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary == {**summary, "release": 2, "hold": 1, "reject": 2, "wrong": 0}
