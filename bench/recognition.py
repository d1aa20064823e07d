"""Plate and container-number recognition: accuracy and latency on real photos and renders.

    python -m bench.recognition [--threads 1] [--synthetic 24] [--json]

Real material from ../shared/data: plate crops and scenes (exact reads, confident reads, ms per
crop and per scene); container photos per image and per truck pass with its views fused; the
ISO 6346 vectors (no invalid number ever reported as verified). Synthetic renders from
``sim.render`` at mixed difficulty: plates of every kind and container views of every kind,
with the readings verified though they are not the number painted (a misreading that passes
the check digit). Prints a table, then the misses.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

from bench import SHARED_DATA, recognition_containers, recognition_plates
from recognition import iso6346, plate_grammar
from recognition.containers import ContainerReader, fuse_containers
from recognition.engine import OcrEngine
from recognition.plates import PlateReader
from sim.render import ContainerMarking, render_container_view, render_plate_scene
from sim.scenario import OWNERS


def _median(xs: list[float]) -> float:
    return round(statistics.median(xs), 1) if xs else float("nan")


def synthetic(engine: OcrEngine, count: int, seed: int) -> dict[str, Any]:
    """Render ``count`` plates and ``count`` container views with random valid text; read them."""
    rng = random.Random(seed)
    plates, containers = PlateReader(engine), ContainerReader(engine)
    out: dict[str, Any] = {"plates": 0, "plates_right": 0, "plate_ms": [], "misses": []}
    out["plates_sure_wrong"] = 0  # what a lane would act on, and wrong
    out["plates_by_kind"] = {}  # kind -> [confident and exact, rendered]
    out.update({"views": 0, "views_right": 0, "view_ms": [], "invalid_verified": 0})
    out["wrong_verified"] = 0  # valid numbers, verified, but not the one painted
    kinds = ("blue", "yellow", "green", "yellow_double")
    for i in range(count):
        kind = kinds[i % len(kinds)]
        layout = (
            plate_grammar.PlateKind.NEW_ENERGY_SMALL
            if kind == "green"
            else plate_grammar.PlateKind.ORDINARY
        )
        template = next(t for t in plate_grammar.TEMPLATES if t.kind is layout)
        text = "".join(rng.choice(sorted(allowed)) for allowed in template.positions)
        difficulty = rng.uniform(0.2, 0.8)
        image = render_plate_scene(text, kind, seed + i, difficulty=difficulty).image  # type: ignore[arg-type]
        started = time.perf_counter()
        fused = plates.read_pass([[image]])
        out["plate_ms"].append((time.perf_counter() - started) * 1000)
        out["plates"] += 1
        tally = out["plates_by_kind"].setdefault(kind, [0, 0])
        tally[1] += 1
        if fused.text == text and fused.status == "confident":
            out["plates_right"] += 1
            tally[0] += 1
        elif fused.text != text:
            out["plates_sure_wrong"] += fused.status == "confident"
            out["misses"].append(
                f"plate {kind} {text} d={difficulty:.2f}: read {fused.text} "
                f"({fused.status}, {fused.confidence:.2f})"
            )
    views = ("side", "back", "corner", "top")
    for i in range(count):
        code10 = rng.choice(OWNERS) + f"{rng.randrange(10**6):06d}"
        number = code10 + iso6346.calc_check_digit(code10)
        view = views[i % len(views)]
        difficulty = rng.uniform(0.2, 0.8)
        image = render_container_view(
            ContainerMarking(number, "45G1"),
            view,
            seed + i,
            difficulty=difficulty,  # type: ignore[arg-type]
        ).image
        started = time.perf_counter()
        readings = containers.read(image)
        out["view_ms"].append((time.perf_counter() - started) * 1000)
        out["views"] += 1
        out["invalid_verified"] += sum(
            r.verified and not iso6346.is_valid(r.number) for r in readings
        )
        # each view has one number painted: any other one verified is a misreading that
        # happens to pass the check digit
        out["wrong_verified"] += sum(r.verified and r.number != number for r in readings)
        fused = fuse_containers(readings)
        if any(f.number == number and f.verified for f in fused):
            out["views_right"] += 1
        else:
            got = ", ".join(r.number for r in readings) or "-"
            out["misses"].append(f"container {view} {number} d={difficulty:.2f}: read {got}")
    return out


def main() -> None:
    """Run everything and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads per call")
    parser.add_argument("--synthetic", type=int, default=24, help="renders of each kind")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    parser.add_argument(
        "--general-model-only",
        action="store_true",
        help="read plates with the general recogniser, as without the plate model",
    )
    args = parser.parse_args()
    if not (args.data / "plates" / "labels.csv").is_file():
        raise SystemExit(f"no test material at {args.data} (see ../shared/data/README.md)")

    load_before = os.getloadavg()[0]
    params = {"EngineConfig.onnxruntime.intra_op_num_threads": args.threads}
    engine = OcrEngine(params, plate_model=None) if args.general_model_only else OcrEngine(params)
    engine.warm_up()
    plate = recognition_plates.run(args.data / "plates", PlateReader(engine))
    box = recognition_containers.run(args.data, engine)
    synth = synthetic(engine, args.synthetic, args.seed)
    boxes = box.summary()
    fused_total = sum(box.pass_counts.values())

    rows = [
        ("plate crops: exact", f"{plate.crops_exact}/{plate.crops}", ">= 97 %"),
        ("plate crops: median ms", _median(plate.crop_ms), "<= 40"),
        ("plate scenes: read exactly", f"{plate.scenes_read}/{plate.scenes}", ">= 8/9"),
        ("plate scenes: median ms", _median(plate.scene_ms), "<= 200"),
        ("containers per image", f"{boxes['images_right']}/{boxes['images_labelled']}", ">= 85 %"),
        (
            "containers per fused pass",
            f"{boxes['containers_right_fused']}/{fused_total}",
            ">= 98 %",
        ),
        ("container view median ms (1920x1080)", _median(box.view_ms()), "<= 350"),
        (
            "invalid numbers reported verified",
            f"{len(box.invalid_verified_photos)} photos, {len(box.invalid_vectors_verified)} of "
            f"{box.vectors} vectors, {synth['invalid_verified']} renders",
            "0",
        ),
        ("synthetic plates confident and exact", f"{synth['plates_right']}/{synth['plates']}", ""),
        (
            "synthetic plates by kind",
            ", ".join(f"{k} {r}/{n}" for k, (r, n) in synth["plates_by_kind"].items()),
            "",
        ),
        ("synthetic plates read sure but wrong", synth["plates_sure_wrong"], ""),
        ("synthetic plate scene median ms", _median(synth["plate_ms"]), ""),
        ("synthetic container views right", f"{synth['views_right']}/{synth['views']}", ""),
        ("synthetic readings verified but wrong", synth["wrong_verified"], ""),
        ("synthetic container view median ms", _median(synth["view_ms"]), ""),
    ]
    print(f"{'figure':44} {'measured':>28}  target")
    for name, value, target in rows:
        print(f"{name:44} {value!s:>28}  {target}")
    print(
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; "
        f"ONNX Runtime threads per call: {args.threads}; plate model: "
        f"{engine.plate_model.name if engine.plate_model else 'none (the general one)'}"
    )
    print("misses:")
    for m in plate.misses:
        print(f"  plate {m.file}: label {m.label}, read {m.read or '-'} ({m.confidence:.2f})")
    for img in box.labelled:
        if not img.right:
            got = ", ".join(r.number for r in img.readings) or "-"
            print(f"  container {img.photo.file.name}: label {img.photo.label}, read {got}")
    for line in synth["misses"]:
        print(f"  synthetic {line}")
    if args.json:
        summary = {
            "plate_crops_exact": plate.crops_exact / plate.crops,
            "plate_crop_ms": _median(plate.crop_ms),
            "plate_scenes_read": plate.scenes_read,
            "plate_scene_ms": _median(plate.scene_ms),
            **boxes,
            "synthetic": {k: v for k, v in synth.items() if not isinstance(v, list)},
        }
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
