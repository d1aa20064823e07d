"""The lane's control socket: a Unix socket on which `gatewayctl` asks for status and an officer
releases or holds the pass at the lane. Reaching the socket is its file's permissions (owner
and group only); overriding a pass can be narrowed to root and the members of a Unix group
(``[control] officers_group``), known from the kernel's peer credentials, not from what the
client says. Every override carries the officer's id and reason and is audited in the ledger,
and the Unix user who asked is logged with it.

Protocol: one JSON object per line each way.

    {"cmd": "status"}
    {"cmd": "override", "action": "release" | "hold", "officer": "...", "reason": "..."}
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import logging
import os
import pwd
import socket
import stat
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from gatewayd.events import Override
from gatewayd.lane import Phase

if TYPE_CHECKING:  # gatewayctl imports this module: no pydantic models at its start-up
    from gatewayd.config import LaneConfig
    from gatewayd.events import Event
    from gatewayd.lane import LaneCore

log = logging.getLogger(__name__)

MAX_LINE = 4096
IDLE_S = 30.0  # a client that sends no whole line for this long is dropped
MAX_CLIENTS = 16  # gatewayctl opens one connection per request; more is someone else's loop


class Lane(Protocol):
    """What the socket needs of a running lane (``daemon.Lane``, which serves it)."""

    config: LaneConfig
    core: LaneCore
    dropped: int

    def emit(self, event: Event) -> None:
        """Queue an event for the lane's core."""


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


@dataclass(frozen=True)
class Peer:
    """Who is on the other end of a connection, as the kernel says (SO_PEERCRED)."""

    pid: int
    uid: int
    gid: int

    @classmethod
    def of(cls, writer: asyncio.StreamWriter) -> Peer | None:
        """The peer of a Unix socket connection, or None where the kernel does not say."""
        sock = writer.get_extra_info("socket")
        if sock is None or not hasattr(socket, "SO_PEERCRED"):
            return None
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return cls(*struct.unpack("3i", creds))

    def __str__(self) -> str:
        return f"uid {self.uid} ({_user(self.uid) or '?'}), pid {self.pid}"


def _user(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def may_override(uid: int, officers_group: str | None) -> bool:
    """Whether the Unix user ``uid`` may override a pass: anyone when no group is set, else
    root and the members of ``officers_group`` (primary or supplementary).

    >>> may_override(0, "customs-officers"), may_override(65534, None)
    (True, True)
    """
    if officers_group is None or uid == 0:
        return True
    try:
        wanted = grp.getgrnam(officers_group).gr_gid
        user = pwd.getpwuid(uid)
    except KeyError:
        return False
    return wanted in os.getgrouplist(user.pw_name, user.pw_gid)


async def _answer(
    lane: Lane, request: Any, peer: Peer | None = None, officers_group: str | None = None
) -> dict[str, Any]:
    if not isinstance(request, dict):
        return {"error": "expected a JSON object"}
    cmd = request.get("cmd")
    if cmd == "status":
        return status(lane)
    if cmd == "override":
        if officers_group is not None and (
            peer is None or not may_override(peer.uid, officers_group)
        ):
            who = f"user {_user(peer.uid) or peer.uid}" if peer else "an unknown user"
            log.warning("control: override refused to %s (not in %s)", peer, officers_group)
            return {"error": f"{who} may not override: not in group {officers_group!r}"}
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
        log.warning(
            "control: %s override %s of %s by officer %r, asked by %s",
            action,
            override_id,
            tx.pass_id,
            officer.strip(),
            peer or "an unknown user",
        )
        # bound to the pass seen now: if the truck changes before the core takes it, refused
        asker = f"unix:{peer}" if peer else "unix:unknown"
        lane.emit(Override(action, officer.strip(), reason.strip(), override_id, tx.pass_id, asker))
        return {"accepted": True, "override_id": override_id, "pass_id": tx.pass_id}
    return {"error": f"unknown cmd {cmd!r}"}


async def _reply(
    lane: Lane, line: bytes, peer: Peer | None, officers_group: str | None
) -> dict[str, Any]:
    """The answer to one request line; a request that cannot be read gets an error."""
    if len(line) > MAX_LINE:
        return {"error": "request too long"}
    try:
        request = json.loads(line)
    except UnicodeDecodeError:
        return {"error": "not UTF-8"}
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
        return {"error": "not JSON"}
    return await _answer(lane, request, peer, officers_group)


async def serve(lane: Lane, path: Path, *, officers_group: str | None = None) -> None:
    """Serve the control socket until cancelled; overrides only from root and the members of
    ``officers_group`` when it is given."""
    if officers_group is not None:
        try:
            grp.getgrnam(officers_group)
        except KeyError:
            raise ControlSocketError(
                f"officers_group {officers_group!r} is no group here"
            ) from None
    await _prepare(path)
    clients = 0

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal clients
        clients += 1
        peer = Peer.of(writer)
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
                await _send(writer, await _reply(lane, line, peer, officers_group))
        except ConnectionError:
            pass  # a client that went away
        except TimeoutError:
            log.info("control: dropped a client idle for %g s", IDLE_S)
        finally:
            clients -= 1
            writer.close()

    try:
        server = await asyncio.start_unix_server(client, path=str(path), limit=MAX_LINE * 2)
        os.chmod(path, 0o660)
    except OSError as exc:
        raise ControlSocketError(f"cannot serve {path}: {exc.strerror or exc}") from None
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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return False
    except OSError as exc:  # its folder is a file, or may not be made
        raise ControlSocketError(f"cannot serve {path}: {exc.strerror or exc}") from None
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
