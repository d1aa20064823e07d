"""Running the project's commands as a user would: a child process from the checkout root
(a helper module, not a test)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Awaitable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# the console scripts' entry points, run with this interpreter (no install needed)
GATEWAYD = (sys.executable, "-c", "from gatewayd.cli import main; main()")
GATEWAYCTL = (sys.executable, "-c", "from gatewayd.ctl import main; main()")
RECOGNITION = (sys.executable, "-m", "recognition")


EXAMPLE_CONFIG = ROOT / "config" / "lane.example.toml"


def example_config(**devices: str) -> str:
    """The example lane config, each ``[devices.NAME]`` table named here replaced by the
    given TOML body (its keys, one per line)."""
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    for name, body in devices.items():
        table = re.compile(rf"^\[devices\.{name}\]\n(?:[^\n\[]+\n)*", re.MULTILINE)
        text, count = table.subn(f"[devices.{name}]\n{body.strip()}\n", text)
        assert count == 1, f"no [devices.{name}] table in the example config"
    return text


def run(
    command: tuple[str, ...], *args: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run a command to its end; its output comes back as text."""
    return subprocess.run(
        [*command, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def gatewayd(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``gatewayd ARGS``."""
    return run(GATEWAYD, *args, timeout=timeout)


async def run_async(
    command: tuple[str, ...],
    *args: str,
    limit_s: float = 60,
    meanwhile: Awaitable[object] | None = None,
) -> tuple[int, str, str]:
    """Run a command without blocking the loop (a lane under test may run on it); awaits
    ``meanwhile`` once the command has started. Returns exit code, stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        *command,
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    if meanwhile is not None:
        await meanwhile
    async with asyncio.timeout(limit_s):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
