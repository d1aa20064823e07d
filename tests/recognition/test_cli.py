"""`python -m recognition`: one JSON object per image, or one fused object per pass."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests import commands
from tests.commands import RECOGNITION


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return commands.run(RECOGNITION, *args, timeout=300)


def test_one_json_line_per_image_with_plates_and_containers(shared_data: Path) -> None:
    crop = shared_data / "plates" / "crops" / "crop_001.jpg"
    box = shared_data / "containers" / "images" / "cont_001.jpg"
    result = run("--json", str(crop), str(box))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["file"] for line in lines] == [str(crop), str(box)]
    for line in lines:
        assert set(line) == {"file", "plates", "containers", "ms"}
        assert line["ms"] > 0
    plate = lines[0]["plates"][0]
    assert set(plate) == {"text", "confidence", "box"}
    assert len(plate["box"]) == 4
    assert lines[1]["containers"][0] == {
        "number": "BEAU2656931",
        "verified": True,
        "confidence": lines[1]["containers"][0]["confidence"],
        "size_type": "22G1",
    }


def test_fused_pass_gives_one_object(shared_data: Path) -> None:
    views = sorted((shared_data / "containers" / "images").glob("cont_00[1-5].jpg"))
    result = run("--kind", "container", "--json", "--fuse", *map(str, views))
    assert result.returncode == 0, result.stderr
    (line,) = [json.loads(x) for x in result.stdout.splitlines()]
    numbers = {c["number"] for c in line["containers"] if c["verified"]}
    assert numbers == {"BEAU2656931", "TRHU1700369"}
    assert line["plates"] == []


def test_a_file_that_is_not_an_image_is_named_and_fails(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("not a picture")
    result = run("--kind", "plate", "--json", str(bad))
    assert result.returncode == 1
    assert "notes.txt" in result.stderr
    assert result.stdout == ""


def test_a_picture_cut_short_missing_or_no_file_is_named_and_fails(
    shared_data: Path, tmp_path: Path
) -> None:
    whole = (shared_data / "plates" / "scenes" / "scene_001.jpg").read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole[: len(whole) // 2])  # decodes, grey below: "no plate" would be a lie
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)  # reading it would wait for ever
    result = run("--kind", "plate", "--json", str(cut), str(tmp_path / "gone.jpg"), str(fifo))
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert f"{cut}: JPEG cut short" in lines[0]
    assert f"{tmp_path / 'gone.jpg'}: cannot read: No such file or directory" in lines[1]
    assert f"{fifo}: not a regular file" in lines[2]
