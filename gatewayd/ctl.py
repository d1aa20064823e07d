"""`gatewayctl`: the technician's tool for commissioning and servicing a lane."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gatewayd.ctl_device import device_app
from gatewayd.tomlfile import FileError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
config_app = typer.Typer(no_args_is_help=True, help="Lane configuration files.")
app.add_typer(config_app, name="config")
app.add_typer(device_app, name="device")


@config_app.command("validate")
def config_validate(path: Annotated[Path, typer.Argument(help="Lane config (TOML).")]) -> None:
    """Check a config file: exit 0 when good; else name each key path, line and problem."""
    from gatewayd.config import load_config

    try:
        cfg = load_config(path)
    except FileError as exc:
        for problem in exc.problems:
            typer.echo(f"{exc.path}: {problem}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{path}: ok (lane {cfg.lane.id}, profile {cfg.lane.profile})")


def main() -> None:
    """Console entry point."""
    app()
