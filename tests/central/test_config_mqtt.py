"""The [mqtt] section of a lane config: a good one parses; a bad one names the key and line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gatewayd.config import parse_config
from gatewayd.link import CentralLink
from gatewayd.runner import build_link
from gatewayd.tomlfile import FileError
from tests.commands import ROOT

EXAMPLE = ROOT / "config" / "lane.example.toml"


def config_with(section: str) -> str:
    return EXAMPLE.read_text(encoding="utf-8") + "\n" + section


def test_a_config_without_mqtt_has_no_link_and_the_lane_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = parse_config(EXAMPLE.read_text(encoding="utf-8"))
    assert config.mqtt is None
    with caplog.at_level(logging.WARNING, logger="gatewayd.runner"):
        assert build_link(config) is None
    assert f"lane {config.lane.id} has no [mqtt] section" in caplog.text
    assert "unsent and unpruned" in caplog.text


def test_a_config_with_mqtt_builds_the_central_link() -> None:
    config = parse_config(config_with('[mqtt]\nhost = "127.0.0.1"\n'))
    assert isinstance(build_link(config), CentralLink)


def test_tls_with_a_client_certificate_defaults_to_port_8883() -> None:
    cfg = parse_config(
        config_with(
            '[mqtt]\nhost = "10.20.0.5"\nusername = "lane-03"\npassword = "x"\n'
            '[mqtt.tls]\nca_file = "/etc/ca.pem"\n'
            'cert_file = "/etc/l.pem"\nkey_file = "/etc/l.key"\n'
        )
    )
    assert cfg.mqtt is not None
    assert cfg.mqtt.effective_port == 8883
    assert cfg.mqtt.tls is not None
    assert cfg.mqtt.client_id is None  # the lane id is used


def test_the_password_can_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\nignored\n", encoding="utf-8")
    cfg = parse_config(
        config_with(f'[mqtt]\nhost = "h"\nusername = "u"\npassword_file = "{secret}"\n')
    )
    assert cfg.mqtt is not None
    assert cfg.mqtt.secret() == "s3cret"


@pytest.mark.parametrize(
    ("section", "key", "message"),
    [
        ('[mqtt]\nhost = "h"\npassword = "p"\n', "mqtt.username", "needs a username"),
        ('[mqtt]\nhost = "h"\nport = 70000\n', "mqtt.port", "less than or equal to 65535"),
        (
            '[mqtt]\nhost = "h"\nreconnect_initial_s = 5\nreconnect_max_s = 1\n',
            "mqtt.reconnect_max_s",
            "at least reconnect_initial_s",
        ),
        (
            '[mqtt]\nhost = "h"\n[mqtt.tls]\nca_file = "/c"\ncert_file = "/x"\n',
            "mqtt.tls.cert_file",
            "both",
        ),
        ('[mqtt]\nhost = "h"\nqos = 0\n', "mqtt.qos", "unknown key"),
    ],
)
def test_a_bad_mqtt_section_is_refused_naming_the_key(section: str, key: str, message: str) -> None:
    with pytest.raises(FileError) as info:
        parse_config(config_with(section))
    problems = "\n".join(info.value.problems)
    assert key in problems, problems
    assert message in problems, problems
