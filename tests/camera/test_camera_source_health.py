"""A camera source on plain values: the lane is told the source is down while any of its views
is, and up again only once all of them are; a view's burst counts as one witness."""

from __future__ import annotations

from typing import Any

from drivers.supervisor import Health
from gatewayd.cameras import ContainerCameraSource
from gatewayd.events import ContainersRead, DeviceFault, DeviceRecovered, Event
from recognition.containers import ContainerReading


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


class _Frame:
    def __init__(self, image: str) -> None:
        self.image = image


class _Recognition:
    """Reads each frame as the number it was labelled with (the OCR is tested elsewhere)."""

    def __init__(self, readings: dict[str, ContainerReading]) -> None:
        self.readings = readings

    async def read_containers(self, image: str) -> list[ContainerReading]:
        return [self.readings[image]]

    async def keep(self, pass_id: str, label: str, crop: Any) -> None:
        return None


def _reading(number: str) -> ContainerReading:
    return ContainerReading(number, True, 0.9, None, (0, 0, 10, 10), "horizontal")


async def test_one_cameras_burst_repeating_a_misreading_does_not_outvote_two_other_views() -> None:
    # Both numbers pass the check digit. The left camera's five frames see the box from one
    # place a moment apart and misread it alike; they are one witness, not five.
    right, wrong = "MSKU3866036", "MSKU3806037"
    events: list[Event] = []
    views = _Views()
    views.frames = {
        "left": [_Frame("misread")] * 5,
        "right": [_Frame("read")],
        "top": [_Frame("read")],
    }
    recognition = _Recognition({"misread": _reading(wrong), "read": _reading(right)})
    source = ContainerCameraSource(
        "box-cams", "containers", views, ["left", "right", "top"], recognition
    )
    source._emit = events.append
    await source.read("P1")
    (read,) = events
    assert isinstance(read, ContainersRead)
    assert [c.number for c in read.containers] == [right]
    assert read.pass_id == "P1"
