"""A lane's configuration: pydantic models per section, unknown keys refused, every field described.

Loaded from TOML with ``load_config``; a bad file raises ``FileError`` naming each key path,
its line, and what is wrong, as ``gatewayctl config validate`` prints them.
"""

from __future__ import annotations

import grp
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from drivers import release_note
from drivers.camera import CameraSettings
from drivers.eseal import EsealSettings
from drivers.gps import GpsSettings
from drivers.modbus_io import RelaySettings
from drivers.qr import QrScannerSettings
from drivers.settings import Section, invalid
from drivers.weighbridge import WeighbridgeSettings
from gatewayd.central_config import MqttSection
from gatewayd.judge import READING_KINDS, ReadingKind
from gatewayd.tomlfile import Problem, load_model, parse_model
from recognition.evidence import EvidenceSettings

SOCKET_PATH_MAX = 107


# a lane's and a site's ids name MQTT topic levels, pass ids and evidence folders: no '/',
# no MQTT wildcard, nothing a file name or a topic would change
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class LaneSection(Section):
    id: Name = Field(description="Lane id, unique within the site (letters, digits, -, _, .).")
    site: Name = Field(description="Site (checkpoint) id (letters, digits, -, _, .).")
    direction: Literal["entry", "exit"] = Field(description="Which way traffic crosses here.")
    profile: str = Field(description="Name of the profile (see [profiles]) this lane runs.")


class CentralSection(Section):
    public_keys: list[str] = Field(
        min_length=1,
        description="Central's Ed25519 public keys, base64 of the 32 raw bytes; two while "
        "central rotates keys.",
    )

    @field_validator("public_keys")
    @classmethod
    def _keys_parse(cls, value: list[str]) -> list[str]:
        release_note.public_keys(value)  # raises ValueError naming the bad one
        return value


class LedgerSection(Section):
    path: Path = Field(description="SQLite ledger file; created if absent.")
    synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL", description="FULL survives power loss with every committed pass."
    )


class TimingSection(Section):
    decision_deadline_s: float = Field(
        20.0, gt=0, le=600, description="Hold a pass whose readings are not all in by then."
    )
    barrier_timeout_s: float = Field(
        4.0, gt=0, le=60, description="A barrier not reporting open/closed by then is a fault."
    )
    settle_s: float = Field(
        5.0, gt=0, le=120, description="After the first exit, close once loops are quiet this long."
    )
    withdraw_s: float = Field(
        15.0, gt=0, le=600, description="Close behind a released vehicle that never passed."
    )
    leave_s: float = Field(
        3.0,
        gt=0,
        le=60,
        description="Arrival loop clear this long before a decision: the truck left (a shorter "
        "gap is one vehicle, tractor and trailer).",
    )
    ledger_timeout_s: float = Field(5.0, gt=0, description="Alert when a commit takes longer.")
    tick_ms: int = Field(50, ge=5, le=1000, description="How often deadlines are checked.")


class DecisionSection(Section):
    min_confidence: float = Field(
        0.80, ge=0, le=1, description="Readings below this confidence are held for a human."
    )
    default_tolerance_kg: float = Field(
        500.0, ge=0, description="Weight tolerance when the note gives none."
    )


class GeofenceSection(Section):
    polygon: list[tuple[float, float]] = Field(
        min_length=3, description="The gate's fence as [lat, lon] corners, in order."
    )

    @field_validator("polygon")
    @classmethod
    def _in_range(cls, value: list[tuple[float, float]]) -> list[tuple[float, float]]:
        for lat, lon in value:
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise ValueError(f"corner ({lat}, {lon}) is not a [lat, lon] in degrees")
        return value


class ProfileSection(Section):
    required: list[ReadingKind] = Field(description="Readings a pass must have to be decided.")
    seal_action: Literal["none", "unlock", "arm"] = Field(
        "none", description="What to do with the e-seal after a release."
    )

    @field_validator("required")
    @classmethod
    def _unique(cls, value: list[ReadingKind]) -> list[ReadingKind]:
        if len(set(value)) != len(value):
            raise ValueError("a reading is listed twice")
        if "qr" not in value:
            raise ValueError("a lane releases only against a release note: 'qr' is required")
        return value


