"""`gatewayctl device ...`: a technician reads a field device live, or commissions a seal.

These open the device's port themselves, so run them with the lane daemon stopped (a port the
daemon holds is refused: ports are opened exclusively).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from drivers.codec import Rejected
from gatewayd.cli_support import load_config_or_exit

if TYPE_CHECKING:
    from gatewayd.config import LaneConfig

device_app = typer.Typer(no_args_is_help=True, help="Field devices: live readings, seals.")
eseal_app = typer.Typer(no_args_is_help=True, help="Commission e-seals.")
device_app.add_typer(eseal_app, name="eseal")

DEFAULT_CONFIG = Path("/etc/gatewayd/lane.toml")
ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="Lane config (TOML).")]


class DeviceKind(StrEnum):
    """Devices `device read` knows."""

    weighbridge = "weighbridge"
    eseal = "eseal"
    gps = "gps"
    qr = "qr"


def _config_device(cfg: LaneConfig, config: Path, key: str, wanted: type) -> Any:
    """The device ``cfg`` (loaded from ``config``) has under ``devices.<key>``, or exit 1
    when it is not of the kind wanted."""
    device = getattr(cfg.devices, key)
    if not isinstance(device, wanted):
        kind = getattr(device, "kind", "none")
        typer.echo(f"{config}: devices.{key} is of kind {kind!r}: no device to talk to", err=True)
        raise typer.Exit(1)
    return device


def _print(item: Any) -> None:
    as_dict: Callable[[], dict[str, object]] | None = getattr(item, "as_dict", None)
    data = as_dict() if as_dict else {"value": repr(item)}
    typer.echo(json.dumps({"type": type(item).__name__, **data}, ensure_ascii=False))


async def _stream(
    readings: Callable[[], Any], *, raw: bool, keep: Callable[[Any], bool], limit: int | None
) -> None:
    shown = 0
    async with readings() as device:
        stream: AsyncIterator[Any] = device.readings()
        async for item in stream:
            if isinstance(item, Rejected) and not raw:
                continue
            if not raw and not keep(item):
                continue
            _print(item)
            shown += 1
            if limit is not None and shown >= limit:
                return


def _run(coro: Any, seconds: float | None, *, deadline_ends: bool = True) -> None:
    """Run a device command for at most ``seconds``. Reaching that deadline ends a reading
    command normally (``deadline_ends``) and fails any other; a device's own timeout (no
    answer to its requests) or error always fails, with exit status 1."""
    from drivers.supervisor import DriverError

    async def bounded() -> None:
        deadline = asyncio.timeout(seconds)
        try:
            async with deadline:
                await coro
        except TimeoutError:
            if not deadline.expired():
                raise  # the device's, not ours
            if not deadline_ends:
                raise TimeoutError(f"no result within {seconds:g} s") from None

    try:
        asyncio.run(bounded())
    except (TimeoutError, DriverError) as exc:  # (TimeoutError is an OSError: first)
        typer.echo(f"the device did not answer: {exc or type(exc).__name__}", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        typer.echo(f"cannot open the device: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        pass


@device_app.command("read")
def read(
    kind: Annotated[DeviceKind, typer.Argument(help="Which device.")],
    config: ConfigOption = DEFAULT_CONFIG,
    raw: Annotated[bool, typer.Option(help="Every frame, with its bytes, rejects too.")] = False,
    count: Annotated[int | None, typer.Option(min=1, help="Stop after this many.")] = None,
    seconds: Annotated[float | None, typer.Option(min=0, help="Stop after this long.")] = None,
) -> None:
    """Print live decoded readings from the configured device, one JSON object per line."""
    from drivers.eseal import EsealReader
    from drivers.weighbridge import StableWeight, Weighbridge

    def raw_chunk(data: bytes) -> None:
        typer.echo(json.dumps({"type": "raw", "hex": data.hex()}))

    cfg = load_config_or_exit(config)

    if kind is DeviceKind.weighbridge:
        from gatewayd.config import WeighbridgeDevice

        wb = Weighbridge(_config_device(cfg, config, "weight", WeighbridgeDevice))
        # without --raw: settled weights and status changes, not every frame
        coro = _stream(
            wb.open_device,
            raw=raw,
            keep=lambda r: isinstance(r, StableWeight) or type(r).__name__ == "ScaleStatus",
            limit=count,
        )
    elif kind is DeviceKind.eseal:
        from gatewayd.config import EsealDevice

        reader = EsealReader(_config_device(cfg, config, "seal", EsealDevice))
        coro = _stream(reader.open_device, raw=raw, keep=lambda r: True, limit=count)
    elif kind is DeviceKind.gps:
        from drivers.gps import open_gps
        from gatewayd.config import GpsDevice

        gps = _config_device(cfg, config, "gps", GpsDevice)
        coro = _stream(
            lambda: open_gps(gps, on_raw=raw_chunk if raw else None),
            raw=raw,
            keep=lambda r: True,
            limit=count,
        )
    else:
        from drivers.qr import describe, open_qr_scanner
        from drivers.release_note import public_keys
        from gatewayd.config import QrScannerDevice

        scanner = _config_device(cfg, config, "qr", QrScannerDevice)
        keys = public_keys(cfg.central.public_keys)

        async def scans() -> None:
            shown = 0
            async with open_qr_scanner(scanner, on_raw=raw_chunk if raw else None) as device:
                async for scan in device.readings():
                    if isinstance(scan, Rejected):
                        if raw:
                            _print(scan)
                        continue
                    typer.echo(json.dumps(describe(scan.payload, keys), ensure_ascii=False))
                    shown += 1
                    if count is not None and shown >= count:
                        return

        coro = scans()
    _run(coro, seconds)


def _seal_command(config: Path, seal_id: str, action: str) -> None:
    from drivers.eseal import EsealError, EsealReader, check_seal_id
    from gatewayd.config import EsealDevice

    try:
        check_seal_id(seal_id)  # before the port is opened: a typo is no reader fault
    except ValueError as exc:
        typer.echo(f"{action}: {exc}", err=True)
        raise typer.Exit(1) from None
    settings = _config_device(load_config_or_exit(config), config, "seal", EsealDevice)

    async def act() -> None:
        reader = EsealReader(settings)
        async with reader.open_device():
            try:
                state = await getattr(reader, action)(seal_id)
            except EsealError as exc:
                typer.echo(f"{action} {seal_id}: {exc}", err=True)
                raise typer.Exit(1) from None
            typer.echo(json.dumps({"seal_id": seal_id, "action": action, "state": state}))

    _run(act(), 30, deadline_ends=False)


@eseal_app.command("unlock")
def unlock(
    seal_id: Annotated[str, typer.Argument(help="Seal id, as the reader reports it.")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Unlock the seal in the reader's field."""
    _seal_command(config, seal_id, "unlock")


