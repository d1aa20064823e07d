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
import stat
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gatewayd.events import Override
from gatewayd.lane import Phase

if TYPE_CHECKING:
    from gatewayd.daemon import Lane

log = logging.getLogger(__name__)

MAX_LINE = 4096
IDLE_S = 30.0  # a client that sends no whole line for this long is dropped
MAX_CLIENTS = 16  # gatewayctl opens one connection per request; more is someone else's loop


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


async def _reply(lane: Lane, line: bytes) -> dict[str, Any]:
    """The answer to one request line; a request that cannot be read gets an error."""
    if len(line) > MAX_LINE:
        return {"error": "request too long"}
    try:
        request = json.loads(line)
    except UnicodeDecodeError:
        return {"error": "not UTF-8"}
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError; so is NaN's kin
        return {"error": "not JSON"}
    return await _answer(lane, request)


async def serve(lane: Lane, path: Path) -> None:
    """Serve the control socket until cancelled."""
    await _prepare(path)
    clients = 0

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal clients
        clients += 1
        try:
            if clients > MAX_CLIENTS:
                await _send(writer, {"error": "too many connections"})
                return
            while True:
                try:
                    async with asyncio.timeout(IDLE_S):
                        line = await reader.readline()
                except ValueError:  # beyond the stream's limit: the rest cannot be framed
                    await _send(writer, {"error": "request too long"})
                    break
                if not line:
                    break
                await _send(writer, await _reply(lane, line))
        except ConnectionError:
            pass  # a client that went away
        except TimeoutError:
            log.info("control: dropped a client idle for %g s", IDLE_S)
        finally:
            clients -= 1
            writer.close()

    server = await asyncio.start_unix_server(client, path=str(path), limit=MAX_LINE * 2)
    os.chmod(path, 0o660)
    try:
        async with server:
            await server.serve_forever()
    finally:
        _remove(path)


async def _send(writer: asyncio.StreamWriter, answer: dict[str, Any]) -> None:
    writer.write(json.dumps(answer, ensure_ascii=False).encode() + b"\n")
    await writer.drain()


async def _prepare(path: Path) -> None:
    """Make way for the socket: a socket left by a previous run is removed, but nothing else
    is (a mistyped path must not cost the file there), nor one a running lane still serves."""
    if not _socket_there(path):
        return
    try:
        async with asyncio.timeout(1.0):
            _, writer = await asyncio.open_unix_connection(str(path))
    except (OSError, TimeoutError):
        _remove(path)  # nobody answers: left by a run that ended
        return
    writer.close()
    raise ControlSocketError(f"{path} is served by a running lane: is this lane started twice?")


def _socket_there(path: Path) -> bool:
    """Whether a socket is at ``path`` (its folder made if need be); anything else there is
    an error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISSOCK(mode):
        raise ControlSocketError(f"{path} exists and is not a socket: not replacing it")
    return True


class ControlSocketError(RuntimeError):
    """The control socket cannot be served at its configured path."""


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
            line = await reader.readline()
            try:
                answer = json.loads(line)
            except ValueError:
                answer = None
            if not isinstance(answer, dict):
                why = "closed the connection" if not line else "answered something unreadable"
                return {"error": f"the lane {why}"}
            return answer
        finally:
            writer.close()
