"""The supervisor keeps a device coming back whatever the device throws at it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest

from drivers.supervisor import Backoff, Health, Supervisor
from tests.drivers.serial_helpers import eventually


class _Buggy:
    """A device whose codec trips over its own input (an IndexError nobody foresaw)."""

    async def readings(self) -> AsyncIterator[int]:
        yield 1
        raise IndexError("list index out of range")


async def test_an_unexpected_error_takes_the_device_down_not_the_lane(
    caplog: pytest.LogCaptureFixture,
) -> None:
    opened = 0

    @contextlib.asynccontextmanager
    async def open_device() -> AsyncIterator[_Buggy]:
        nonlocal opened
        opened += 1
        yield _Buggy()

    got: list[int] = []
    sup: Supervisor[int] = Supervisor(
        Health("dev"), open_device, got.append, backoff=Backoff(initial=0.01, maximum=0.02)
    )
    task = asyncio.create_task(sup.run())
    try:
        with caplog.at_level(logging.ERROR, logger="drivers.supervisor"):
            await eventually(lambda: opened >= 3, what="the device reopened after its errors")
        assert not task.done(), "the error escaped the supervisor"
        assert sup.health.detail == "IndexError: list index out of range"
        assert got == [1] * len(got)
        assert sup.health.reconnects >= 2
        # the traceback is logged once for the cause, not on every retry
        traced = [r for r in caplog.records if r.exc_info]
        assert len(traced) == 1
        assert traced[0].exc_info is not None
        assert traced[0].exc_info[0] is IndexError
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert task.cancelled()  # and cancelling still stops it


class _Stop(Exception):
    pass


async def test_a_device_that_never_answers_is_retried_at_the_longest_delay_forever() -> None:
    @contextlib.asynccontextmanager
    async def open_device() -> AsyncIterator[_Buggy]:
        raise OSError("no route to host")
        yield _Buggy()  # never reached: the relay is off for good

    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) == 3000:  # hours of retries at the real delays
            raise _Stop

    sup: Supervisor[int] = Supervisor(
        Health("relay"),
        open_device,
        lambda _: None,
        backoff=Backoff(initial=0.5, maximum=30.0, jitter=0.0),
        sleep=sleep,
    )
    with pytest.raises(_Stop):
        await sup.run()
    assert delays[-1] == 30.0
    assert sup.health.state == "down"
    assert sup.health.reconnects == 3000
