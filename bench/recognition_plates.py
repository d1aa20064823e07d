"""Plate reading on the real photos in ../shared/data/plates: accuracy, latency, misses.

    python -m bench.recognition_plates [--data DIR] [--threads N] [--repeat N]

Crops: exact reads of the 204 labelled crops, and how many readings at or above the hold
threshold are right (what the lane would act on without a human). Most crops come from one
province, so the crops of all other provinces are also counted apart, and the misses whose
only wrong character is the province (the character a general model reads worst) are
counted with their highest confidence: they must stay below the hold threshold. Scenes:
whether the plate was found (a reading inside the labelled box) and read exactly. Latency
is wall time per call on this machine, after warm-up; a shared machine makes it noisy (the
load average is printed). CPU time (all threads of the process) is steadier: with
--threads 1 it is the single-core cost.
"""

from __future__ import annotations

import argparse
import collections
import csv
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from bench import SHARED_DATA
from recognition.engine import OcrEngine
from recognition.plates import PlateReader, PlateReading

DEFAULT_DATA = SHARED_DATA / "plates"
HOLD_BELOW = 0.5  # fusion's default: lower confidence is held for a human


@dataclass
class Miss:
    """One image whose reading was not the label."""

    file: str
    label: str
    read: str | None
    confidence: float


@dataclass
class PlateBench:
    """Figures of one run over the crops and scenes."""

    crops: int = 0
    crops_exact: int = 0
    crops_sure: int = 0  # readings at or above HOLD_BELOW
    crops_sure_right: int = 0
    majority: str = ""  # the province most crops come from
    crops_other: int = 0  # crops of every other province
    crops_other_exact: int = 0
    crop_ms: list[float] = field(default_factory=list)
    crop_cpu_ms: list[float] = field(default_factory=list)
    scenes: int = 0
    scenes_found: int = 0
    scenes_read: int = 0
    scenes_sure: int = 0  # scenes whose plate was read at or above HOLD_BELOW
    scenes_sure_right: int = 0
    scene_ms: list[float] = field(default_factory=list)
    scene_cpu_ms: list[float] = field(default_factory=list)
    misses: list[Miss] = field(default_factory=list)
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before and after

    def province_only(self) -> list[Miss]:
        """Misses right in every character but the province."""
        return [
            m
            for m in self.misses
            if m.read is not None
            and len(m.read) == len(m.label)
            and m.read[0] != m.label[0]
            and m.read[1:] == m.label[1:]
        ]

    def lines(self) -> list[str]:
        """The figures as printable lines."""

        def pct(a: int, b: int) -> str:
            return f"{a}/{b} ({100 * a / b:.1f} %)" if b else "0/0"

        def ms(xs: list[float]) -> str:
            if not xs:
                return "-"
            return f"median {statistics.median(xs):.1f} ms, p95 {np.percentile(xs, 95):.1f} ms"

        out = [
            f"crops  exact        {pct(self.crops_exact, self.crops)}",
            f"crops  conf>={HOLD_BELOW}     {pct(self.crops_sure_right, self.crops_sure)} right, "
            f"{self.crops - self.crops_sure} held for a human",
            f"crops  not {self.majority or '-'}       "
            f"{pct(self.crops_other_exact, self.crops_other)} exact (every other province)",
            f"misses province only {len(self.province_only())} of {len(self.misses)}, highest "
            f"confidence {max((m.confidence for m in self.province_only()), default=0.0):.3f}",
            f"crops  latency      {ms(self.crop_ms)}",
            f"crops  cpu time     {ms(self.crop_cpu_ms)}",
            f"scenes found       {pct(self.scenes_found, self.scenes)}",
            f"scenes read        {pct(self.scenes_read, self.scenes)}",
            f"scenes conf>={HOLD_BELOW}    {pct(self.scenes_sure_right, self.scenes_sure)} right, "
            f"{self.scenes - self.scenes_sure} held for a human",
            f"scenes latency     {ms(self.scene_ms)}",
            f"scenes cpu time    {ms(self.scene_cpu_ms)}",
            f"load average {self.load[0]:.1f} before, {self.load[1]:.1f} after (2 cores)",
        ]
        if self.misses:
            out.append("misses:")
            out += [
                f"  {m.file}  label {m.label}  read {m.read or '-'}  conf {m.confidence:.3f}"
                for m in self.misses
            ]
        return out


