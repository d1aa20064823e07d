"""One supervisor owns reconnecting for every driver, so no driver writes its own retry loop.

A driver is a factory returning an async context manager; entering it opens the device and
yields a ``Device`` whose ``readings()`` is an async iterator. The supervisor opens it, pumps
readings to a callback (counting, not passing on, any ``Rejected`` frames), and when the device
fails (an ``OSError``, ``DriverError`` or ``TimeoutError``, a line that stays silent, or the
iterator ending) marks it down, waits a capped exponential backoff with jitter, and opens it
again. Any other exception is a driver bug or a device answer nobody foresaw: it is logged with
its traceback and handled the same way, so no device input can stop a lane. State changes are
logged once each, not on every retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Generic, Literal, Protocol, TypeVar

from drivers.codec import Rejected

log = logging.getLogger(__name__)

R_co = TypeVar("R_co", covariant=True)
R = TypeVar("R")

State = Literal["starting", "up", "down"]


class DriverError(Exception):
    """A device-level failure the supervisor recovers from by reopening the device."""


def raise_if_stopping() -> None:
    """Raise ``CancelledError`` if someone has asked the current task to stop.

    On Python 3.11 a cancellation that arrives just as a library's ``wait_for`` finishes
    (pymodbus waits for every response with one) is swallowed: the call returns normally and
    a polling loop would go on forever, with its task marked as cancelling. Loops that call
    such libraries check after each call.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Device(Protocol[R_co]):
    """An opened device: an async stream of decoded readings."""

    def readings(self) -> AsyncIterator[R_co]:
        """Yield readings until the device fails (raise) or closes (return)."""
        ...


_MAX_GROWTH = 64  # a backoff grows by its factor at most this many times, whatever its settings


@dataclass
class Backoff:
    """Capped exponential backoff with full jitter on a fraction of each delay.

    >>> b = Backoff(initial=1.0, maximum=8.0, jitter=0.0)
    >>> [b.next() for _ in range(5)]
    [1.0, 2.0, 4.0, 8.0, 8.0]
    >>> b.reset(); b.next()
    1.0
    >>> [b.next() for _ in range(5000)][-1]  # after hours of retries, still the cap
    8.0
    """

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.3  # up to this fraction of each delay is randomised
    rng: random.Random = field(default_factory=random.Random)
    _attempt: int = 0

    def next(self) -> float:
        """The delay before the next attempt; grows until ``maximum``."""
        base = min(self.maximum, self.initial * self.factor**self._attempt)
        if base < self.maximum and self._attempt < _MAX_GROWTH:
            # growth stops at the cap: factor**attempt would overflow after ~1000 retries
            self._attempt += 1
        return base * (1.0 - self.jitter * self.rng.random())

    def reset(self) -> None:
        """Start again from ``initial`` (after the device has worked)."""
        self._attempt = 0