BUILTIN_PROFILES: dict[str, ProfileSection] = {
    "container-entry": ProfileSection(
        required=["plate", "containers", "qr", "seal", "weight"], seal_action="unlock"
    ),
    "container-exit": ProfileSection(
        required=["plate", "containers", "qr", "seal", "weight"], seal_action="arm"
    ),
    "empty-entry": ProfileSection(required=["plate", "qr", "weight"]),
    "empty-exit": ProfileSection(required=["plate", "qr"]),
}


class SimDeviceConfig(Section):
    kind: Literal["sim"] = Field(description="Readings come from the simulator.")


class WeighbridgeDevice(WeighbridgeSettings):
    """A weighbridge indicator on a serial line."""

    kind: Literal["weighbridge"] = Field(description="Weighbridge indicator (serial).")
    name: str = Field("weighbridge", description="Device name in alerts and health.")
    min_vehicle_kg: float = Field(
        500.0, ge=0, description="A stable weight below this is the empty deck, not a truck."
    )


class EsealDevice(EsealSettings):
    """An e-seal reader on a serial line."""

    kind: Literal["eseal"] = Field(description="E-seal reader (serial).")
    name: str = Field("eseal", description="Device name in alerts and health.")


class GpsDevice(GpsSettings):
    """A GPS receiver (the vehicle terminal's fixes) streaming NMEA 0183."""

    kind: Literal["nmea"] = Field(description="NMEA 0183 over serial or TCP.")
    name: str = Field("gps", description="Device name in alerts and health.")


class QrScannerDevice(QrScannerSettings):
    """A fixed QR scanner in line mode on a serial port."""

    kind: Literal["qr-scanner"] = Field(description="Serial QR scanner (line mode).")
    name: str = Field("qr", description="Device name in alerts and health.")


class CameraDevice(Section):
    """Readings from camera views (see [[cameras]]), taken in a burst when a truck arrives."""

    kind: Literal["camera"] = Field(description="Read from camera frames.")
    views: list[str] = Field(min_length=1, description="Names of the [[cameras]] to read.")
    name: str | None = Field(None, description="Device name in alerts (default: kind-camera).")


GpsDeviceConfig = Annotated[SimDeviceConfig | GpsDevice, Field(discriminator="kind")]
QrDevice = Annotated[SimDeviceConfig | QrScannerDevice | CameraDevice, Field(discriminator="kind")]
PlateDevice = Annotated[SimDeviceConfig | CameraDevice, Field(discriminator="kind")]


class RecognitionSection(Section):
    workers: int = Field(
        2, ge=1, le=16, description="Recognition threads (one inference thread each)."
    )


class EvidenceSection(EvidenceSettings):
    """Where crops of what was read are kept, on a disk budget (oldest deleted first)."""


WeightDevice = Annotated[SimDeviceConfig | WeighbridgeDevice, Field(discriminator="kind")]
SealDevice = Annotated[SimDeviceConfig | EsealDevice, Field(discriminator="kind")]


class DevicesSection(Section):
    plate: PlateDevice | None = Field(None, description="Plate camera(s).")
    containers: PlateDevice | None = Field(None, description="Container cameras.")
    qr: QrDevice | None = Field(None, description="Release-note QR scanner.")
    seal: SealDevice | None = Field(None, description="E-seal reader.")
    weight: WeightDevice | None = Field(None, description="Weighbridge indicator.")
    gps: GpsDeviceConfig | None = Field(None, description="GPS of the vehicle terminal.")


class ControlSection(Section):
    socket: Path = Field(
        Path("/run/gatewayd/control.sock"),
        description="Unix socket for gatewayctl (status, officer overrides); owner and group only.",
    )
    officers_group: str | None = Field(
        None,
        min_length=1,
        max_length=32,
        description="Unix group whose members (and root) may override a pass; others who can "
        "reach the socket (technicians) only ask for status. Unset: anyone who can reach it.",
    )

    @field_validator("socket")
    @classmethod
    def _socket_path(cls, path: Path) -> Path:
        # the kernel's sockaddr_un holds 108 bytes with the terminating NUL
        if len(os.fsencode(path)) > SOCKET_PATH_MAX:
            raise ValueError(f"longer than {SOCKET_PATH_MAX} bytes, the most a Unix socket takes")
        if path.is_dir():
            raise ValueError("is a directory; name the socket file in it")
        return path


