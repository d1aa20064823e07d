"""`gatewayctl config validate`: a good config passes; a bad one names key path, line, problem."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gatewayd.config import load_config, parse_config
from gatewayd.tomlfile import FileError
from tests.commands import GATEWAYCTL, ROOT, run

EXAMPLE = ROOT / "config" / "lane.example.toml"


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return run(GATEWAYCTL, "config", "validate", str(path), timeout=60)


def test_example_config_is_valid() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.profile.required == ["plate", "containers", "qr", "seal", "weight"]
    result = validate(EXAMPLE)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "lane.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def _line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(needle)


@pytest.mark.parametrize(
    ("old", "new", "key", "needle", "message"),
    [
        ("poll_ms = 20", 'poll_ms = "fast"', "relay.poll_ms", "poll_ms", "valid integer"),
        ("poll_ms = 20", "poll_ms = 500", "relay.poll_ms", "poll_ms", "less than or equal to 100"),
        ("device_id = 1", "device_id = 1\nunit = 2", "relay.unit", "unit = 2", "unknown key"),
        (
            "barrier_down = 1\n",
            "",
            "relay.coils.barrier_down",
            "[relay.coils]",
            "missing required key",
        ),
        (
            'direction = "entry"',
            'direction = "sideways"',
            "lane.direction",
            'direction = "sideways"',
            "'entry' or 'exit'",
        ),
        (
            'profile = "container-entry"',
            'profile = "bulk"',
            "lane.profile",
            "profile =",
            "unknown profile",
        ),
        ("light_red = 3", "light_red = 2", "relay.coils", "[relay.coils]", "share one address"),
        ('host = "10.20.3.50"\n', "", "relay.host", "[relay]", "needs host"),
        (
            "public_keys = [",
            'public_keys = ["AAAA", ',
            "central.public_keys",
            "public_keys",
            "not a base64 Ed25519",
        ),
        (
            "[22.48210, 113.91020],\n    [22.48210, 113.91180],",
            "[122.5, 113.9],",
            "geofence.polygon",
            "polygon",
            "lat, lon",
        ),
        ('id = "lane-03"', 'id = "lane/03"', "lane.id", 'id = "lane/03"', "should match"),
        ('site = "shekou-north"', 'site = "shekou-#"', "lane.site", "site =", "should match"),
        (
            'socket = "/run/gatewayd/control.sock"',
            f'socket = "/run/{"gatewayd/" * 12}control.sock"',
            "control.socket",
            "socket =",
            "the most a Unix socket takes",
        ),
    ],
)
def test_bad_config_names_the_key_its_line_and_the_problem(
    tmp_path: Path, old: str, new: str, key: str, needle: str, message: str
) -> None:
    path = _broken(tmp_path, old, new)
    before = path.read_bytes()
    with pytest.raises(FileError) as err:
        load_config(path)
    (problem,) = err.value.problems
    assert problem.startswith(f"{key} (line {_line_of(path, needle)}): "), problem
    assert message in problem
    result = validate(path)
    assert result.returncode == 1
    assert key in result.stderr
    assert path.read_bytes() == before  # validation writes nothing


def test_missing_device_for_a_required_reading_is_named(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    start = text.index("[devices.seal]")
    path = _broken(tmp_path, text[start : text.index("\n\n", start) + 1], "")
    with pytest.raises(FileError) as err:
        load_config(path)
    assert err.value.problems[0].startswith("devices.seal")
    assert "requires this reading" in err.value.problems[0]


def test_a_profile_that_reads_no_release_note_is_refused(tmp_path: Path) -> None:
    path = _broken(
        tmp_path,
        'profile = "container-entry"',
        'profile = "plates-only"',
    )
    path.write_text(
        path.read_text(encoding="utf-8") + '\n[profiles.plates-only]\nrequired = ["plate"]\n',
        encoding="utf-8",
    )
    with pytest.raises(FileError) as err:
        load_config(path)
    (problem,) = err.value.problems
    assert problem.startswith("profiles.plates-only.required (line")
    assert "'qr' is required" in problem


@pytest.mark.parametrize(
    ("old", "new", "key", "message"),
    [
        (
            'kind = "weighbridge"\nport = "/dev/ttyUSB0"\nbaudrate = 9600\nformat = "toledo"',
            'kind = "sim"',
            "devices.weight.kind",
            "exists only under `gatewayd sim`",
        ),
        (
            '# officers_group = "customs-officers"',
            'officers_group = "no-such-group-here"',
            "control.officers_group",
            "no group 'no-such-group-here' here",
        ),
    ],
)
def test_what_keeps_a_valid_config_from_running_here_is_named_by_validate(
    tmp_path: Path, old: str, new: str, key: str, message: str
) -> None:
    # `config validate` runs before `gatewayd run` (the unit's ExecStartPre): it must not call
    # a config good that the lane then refuses
    path = _broken(tmp_path, old, new)
    result = validate(path)
    assert result.returncode == 1
    assert f"{key} (line {_line_of(path, new)}): " in result.stderr
    assert message in result.stderr
    assert load_config(path).lane.id == "lane-03"  # valid as a file; only not runnable here


def test_an_unreadable_broker_password_file_is_named_by_validate(tmp_path: Path) -> None:
    path = tmp_path / "lane.toml"
    text = EXAMPLE.read_text(encoding="utf-8")
    text += '\n[mqtt]\nhost = "127.0.0.1"\nusername = "lane-03"\n'
    text += f'password_file = "{tmp_path / "missing"}"\n'
    path.write_text(text, encoding="utf-8")
    result = validate(path)
    assert result.returncode == 1
    assert "mqtt.password_file" in result.stderr
    assert "No such file or directory" in result.stderr


def test_broken_toml_is_reported_with_its_position() -> None:
    with pytest.raises(FileError) as err:
        parse_config("[lane\nid = 1\n", "x.toml")
    assert "not valid TOML" in err.value.problems[0]
    assert "line 1" in err.value.problems[0]


def test_a_config_saved_in_another_encoding_or_nested_without_end_is_a_clear_error(
    tmp_path: Path,
) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    gbk = tmp_path / "gbk.toml"
    gbk.write_bytes(("# 入口车道\n" + text).encode("gb18030"))
    deep = tmp_path / "deep.toml"
    deep.write_text(text + "\nextra = " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    for path, message in ((gbk, "not UTF-8"), (deep, "nested too deeply")):
        result = validate(path)
        assert result.returncode == 1
        assert message in result.stderr
        assert "Traceback" not in result.stderr


def test_a_nul_character_is_refused_at_validation_not_when_the_lane_opens_the_path(
    tmp_path: Path,
) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert 'path = "/var/lib/gatewayd/ledger.db"' in text
    path = tmp_path / "nul.toml"
    path.write_text(
        text.replace("/var/lib/gatewayd/ledger.db", "/var/lib/gatewayd/ledger\\u0000.db"),
        encoding="utf-8",
    )
    result = validate(path)
    assert result.returncode == 1
    assert "ledger.path (line" in result.stderr
    assert "NUL character" in result.stderr


def test_unreadable_file() -> None:
    result = validate(ROOT / "does-not-exist.toml")
    assert result.returncode == 1
    assert "cannot read" in result.stderr
