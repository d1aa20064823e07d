"""The supervisor tells a silent line from a device that raised TimeoutError itself."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from drivers.supervisor import Backoff, Health, Supervisor


class _TimesOut:
    async def readings(self) -> AsyncIterator[int]:
        yield 1
        raise TimeoutError("no answer to 3 requests")


@pytest.mark.parametrize("silence_s", [None, 30.0])
async def test_a_device_timeout_is_reported_as_the_device_said(silence_s: float | None) -> None:
    @contextlib.asynccontextmanager
    async def open_device() -> AsyncIterator[_TimesOut]:
        yield _TimesOut()

    got: list[int] = []
    downs: list[str] = []

    async def stop(_: float) -> None:
        raise _Stop

    sup: Supervisor[int] = Supervisor(
        Health("dev"),
        open_device,
        got.append,
        on_state=lambda h: downs.append(h.detail) if h.state == "down" else None,
        backoff=Backoff(jitter=0.0),
        silence_s=silence_s,
        sleep=stop,
    )
    with pytest.raises(_Stop):
        await sup.run()
    assert got == [1]
    assert downs == ["TimeoutError: no answer to 3 requests"]


class _Stop(Exception):
    pass
