"""`gatewayd`: run a lane on real devices, or against the simulator."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from gatewayd.cli_support import exit_on_file_error, load_config_or_exit

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@app.command()
def sim(
    scenario: Annotated[
        Path | None, typer.Option(help="Scenario file (docs/scenarios.md); default: generated.")
    ] = None,
    vehicles: Annotated[int, typer.Option(min=1, max=100_000, help="Vehicles to generate.")] = 50,
    seed: Annotated[int, typer.Option(help="Seed of the generated traffic and timings.")] = 1,
    fast: Annotated[bool, typer.Option(help="Run a hundred times faster than real time.")] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="End with one JSON line of figures.")
    ] = False,
    direct: Annotated[
        bool,
        typer.Option(help="Hand readings to the lane directly, not through device protocols."),
    ] = False,
    ocr: Annotated[
        bool,
        typer.Option(
            help="Plates and containers read by the lane's cameras and OCR from rendered frames "
            "(slower: a second or two of recognition per truck)."
        ),
    ] = False,
    workdir: Annotated[
        Path | None,
        typer.Option(
            help="Keep the ledger here instead of a temporary folder (a folder without one)."
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("-v", help="Log lane events.")] = False,
    broker: Annotated[
        str | None,
        typer.Option(
            help="HOST:PORT of an MQTT broker: link the lane to a simulated central through it."
        ),
    ] = None,
) -> None:
    """Run one lane against simulated hardware and traffic; print each pass and a summary.

    Exit 2 when the lane closed the barrier onto a vehicle or released a truck it should not
    have, 3 when central lacks passes at the end (with --broker), 1 for a bad scenario.
    """
    _logging(verbose)
    address = _broker_address(broker) if broker else None
    # the field daemon never loads the simulator
    from sim.run import format_result, print_report, simulate
    from sim.scenario import generate, load_scenario

    with exit_on_file_error():
        spec = load_scenario(scenario) if scenario else generate(vehicles, seed)

    def show(result: object) -> None:
        typer.echo(format_result(result))  # type: ignore[arg-type]

    try:
        report = asyncio.run(
            simulate(
                spec,
                seed=seed,
                fast=fast,
                direct=direct,
                ocr=ocr,
                workdir=workdir,
                on_result=show,
                broker=address,
            )
        )
    except ValueError as exc:
        typer.echo(f"scenario: {exc}", err=True)
        raise typer.Exit(1) from None
    print_report(report, sys.stdout, as_json=json_out)
    summary = report.summary()
    if report.collisions or summary["wrong_releases"]:
        raise typer.Exit(2)  # the lane did what it must never do
    if summary.get("central", {}).get("missing"):
        raise typer.Exit(3)  # passes central never got


def _broker_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise typer.BadParameter(f"{text!r} is not HOST:PORT", param_hint="--broker")
    return host, int(port)


@app.command()
def run(
    config: Annotated[Path, typer.Option("--config", "-c", help="Lane config (TOML).")],
    verbose: Annotated[bool, typer.Option("-v", help="Log lane events.")] = False,
) -> None:
    """Run a lane on its real devices until stopped (SIGINT/SIGTERM)."""
    _logging(verbose)
    from gatewayd.runner import run_lane

    cfg = load_config_or_exit(config, field=True)
    try:
        asyncio.run(run_lane(cfg))
    except KeyboardInterrupt:
        pass
    except ValueError as exc:
        typer.echo(f"{config}: {exc}", err=True)
        raise typer.Exit(1) from None
    except ExceptionGroup as group:  # a lane part that could not start, from its TaskGroup
        cause = _cannot_start(group)
        if cause is None:
            raise
        typer.echo(f"{config}: {cause}", err=True)
        raise typer.Exit(1) from None


def _cannot_start(group: BaseExceptionGroup[BaseException]) -> Exception | None:
    """The error that kept a lane part from starting (a clear message, not a traceback)."""
    from gatewayd.control import ControlSocketError
    from gatewayd.errors import first_error

    return first_error(group, (ControlSocketError, ValueError))


def main() -> None:
    """Console entry point."""
    app()