class LaneConfig(Section):
    """The whole lane config file."""

    lane: LaneSection
    central: CentralSection
    ledger: LedgerSection
    relay: RelaySettings
    geofence: GeofenceSection
    timing: TimingSection = TimingSection()
    decision: DecisionSection = DecisionSection()
    profiles: dict[str, ProfileSection] = Field(
        default_factory=dict, description="Extra or overriding profiles by name."
    )
    devices: DevicesSection = DevicesSection()
    control: ControlSection | None = Field(
        None, description="The control socket; none when absent."
    )
    cameras: list[CameraSettings] = Field(
        default_factory=list, description="Camera views, referred to by name from [devices]."
    )
    recognition: RecognitionSection = Field(
        default_factory=RecognitionSection, description="Plate and container OCR."
    )
    evidence: EvidenceSection | None = Field(
        None, description="Evidence crops; none kept when absent."
    )
    mqtt: MqttSection | None = Field(
        None, description="Link to central's MQTT broker (gatewayd.link); absent: no link."
    )

    @property
    def profile(self) -> ProfileSection:
        """The profile this lane runs."""
        return {**BUILTIN_PROFILES, **self.profiles}[self.lane.profile]

    @model_validator(mode="after")
    def _profile_is_runnable(self) -> LaneConfig:
        known = {**BUILTIN_PROFILES, **self.profiles}
        name = self.lane.profile
        if name not in known:
            message = f"unknown profile; known: {', '.join(sorted(known))}"
            raise invalid("LaneConfig", ("lane", "profile"), message, name)
        for kind in known[name].required:
            if getattr(self.devices, kind) is None:
                message = f"profile {name!r} requires this reading but no device gives it"
                raise invalid("LaneConfig", ("devices", kind), message, None)
        views = [c.name for c in self.cameras]
        if len(set(views)) != len(views):
            raise invalid("LaneConfig", ("cameras",), "two cameras share a name", views)
        for key, device in self.devices:
            if isinstance(device, CameraDevice):
                for i, view in enumerate(device.views):
                    if view not in views:
                        message = f"no camera named {view!r} in [[cameras]]"
                        raise invalid("LaneConfig", ("devices", key, "views", i), message, view)
        return self


def field_problems(config: LaneConfig) -> list[Problem]:
    """What keeps a valid config from running a lane on its real devices, on this machine:
    simulated devices, a Unix group that does not exist here, secrets that cannot be read.
    Each as (key path, problem)."""
    problems: list[Problem] = []
    for key, device in config.devices:
        if isinstance(device, SimDeviceConfig):
            message = "kind 'sim' exists only under `gatewayd sim`; configure the real device"
            problems.append((("devices", key, "kind"), message))
    group = config.control.officers_group if config.control else None
    if group is not None:
        try:
            grp.getgrnam(group)
        except KeyError:
            problems.append((("control", "officers_group"), f"no group {group!r} here"))
    if config.mqtt is not None:
        try:
            config.mqtt.secret()
        except ValueError as exc:
            problems.append((("mqtt", "password_file"), str(exc)))
        if config.mqtt.tls is not None:
            try:
                config.mqtt.tls.check_files()
            except ValueError as exc:
                problems.append((("mqtt", "tls"), str(exc)))
    return problems


def load_config(path: str | Path, *, field: bool = False) -> LaneConfig:
    """Read and validate a lane config file; raises FileError naming every problem. With
    ``field``, also what keeps it from running a lane on real devices (``field_problems``):
    ``gatewayd run`` and ``gatewayctl config validate`` ask that."""
    return load_model(path, LaneConfig, check=field_problems if field else None)


def parse_config(text: str, source: str = "<text>") -> LaneConfig:
    """Validate a lane config given as TOML text."""
    return parse_model(text, LaneConfig, source=source)


__all__ = ["READING_KINDS", "LaneConfig", "load_config", "parse_config"]
