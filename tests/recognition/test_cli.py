"""`python -m recognition`: one JSON object per image, or one fused object per pass."""

from __future__ import annotations

import json
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
