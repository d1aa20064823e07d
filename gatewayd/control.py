"""The lane's control socket: a Unix socket on which `gatewayctl` asks for status and an officer
releases or holds the pass at the lane. Access is the socket file's permissions (owner and
group only); every override carries the officer's id and reason and is audited in the ledger.

Protocol: one JSON object per line each way.

    {"cmd": "status"}
    {"cmd": "override", "action": "release" | "hold", "officer": "...", "reason": "..."}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gatewayd.events import Override
from gatewayd.lane import Phase

if TYPE_CHECKING:
    from gatewayd.daemon import Lane

log = logging.getLogger(__name__)

MAX_LINE = 4096


def status(lane: Lane) -> dict[str, Any]:
    """What a technician sees first: phase, the pass at the lane, faults, loops, barrier."""
    core = lane.core
    tx = core.tx
    return {
        "lane": lane.config.lane.id,
        "phase": core.phase.value,
        "pass_id": tx.pass_id if tx else None,
        "decision": tx.record.outcome.value if tx and tx.record else None,
        "reasons": [str(r) for r in tx.record.reasons] if tx and tx.record else [],
        "faults": dict(core.faults),
        "loops": dict(core.loops),
        "barrier": core.barrier,
        "dropped_events": lane.dropped,
    }


async def _answer(lane: Lane, request: Any) -> dict[str, Any]:
    if not isinstance(request, dict):
        return {"error": "expected a JSON object"}
    cmd = request.get("cmd")
    if cmd == "status":
        return status(lane)
    if cmd == "override":
        action, officer, reason = (request.get(k) for k in ("action", "officer", "reason"))
        if action not in ("release", "hold"):
            return {"error": "action must be release or hold"}
        if not isinstance(officer, str) or not officer.strip():
            return {"error": "an override needs the officer's id"}
        if not isinstance(reason, str) or not reason.strip():
            return {"error": "an override needs a reason"}
        phase, tx = lane.core.phase, lane.core.tx
        if action == "release" and phase is not Phase.HELD:
            return {"error": f"no held or rejected pass at the lane (lane is {phase.value})"}
        if action == "hold" and phase is not Phase.COLLECTING:
            return {"error": f"no pass being checked at the lane (lane is {phase.value})"}
        assert tx is not None  # a held or collecting lane has its pass
        wanted = request.get("pass_id")
        if wanted is not None and wanted != tx.pass_id:
            return {"error": f"pass {wanted} is not the one at the lane ({tx.pass_id})"}
        override_id = f"OV-{uuid.uuid4().hex[:12]}"
        # bound to the pass seen now: if the truck changes before the core takes it, refused
        lane.emit(Override(action, officer.strip(), reason.strip(), override_id, tx.pass_id))
        return {"accepted": True, "override_id": override_id, "pass_id": tx.pass_id}
    return {"error": f"unknown cmd {cmd!r}"}


async def serve(lane: Lane, path: Path) -> None:
    """Serve the control socket until cancelled."""
    _prepare(path)

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                if len(line) > MAX_LINE:
                    answer: dict[str, Any] = {"error": "request too long"}
                else:
                    try:
                        answer = await _answer(lane, json.loads(line))
                    except json.JSONDecodeError:
                        answer = {"error": "not JSON"}
                writer.write(json.dumps(answer, ensure_ascii=False).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, ValueError):
            pass  # a client that went away or sent an endless line
        finally:
            writer.close()

    server = await asyncio.start_unix_server(client, path=str(path), limit=MAX_LINE * 2)
    os.chmod(path, 0o660)
    try:
        async with server:
            await server.serve_forever()
    finally:
        _remove(path)


def _prepare(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove(path)  # a socket left by a previous run


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


async def request(path: Path, message: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:  # noqa: ASYNC109
    """Send one request to a running lane and return its answer."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_unix_connection(str(path))
        try:
            writer.write(json.dumps(message).encode() + b"\n")
            await writer.drain()
            answer: dict[str, Any] = json.loads(await reader.readline())
            return answer
        finally:
            writer.close()