@dataclass
class Health:
    """What a lane and a technician want to know about one device."""

    name: str
    state: State = "starting"
    detail: str = ""
    since: float = field(default_factory=time.monotonic)
    accepted: int = 0  # frames decoded into readings
    rejected: int = 0  # frames refused (garbled, bad checksum, ...)
    reconnects: int = 0
    last_reading_at: float | None = None

    def change(
        self, state: State, detail: str, now: float | None = None, *, announce: bool = True
    ) -> bool:
        """Move to ``state`` (at ``now`` on the owner's clock, else monotonic time) and say
        whether that was a transition; a transition is logged once, unless ``announce`` is
        false (an owner holding a lock logs it with ``announce()`` after letting go)."""
        if state == self.state:
            self.detail = detail
            return False
        self.state, self.detail = state, detail
        self.since = time.monotonic() if now is None else now
        if announce:
            self.announce()
        return True

    def announce(self) -> None:
        """Log the current state as a transition."""
        if self.state == "up":
            log.info("%s up%s", self.name, f": {self.detail}" if self.detail else "")
        else:
            log.warning("%s down: %s", self.name, self.detail)

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready snapshot."""
        return {
            "name": self.name,
            "state": self.state,
            "detail": self.detail,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "reconnects": self.reconnects,
        }


@dataclass
class Supervisor(Generic[R]):
    """Keeps one device open for as long as it runs.

    ``on_reading`` receives each reading (it must not block: put it on a bounded queue);
    ``on_state`` is called on every up/down transition, once per change.
    ``silence_s`` turns a line that gives no accepted reading for that long into a failure (a
    device that streams continuously, such as a weighbridge indicator or a GPS, is dead when
    silent, and as good as dead when all it sends is rejected frames); such a device is up
    from its first accepted reading, not from the opening of its port.
    """

    health: Health
    open_device: Callable[[], AbstractAsyncContextManager[Device[R | Rejected]]]
    on_reading: Callable[[R], None]
    on_state: Callable[[Health], None] = lambda health: None
    backoff: Backoff = field(default_factory=Backoff)
    silence_s: float | None = None
    healthy_after_s: float = 5.0  # stay up this long before the backoff starts again
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    _traced: str = field(default="", init=False, repr=False)  # last unexpected failure logged

    def _set(self, state: State, detail: str) -> None:
        if self.health.change(state, detail):
            self.on_state(self.health)

    async def run(self) -> None:
        """Open, pump and reopen forever; returns only by cancellation."""
        while True:
            opened_at: float | None = None
            try:
                async with self.open_device() as device:
                    opened_at = time.monotonic()
                    if self.silence_s is None:
                        self._set("up", "")
                    # a streaming device is up once it gives a reading, not when its port
                    # opens: a dead indicator behind a live USB adapter opens every time
                    await self._pump(device)
                raise DriverError("device closed")
            except (OSError, DriverError, TimeoutError, EOFError) as exc:
                self._set("down", _describe(exc))
                # on 3.11 a cancellation that meets a finishing wait_for (pymodbus connects
                # with one) can also come out as that wait's error
                raise_if_stopping()
            except Exception as exc:
                # a driver bug or an answer nobody foresaw: the device is down, the lane is not
                detail = _describe(exc)
                if detail != self._traced:  # the traceback once, not on every retry
                    self._traced = detail
                    log.exception("%s failed unexpectedly", self.health.name)
                self._set("down", detail)
                raise_if_stopping()
            if opened_at is not None and time.monotonic() - opened_at >= self.healthy_after_s:
                self.backoff.reset()
                self._traced = ""
            self.health.reconnects += 1
            await self.sleep(self.backoff.next())

    async def _pump(self, device: Device[R | Rejected]) -> None:
        stream = device.readings()
        loop = asyncio.get_running_loop()
        # only an accepted reading moves the deadline: a line of garbage is as dead as a quiet one
        deadline = None if self.silence_s is None else loop.time() + self.silence_s
        rejected = 0  # frames refused since the last accepted reading
        try:
            while True:
                silence = asyncio.timeout_at(deadline)
                try:
                    async with silence:
                        reading = await anext(stream)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    if not silence.expired():
                        raise  # the device's own timeout, with its own message
                    if rejected:
                        raise DriverError(
                            f"no valid frame for {self.silence_s:g} s, {rejected} rejected"
                        ) from None
                    raise TimeoutError(f"silent for {self.silence_s:g} s") from None
                raise_if_stopping()
                if isinstance(reading, Rejected):
                    # counted, never passed on: garbage must not reach the lane
                    self.health.rejected += 1
                    rejected += 1
                    log.debug("%s rejected a frame: %s", self.health.name, reading.reason)
                    continue
                if self.silence_s is not None:
                    deadline = loop.time() + self.silence_s
                rejected = 0
                self.health.accepted += 1
                self.health.last_reading_at = time.monotonic()
                if self.health.state != "up":  # the first since opening (kept off the hot path)
                    self._set("up", "")
                self.on_reading(reading)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
