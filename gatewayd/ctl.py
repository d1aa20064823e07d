"""`gatewayctl`: the technician's tool for commissioning and servicing a lane."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from gatewayd.cli_support import load_config_or_exit
from gatewayd.ctl_device import camera_app, device_app

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
config_app = typer.Typer(no_args_is_help=True, help="Lane configuration files.")
app.add_typer(config_app, name="config")
app.add_typer(device_app, name="device")
app.add_typer(camera_app, name="camera")


@config_app.command("validate")
def config_validate(path: Annotated[Path, typer.Argument(help="Lane config (TOML).")]) -> None:
    """Check a config file for `gatewayd run` on this machine: exit 0 when good; else name
    each key path, line and problem."""
    cfg = load_config_or_exit(path, field=True)
    typer.echo(f"{path}: ok (lane {cfg.lane.id}, profile {cfg.lane.profile})")


def _socket(config: Path | None, socket: Path | None) -> Path:
    if socket is not None:
        return socket
    path = config or Path("/etc/gatewayd/lane.toml")
    cfg = load_config_or_exit(path)
    if cfg.control is None:
        typer.echo(f"{path}: no [control] section: the lane has no control socket", err=True)
        raise typer.Exit(1)
    return cfg.control.socket


def _ask(config: Path | None, socket: Path | None, message: dict[str, object]) -> dict[str, object]:
    import asyncio

    from gatewayd.control import request

    path = _socket(config, socket)
    try:
        answer = asyncio.run(request(path, message))
    except (OSError, TimeoutError) as exc:
        why = str(exc) or "no answer (the lane is busy or hung)"
        typer.echo(f"lane not reachable at {path}: {why}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(answer, ensure_ascii=False))
    if "error" in answer:
        raise typer.Exit(1)
    return answer


ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Lane config (TOML).")]
SocketOpt = Annotated[Path | None, typer.Option(help="Control socket (instead of --config).")]


@app.command("status")
def lane_status(config: ConfigOpt = None, socket: SocketOpt = None) -> None:
    """The running lane's phase, the pass at the barrier, faults, loops and barrier."""
    _ask(config, socket, {"cmd": "status"})


@app.command("override")
def override(
    action: Annotated[str, typer.Argument(help="release or hold")],
    officer: Annotated[str, typer.Option(help="Officer id (audited).")],
    reason: Annotated[str, typer.Option(help="Why (audited).")],
    pass_id: Annotated[
        str | None,
        typer.Option(
            "--pass", help="The pass meant (from `status`); refused if another is at the lane."
        ),
    ] = None,
    config: ConfigOpt = None,
    socket: SocketOpt = None,
) -> None:
    """Release a held truck, or hold the one being checked; audited in the ledger."""
    if action not in ("release", "hold"):
        typer.echo("action must be release or hold", err=True)
        raise typer.Exit(2)
    request: dict[str, object] = {
        "cmd": "override",
        "action": action,
        "officer": officer,
        "reason": reason,
    }
    if pass_id is not None:
        request["pass_id"] = pass_id
    _ask(config, socket, request)


def main() -> None:
    """Console entry point."""
    app()
