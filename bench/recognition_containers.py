"""Container numbers on real gate-camera photos: accuracy per image and per fused pass,
latency per 1920x1080 view, and numbers wrongly reported as verified.

    python -m bench.recognition_containers [--data DIR] [--repeat N] [--threads N] [--verbose]

``run()`` returns the figures for the combined benchmark (bench/recognition.py).
Labels come from ../shared/data/containers/labels.csv; rows whose label fails its own
check digit (``label_check_digit_ok=false``, a typo in the source) are not scored, and the
pass of a photo is the folder id in its source path. Labels are only ever read here, after
the reader has answered.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import SHARED_DATA
from recognition import iso6346
from recognition.containers import (
    ContainerReader,
    ContainerReading,
    FusedContainer,
    fuse_containers,
    normalise_text,
    parse_code,
)
from recognition.engine import OcrEngine

# Vectors a source calls invalid for a reason that is not ISO 6346's (see the vectors'
# README): meMuszr/iso6346 rejects mixed case only with its case_sensitive option on.
SOURCE_QUIRKS = {"NyKu3086856": "invalid at its source only under a case-sensitive option"}


@dataclass(frozen=True)
class Photo:
    """One photo of the set and its label (None when unlabelled or excluded)."""

    file: Path
    label: str | None
    pass_id: str | None
    view: str


@dataclass
class ImageResult:
    """What the reader said about one photo, and how long it took."""

    photo: Photo
    readings: list[ContainerReading]
    ms: float  # wall time, fastest of the repeats
    cpu_ms: float  # process CPU time of that read (all threads)
    shape: tuple[int, int]  # height, width

    @property
    def right(self) -> bool:
        return any(r.verified and r.number == self.photo.label for r in self.readings)


@dataclass
class PassResult:
    """The fused answer for one truck pass against its labelled containers."""

    pass_id: str
    labels: list[str]
    fused: list[FusedContainer]

    def status(self, label: str) -> str:
        """'right' (confident and correct), 'held' (correct but sent to a human), 'missed'."""
        for f in self.fused:
            if f.number == label and f.verified:
                return "held" if f.needs_review else "right"
        return "missed"


@dataclass
class ContainerBench:
    """All figures of the container benchmark."""

    images: list[ImageResult] = field(default_factory=list)
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before and after
    passes: list[PassResult] = field(default_factory=list)
    invalid_verified_photos: list[tuple[str, str]] = field(default_factory=list)
    vectors: int = 0
    invalid_vectors_verified: list[str] = field(default_factory=list)
    invalid_vectors_corrected: list[tuple[str, str]] = field(default_factory=list)

    @property
    def labelled(self) -> list[ImageResult]:
        return [i for i in self.images if i.photo.label]

    @property
    def image_accuracy(self) -> float:
        lab = self.labelled
        return sum(i.right for i in lab) / len(lab) if lab else 0.0

    @property
    def pass_counts(self) -> dict[str, int]:
        counts = {"right": 0, "held": 0, "missed": 0}
        for p in self.passes:
            for label in p.labels:
                counts[p.status(label)] += 1
        return counts

    @property
    def pass_accuracy(self) -> float:
        c = self.pass_counts
        total = sum(c.values())
        return c["right"] / total if total else 0.0

    def view_ms(self) -> list[float]:
        """Latency of the 1920x1080 views only."""
        return [i.ms for i in self.images if i.shape == (1080, 1920)]

    def view_cpu_ms(self) -> list[float]:
        """CPU time of the 1920x1080 views (less sensitive than wall time to other
        processes on the machine; with one inference thread it bounds the wall time)."""
        return [i.cpu_ms for i in self.images if i.shape == (1080, 1920)]

    def summary(self) -> dict[str, object]:
        """The headline figures as a JSON-ready dict."""
        ms = sorted(self.view_ms())
        c = self.pass_counts
        return {
            "images_right": sum(i.right for i in self.labelled),
            "images_labelled": len(self.labelled),
            "image_accuracy": round(self.image_accuracy, 4),
            "containers_right_fused": c["right"],
            "containers_held_fused": c["held"],
            "containers_missed_fused": c["missed"],
            "pass_accuracy": round(self.pass_accuracy, 4),
            "median_ms_1080p": round(statistics.median(ms), 1) if ms else None,
            "p95_ms_1080p": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 1) if ms else None,
            "median_cpu_ms_1080p": round(statistics.median(self.view_cpu_ms()), 1) if ms else None,
            "load_average": list(self.load),
            "invalid_verified_photos": len(self.invalid_verified_photos),
            "vectors": self.vectors,
            "invalid_vectors_verified": len(self.invalid_vectors_verified),
        }


def load_photos(data: Path) -> list[Photo]:
    """Every photo of ../shared/data/containers with its label where it may be scored."""
    photos = []
    with (data / "containers" / "labels.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            labelled = row["labelled"] == "yes" and row["label_check_digit_ok"] == "true"
            src = row["source_path"]
            # .../organised_samples/<pass id>/<file>: the folder is the truck pass
            pass_id = Path(src).parent.name if row["labelled"] == "yes" else None
            photos.append(
                Photo(
                    file=data / "containers" / row["file"],
                    label=row["container_number"] if labelled else None,
                    pass_id=pass_id,
                    view=row["camera_view"],
                )
            )
    return photos


def pass_labels(photos: list[Photo]) -> dict[str, list[str]]:
    """The distinct scored container numbers of each pass."""
    out: dict[str, list[str]] = {}
    for p in photos:
        if p.pass_id is None:
            continue
        labels = out.setdefault(p.pass_id, [])
        if p.label and p.label not in labels:
            labels.append(p.label)
    return out


def check_vectors(data: Path, bench: ContainerBench) -> None:
    """The reader's verification path on the ISO 6346 vectors: a number the source calls
    invalid must never come out verified as it stands; with look-alike corrections it may
    become another, valid number, and those are listed apart."""
    with (data / "iso6346" / "iso6346_vectors.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    bench.vectors = len(rows)
    for row in rows:
        if row["valid"] == "true" or row["number"] in SOURCE_QUIRKS:
            continue
        text = normalise_text(row["number"])
        code = parse_code(text)
        if code is None or not code.verified:
            continue
        if code.corrections == 0:
            bench.invalid_vectors_verified.append(row["number"])
        else:
            bench.invalid_vectors_corrected.append((row["number"], code.number))


def run(
    data: Path = SHARED_DATA,
    engine: OcrEngine | None = None,
    *,
    repeat: int = 1,
    threads: int | None = None,
) -> ContainerBench:
    """Read every photo (``repeat`` times, keeping the fastest time), fuse each pass.
    ``threads`` sets ONNX Runtime's threads per inference when no engine is given."""
    import cv2

    params = {"EngineConfig.onnxruntime.intra_op_num_threads": threads} if threads else None
    engine = engine or OcrEngine(params)
    engine.warm_up()
    reader = ContainerReader(engine)
    photos = load_photos(data)
    bench = ContainerBench()
    load_before = os.getloadavg()[0]
    for photo in photos:
        frame = cv2.imread(str(photo.file))
        if frame is None:
            raise FileNotFoundError(photo.file)
        best, cpu = float("inf"), 0.0
        readings: list[ContainerReading] = []
        for _ in range(repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            readings = reader.read(frame)
            wall = (time.perf_counter() - t0) * 1000
            if wall < best:
                best, cpu = wall, (time.process_time() - c0) * 1000
        bench.images.append(ImageResult(photo, readings, best, cpu, frame.shape[:2]))
        for r in readings:
            if r.verified and not iso6346.is_valid(r.number):
                bench.invalid_verified_photos.append((photo.file.name, r.number))
    by_pass: dict[str, list[ContainerReading]] = {}
    for img in bench.images:
        if img.photo.pass_id:
            by_pass.setdefault(img.photo.pass_id, []).extend(img.readings)
    for pass_id, labels in pass_labels(photos).items():
        bench.passes.append(PassResult(pass_id, labels, fuse_containers(by_pass[pass_id])))
    check_vectors(data, bench)
    bench.load = (load_before, os.getloadavg()[0])
    return bench


def _fmt(r: ContainerReading) -> str:
    mark = "verified" if r.verified else "unverified"
    st = f" {r.size_type}" if r.size_type else ""
    return f"{r.number} {mark} {r.confidence:.2f}{st}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=SHARED_DATA)
    ap.add_argument("--repeat", type=int, default=1, help="reads per photo; fastest is kept")
    ap.add_argument("--threads", type=int, default=None, help="inference threads (default: all)")
    ap.add_argument("--verbose", action="store_true", help="print every reading")
    args = ap.parse_args()
    bench = run(args.data, repeat=args.repeat, threads=args.threads)

    print("per image")
    for img in bench.images:
        p = img.photo
        label = p.label or ("(excluded label)" if p.pass_id else "(unlabelled)")
        mark = "ok  " if img.right else ("MISS" if p.label else "    ")
        reads = "; ".join(_fmt(r) for r in img.readings) or "-"
        if args.verbose or (p.label and not img.right):
            print(f"  {mark} {p.file.name} {label:<16} {img.ms:6.0f} ms  {reads}")
    print("per pass (five views fused)")
    for pr in bench.passes:
        for label in pr.labels:
            print(f"  {pr.status(label):<6} pass {pr.pass_id} {label}")
        for f in pr.fused:
            flag = "HOLD " + "; ".join(f.reasons) if f.needs_review else "ok"
            print(
                f"         fused {f.number} verified={f.verified} conf={f.confidence:.2f} "
                f"views={f.views} {f.size_type or ''} {flag}"
            )
    s = bench.summary()
    print()
    print(
        f"images: {s['images_right']}/{s['images_labelled']} right "
        f"({100 * bench.image_accuracy:.1f} %)"
    )
    print(
        f"fused passes: {s['containers_right_fused']} right, {s['containers_held_fused']} "
        f"held for review, {s['containers_missed_fused']} missed "
        f"({100 * bench.pass_accuracy:.1f} % right)"
    )
    threads = args.threads or "all"
    print(
        f"latency per 1920x1080 view: median {s['median_ms_1080p']} ms, "
        f"p95 {s['p95_ms_1080p']} ms (fastest of {args.repeat}, {threads} inference threads; "
        f"load average {bench.load[0]:.1f} before, {bench.load[1]:.1f} after, "
        f"on {os.cpu_count()} cores)"
    )
    print(f"CPU time per 1920x1080 view, all threads: median {s['median_cpu_ms_1080p']} ms")
    print(
        f"invalid numbers reported as verified: {s['invalid_verified_photos']} on "
        f"{len(bench.images)} photos, {s['invalid_vectors_verified']} of the "
        f"{s['vectors']} vectors"
    )
    if bench.invalid_verified_photos:
        print("  ", bench.invalid_verified_photos)
    if bench.invalid_vectors_verified:
        print("  ", bench.invalid_vectors_verified)
    for number, why in SOURCE_QUIRKS.items():
        print(f"  not counted: {number} ({why}; its check digit is right)")
    if bench.invalid_vectors_corrected:
        print(
            f"  invalid vectors a look-alike correction turns into a valid number "
            f"(reported as that corrected number): {bench.invalid_vectors_corrected}"
        )


if __name__ == "__main__":
    main()
