"""A camera source's own health over its views, on plain values: the lane is told the source is
down while any of its views is, and up again only once all of them are."""

from __future__ import annotations

from typing import Any

from drivers.supervisor import Health
from gatewayd.cameras import ContainerCameraSource
from gatewayd.events import DeviceFault, DeviceRecovered, Event


class _Views:
    """What the source asks of a camera set: a burst from each view that has a frame."""

    def __init__(self) -> None:
        self.frames: dict[str, list[Any]] = {}

    def listen(self, callback: Any) -> None:
        pass

    async def bursts(self, views: list[str]) -> dict[str, list[Any]]:
        return {v: self.frames[v] for v in views if v in self.frames}


def _health(state: str) -> Health:
    health = Health("camera")
    health.change(state, "stream ended" if state == "down" else "", announce=False)
    return health


async def test_frames_from_one_view_do_not_clear_a_fault_another_view_still_has() -> None:
    events: list[Event] = []
    views = _Views()
    source = ContainerCameraSource("box-cams", "containers", views, ["left", "right"], None)
    source._emit = events.append
    source._on_camera("left", _health("down"))
    source._on_camera("right", _health("down"))
    assert await source._bursts() == []  # a pass with no frame at all
    source._on_camera("right", _health("up"))  # right is back, left is not
    views.frames = {"right": ["frame"]}
    assert await source._bursts() == [["frame"]]
    assert [type(e) for e in events] == [DeviceFault, DeviceFault]  # never recovered
    source._on_camera("left", _health("up"))
    assert [type(e) for e in events][-1] is DeviceRecovered