@eseal_app.command("arm")
def arm(
    seal_id: Annotated[str, typer.Argument(help="Seal id, as the reader reports it.")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Arm the seal in the reader's field."""
    _seal_command(config, seal_id, "arm")


camera_app = typer.Typer(no_args_is_help=True, help="Cameras: aim and check a view.")


@camera_app.command("snapshot")
def camera_snapshot(
    # escaped: the help is rich markup, where [cameras] would be taken for a style tag
    view: Annotated[str, typer.Argument(help=r"Camera name, as in \[\[cameras]] of the config.")],
    config: ConfigOption = DEFAULT_CONFIG,
    out: Annotated[Path | None, typer.Option(help="Where to save the JPEG.")] = None,
    ocr: Annotated[bool, typer.Option(help="Also show what the lane reads in it.")] = False,
) -> None:
    """Grab one frame from a configured camera, save it, and (with --ocr) show what is read."""
    from drivers.camera import grab_frame
    from drivers.supervisor import DriverError

    cfg = load_config_or_exit(config)
    settings = next((c for c in cfg.cameras if c.name == view), None)
    if settings is None:
        known = ", ".join(c.name for c in cfg.cameras) or "none"
        typer.echo(f"{config}: no camera named {view!r} (configured: {known})", err=True)
        raise typer.Exit(1)
    try:
        frame = grab_frame(settings)
    except (DriverError, OSError) as exc:
        typer.echo(f"camera {view}: {exc}", err=True)
        raise typer.Exit(1) from None
    path = out or Path(f"{view}-{time.strftime('%Y%m%dT%H%M%S')}.jpg")
    try:
        path.write_bytes(frame.jpeg())
    except OSError as exc:
        typer.echo(f"cannot save the snapshot to {path}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None
    height, width = frame.image.shape[:2]
    report: dict[str, object] = {"view": view, "file": str(path), "width": width, "height": height}
    if ocr:
        from recognition.containers import ContainerReader
        from recognition.engine import OcrEngine
        from recognition.plates import PlateReader

        engine = OcrEngine()
        report["plates"] = [
            {"text": p.text, "confidence": round(p.confidence, 3)}
            for p in PlateReader(engine).find_plates(frame.image)
        ]
        report["containers"] = [c.as_dict() for c in ContainerReader(engine).read(frame.image)]
    typer.echo(json.dumps(report, ensure_ascii=False))
