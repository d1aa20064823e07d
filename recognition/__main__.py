"""Read plates and container numbers from image files.

    python -m recognition [--kind plate|container|auto] [--json] [--fuse] IMAGE...

One JSON object per image per line (with ``--json``):
``{"file", "plates": [{"text", "confidence", "box"}], "containers": [{"number", "verified",
"confidence", "size_type"}], "ms"}``. With ``--fuse`` the images are views of one truck pass
and one object comes out, with the readings fused over all of them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from drivers.images import BadImage, read_image
from recognition.containers import ContainerReader, ContainerReading, fuse_containers
from recognition.engine import Image, OcrEngine
from recognition.plate_fusion import FusedPlate
from recognition.plates import PlateReader, PlateReading


def _box(points: Any) -> list[list[float]]:
    return [[round(float(x), 1), round(float(y), 1)] for x, y in points]


def _plate(reading: PlateReading) -> dict[str, Any]:
    return {
        "text": reading.text,
        "confidence": round(reading.confidence, 3),
        "box": _box(reading.box),
    }


def _fused_plate(fused: FusedPlate[PlateReading]) -> list[dict[str, Any]]:
    if fused.text is None:
        return []
    return [
        {
            "text": fused.text,
            "confidence": round(fused.confidence, 3),
            "box": _box(fused.best.box) if fused.best is not None else [],
            "status": fused.status,
        }
    ]


def _container(reading: ContainerReading) -> dict[str, Any]:
    return {k: v for k, v in reading.as_dict().items() if k != "box"}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m recognition", description=__doc__.split("\n")[0]
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("--kind", choices=("plate", "container", "auto"), default="auto")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--fuse", action="store_true", help="the images are views of one pass")
    args = parser.parse_args(argv)

    def show(result: dict[str, Any]) -> None:
        if args.json:
            print(json.dumps(result, ensure_ascii=False), flush=True)
            return
        found = [p["text"] for p in result["plates"]] + [
            c["number"] + ("" if c["verified"] else "?") for c in result["containers"]
        ]
        name = result["file"] if isinstance(result["file"], str) else ", ".join(result["file"])
        print(f"{name}: {' '.join(found) or '-'} ({result['ms']} ms)", flush=True)

    status = 0
    images: list[tuple[str, Image]] = []
    for path in args.images:
        try:
            images.append((path, read_image(path)))
        except BadImage as exc:  # missing, cut short, too large, not an image: named, and no
            print(f"{path}: {exc}", file=sys.stderr)  # "nothing found" for it
            status = 1
    if not images:
        return status

    engine = OcrEngine({"EngineConfig.onnxruntime.intra_op_num_threads": 1})
    engine.warm_up()
    plates = PlateReader(engine) if args.kind in ("plate", "auto") else None
    containers = ContainerReader(engine) if args.kind in ("container", "auto") else None

    if args.fuse:
        started = time.perf_counter()
        fused_plates = _fused_plate(plates.read_pass([[im] for _, im in images])) if plates else []
        boxes = []
        if containers is not None:
            readings = [r for _, im in images for r in containers.read(im)]
            boxes = [box.as_dict() for box in fuse_containers(readings)]
        show(
            {
                "file": [path for path, _ in images],
                "plates": fused_plates,
                "containers": boxes,
                "ms": round((time.perf_counter() - started) * 1000, 1),
            }
        )
        return status

    for path, image in images:
        started = time.perf_counter()
        result: dict[str, Any] = {
            "file": path,
            "plates": [_plate(p) for p in plates.find_plates(image)] if plates else [],
            "containers": [_container(c) for c in containers.read(image)] if containers else [],
        }
        result["ms"] = round((time.perf_counter() - started) * 1000, 1)
        show(result)
    return status


if __name__ == "__main__":
    sys.exit(main())
