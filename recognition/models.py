"""Model files the recogniser uses beside the ones the rapidocr wheel carries.

Plates are read with PaddleOCR's PP-OCRv4 recognition model. The rapidocr 3.x wheel
carries only PP-OCRv6's recogniser, which reads the small province character of a plate
far less well (on the 204 real plate crops 191 exact against 203 for PP-OCRv4), while
reading container codes better; so the engine holds both. PP-OCRv4's ONNX file ships in
the ``rapidocr_onnxruntime`` 1.4.4 wheel on PyPI. That package cannot be installed beside
``rapidocr`` 3.x (it pulls the GUI build of OpenCV, which shares ``cv2/`` with the
headless one), so the wheel is fetched once at install time, the model file taken out of
it and checked against its SHA-256, and kept under ``<venv>/share/gatewayd/models``.
Nothing is ever downloaded at run time: a lane without the file reads plates with the
general model and says so at start.

What its figures on the real crops are worth: they come from CCPD, which PaddleOCR's
documentation lists among its OCR datasets, so PP-OCRv4 may have been trained on photos
like them. On rendered plates of all 31 provinces, which no model has seen, it reads a
little worse than PP-OCRv6 (215 of 240 sure and right against 223), and leans to 皖, the
province of most CCPD plates: it read 琼 and 赣 plates as 皖. The plate reader therefore
asks the general model about every plate it reads in doubt
(``plates._SECOND_OPINION_BELOW``). A plate read surely but wrongly disagrees with the
plate on the truck's release note, and the lane holds the truck.

``python -m recognition.models install`` fetches it (``make`` does); ``... check`` exits 1
when it is missing or altered.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PLATE_MODEL", "ModelError", "ModelFile", "install", "installed", "model_dir"]

# Where installed models live unless GATEWAYD_MODELS names another folder.
MODELS_ENV = "GATEWAYD_MODELS"


class ModelError(Exception):
    """A model file could not be fetched, or is not the file it should be."""


@dataclass(frozen=True)
class ModelFile:
    """One model file, taken from a pinned wheel on the package index."""

    name: str
    sha256: str
    requirement: str  # pip requirement of the wheel that carries it
    member: str  # its path inside that wheel


PLATE_MODEL = ModelFile(
    name="ch_PP-OCRv4_rec_infer.onnx",
    sha256="48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
    requirement="rapidocr_onnxruntime==1.4.4",
    member="rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
)


def model_dir() -> Path:
    """The folder installed models are kept in."""
    named = os.environ.get(MODELS_ENV)
    return Path(named) if named else Path(sys.prefix) / "share" / "gatewayd" / "models"


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def installed(model: ModelFile = PLATE_MODEL, folder: Path | None = None) -> Path:
    """The installed file of ``model``, checked against its digest.

    Raises ModelError when it is missing or is not the pinned file.
    """
    path = (folder or model_dir()) / model.name
    if not path.is_file():
        raise ModelError(
            f"{path} is missing: install it with `python -m recognition.models install`"
        )
    if _digest(path) != model.sha256:
        raise ModelError(f"{path} is not the pinned {model.name} (SHA-256 differs)")
    return path


def _fetch_wheel(model: ModelFile, into: Path) -> Path:
    """Download the wheel carrying ``model`` with pip (the index pip is configured for)."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--quiet",
        "--dest",
        str(into),
        model.requirement,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(into.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        reason = done.stderr.strip().splitlines()[-1:] or ["no wheel"]
        raise ModelError(f"could not download {model.requirement}: {reason[0]}")
    return wheels[0]


def install(
    model: ModelFile = PLATE_MODEL,
    folder: Path | None = None,
    *,
    wheel: Path | None = None,
) -> Path:
    """Put ``model`` in ``folder`` (by default ``model_dir()``) and return its path.

    The file is taken from ``wheel`` when given, else from the pinned wheel fetched with
    pip. A file already in place and intact is kept. The new file only takes the model's
    name once its digest matches: a wrong or cut-short file never lands.
    """
    folder = folder or model_dir()
    try:
        return installed(model, folder)
    except ModelError:
        pass
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        source = wheel or _fetch_wheel(model, Path(tmp))
        part = Path(tmp) / model.name
        try:
            with (
                zipfile.ZipFile(source) as zf,
                zf.open(model.member) as src,
                part.open("wb") as dst,
            ):
                shutil.copyfileobj(src, dst, 1 << 20)
        except (OSError, KeyError, zipfile.BadZipFile) as exc:
            raise ModelError(f"{source} does not hold {model.member}: {exc}") from exc
        if _digest(part) != model.sha256:
            raise ModelError(f"{model.member} in {source} is not the pinned file (SHA-256)")
        os.replace(part, folder / model.name)
    return folder / model.name


def main(argv: list[str] | None = None) -> int:
    """``install`` fetches the models that are missing; ``check`` verifies them."""
    parser = argparse.ArgumentParser(
        prog="python -m recognition.models", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("action", choices=["install", "check"])
    parser.add_argument("--dir", type=Path, help=f"model folder (default: {model_dir()})")
    parser.add_argument("--wheel", type=Path, help="take the file from this wheel, offline")
    args = parser.parse_args(argv)
    try:
        if args.action == "install":
            path = install(PLATE_MODEL, args.dir, wheel=args.wheel)
        else:
            path = installed(PLATE_MODEL, args.dir)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{PLATE_MODEL.name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
