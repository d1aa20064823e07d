"""What the `gatewayd` and `gatewayctl` commands share: bad input files end the command with
each problem on standard error and exit status 1."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from gatewayd.tomlfile import FileError

if TYPE_CHECKING:
    from gatewayd.config import LaneConfig


@contextlib.contextmanager
def exit_on_file_error() -> Iterator[None]:
    """Turn a ``FileError`` inside into its problems on stderr (key path and line) and exit 1."""
    try:
        yield
    except FileError as exc:
        for problem in exc.problems:
            typer.echo(f"{exc.path}: {problem}", err=True)
        raise typer.Exit(1) from None


def load_config_or_exit(path: Path, *, field: bool = False) -> LaneConfig:
    """The lane config at ``path``, or exit 1 naming what is wrong with it (with ``field``,
    also what keeps it from running on real devices here: ``config.field_problems``)."""
    from gatewayd.config import load_config  # pydantic models load only when a config is read

    with exit_on_file_error():
        return load_config(path, field=field)