def _box(field_text: str) -> tuple[float, float, float, float]:
    (x1, y1), (x2, y2) = (tuple(map(float, p.split(","))) for p in field_text.split(";"))
    return x1, y1, x2, y2


def _inside(reading: PlateReading, box: tuple[float, float, float, float]) -> bool:
    x1, y1, x2, y2 = box
    cx = sum(p[0] for p in reading.box) / 4
    cy = sum(p[1] for p in reading.box) / 4
    return x1 <= cx <= x2 and y1 <= cy <= y2


def run(
    data: Path = DEFAULT_DATA, reader: PlateReader | None = None, repeat: int = 1
) -> PlateBench:
    """Read every labelled crop and scene under ``data``; the combined benchmark calls this."""
    if reader is None:
        engine = OcrEngine()
        engine.warm_up()
        reader = PlateReader(engine)
    with (data / "labels.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    bench = PlateBench()
    bench.majority = collections.Counter(
        r["plate_text"][:1] for r in rows if r["kind"] != "scene"
    ).most_common(1)[0][0]
    load_before = os.getloadavg()[0]
    for row in rows:
        image = cv2.imread(str(data / row["file"]))
        if image is None:
            raise FileNotFoundError(data / row["file"])
        label = row["plate_text"]
        if row["kind"] == "scene":
            plates: list[PlateReading] = []
            for _ in range(repeat):
                t, c = time.perf_counter(), time.process_time()
                plates = reader.find_plates(image)
                bench.scene_ms.append(1000 * (time.perf_counter() - t))
                bench.scene_cpu_ms.append(1000 * (time.process_time() - c))
            box = _box(row["bbox_x1y1_x2y2"])
            here = [p for p in plates if _inside(p, box)]
            bench.scenes += 1
            bench.scenes_found += bool(here)
            hit = bool(here) and here[0].text == label
            bench.scenes_read += hit
            if here and here[0].confidence >= HOLD_BELOW:
                bench.scenes_sure += 1
                bench.scenes_sure_right += hit
            if not hit:
                got = here[0] if here else (plates[0] if plates else None)
                bench.misses.append(
                    Miss(
                        row["file"], label, got.text if got else None, got.confidence if got else 0
                    )
                )
            continue
        reading: PlateReading | None = None
        for _ in range(repeat):
            t, c = time.perf_counter(), time.process_time()
            reading = reader.read_crop(image)
            bench.crop_ms.append(1000 * (time.perf_counter() - t))
            bench.crop_cpu_ms.append(1000 * (time.process_time() - c))
        bench.crops += 1
        right = reading is not None and reading.text == label
        bench.crops_exact += right
        if label[:1] != bench.majority:
            bench.crops_other += 1
            bench.crops_other_exact += right
        if reading is not None and reading.confidence >= HOLD_BELOW:
            bench.crops_sure += 1
            bench.crops_sure_right += right
        if not right:
            bench.misses.append(
                Miss(
                    row["file"],
                    label,
                    reading.text if reading else None,
                    reading.confidence if reading else 0.0,
                )
            )
    bench.load = (load_before, os.getloadavg()[0])
    return bench


def baseline(data: Path, engine: OcrEngine) -> tuple[int, int]:
    """Exact reads of the crops by ``OcrEngine.read_line`` alone (normalised, no grammar)."""
    from recognition.plate_grammar import compact

    with (data / "labels.csv").open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] != "scene"]
    right = 0
    for row in rows:
        text, _ = engine.read_line(cv2.imread(str(data / row["file"])))
        right += compact(text) == row["plate_text"]
    return right, len(rows)


def main() -> None:
    """Print the figures and the misses."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--threads", type=int, default=0, help="ONNX Runtime threads per call (0: its default)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="timed calls per image")
    parser.add_argument(
        "--baseline", action="store_true", help="also read the crops with a plain engine call"
    )
    args = parser.parse_args()
    if not (args.data / "labels.csv").is_file():
        raise SystemExit(f"no plate material at {args.data} (see ../shared/data/README.md)")
    params = (
        {"EngineConfig.onnxruntime.intra_op_num_threads": args.threads} if args.threads else None
    )
    engine = OcrEngine(params)
    engine.warm_up()
    bench = run(args.data, PlateReader(engine), repeat=args.repeat)
    print("\n".join(bench.lines()))
    if args.baseline:
        right, total = baseline(args.data, engine)
        print(f"baseline: a plain engine call reads {right}/{total} crops exactly")


if __name__ == "__main__":
    main()
