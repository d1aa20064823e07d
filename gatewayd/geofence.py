"""Is a GPS fix inside the gate's geofence polygon?"""

from __future__ import annotations

from collections.abc import Sequence

Point = tuple[float, float]  # (lat, lon) in decimal degrees


def contains(polygon: Sequence[Point], lat: float, lon: float) -> bool:
    """True when (lat, lon) lies inside the polygon (even-odd rule; edges count as inside).

    A gate's fence spans a few hundred metres, so treating degrees as planar is exact enough;
    fences that cross the antimeridian are not supported.

    >>> square = [(0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, 0.0)]
    >>> contains(square, 0.5, 0.5), contains(square, 1.5, 0.5), contains(square, 0.0, 0.5)
    (True, False, True)
    """
    inside = False
    n = len(polygon)
    for i in range(n):
        (y1, x1), (y2, x2) = polygon[i], polygon[(i + 1) % n]
        if _on_segment((lat, lon), (y1, x1), (y2, x2)):
            return True
        if (y1 > lat) != (y2 > lat):
            x_cross = x1 + (lat - y1) * (x2 - x1) / (y2 - y1)
            if lon < x_cross:
                inside = not inside
    return inside


def _on_segment(p: Point, a: Point, b: Point) -> bool:
    (y, x), (y1, x1), (y2, x2) = p, a, b
    cross = (x - x1) * (y2 - y1) - (y - y1) * (x2 - x1)
    if abs(cross) > 1e-12:
        return False
    return min(x1, x2) <= x <= max(x1, x2) and min(y1, y2) <= y <= max(y1, y2)
