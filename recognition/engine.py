"""The OCR engine: PaddleOCR's PP-OCR models on ONNX Runtime through RapidOCR.

Loaded once per process and warmed up at start; calls block for tens to hundreds of
milliseconds and release the GIL, so async callers run them in an executor, never on the loop.
The models ship inside the rapidocr wheel: nothing is ever downloaded.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]  # BGR, as OpenCV decodes

# "max" keeps a small crop small: the default ("min") upscaled a 440x140 plate to ~2300x736
# and took 550 ms instead of ~65 ms (../shared/STACK.md).
DEFAULT_PARAMS: dict[str, Any] = {
    "Det.limit_type": "max",
    "Det.limit_side_len": 736,
    "Global.log_level": "warning",
}


@dataclass(frozen=True)
class TextBox:
    """One line of text found in an image: its quadrilateral, text and score."""

    box: NDArray[np.float32]  # 4 x 2 corner points, clockwise from top-left
    text: str
    score: float


class OcrEngine:
    """A loaded RapidOCR pipeline (detection, recognition) shared by all readers.

    Thread-safe: ONNX Runtime sessions may be run from several threads at once.
    """

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        from rapidocr import RapidOCR  # heavy import; deferred so CLIs start fast

        self._ocr: Any = RapidOCR(params={**DEFAULT_PARAMS, **(params or {})})
        self._warm = threading.Event()
        # RapidOCR.__call__ stores its stage flags on the shared object before running the
        # stages, so two threads calling it at once could swap each other's flags.
        self._call_lock = threading.Lock()

    def warm_up(self) -> None:
        """Run one tiny image through every stage so the first real frame is not slow."""
        if self._warm.is_set():
            return
        blank = np.full((48, 160, 3), 255, dtype=np.uint8)
        with self._call_lock:
            self._ocr(blank, use_det=True, use_cls=False, use_rec=True)
            self._ocr(blank, use_det=False, use_cls=False, use_rec=True)
        self._warm.set()

    def detect_and_read(self, image: Image) -> list[TextBox]:
        """Find text lines in a whole image and read each one."""
        # RapidOCR keeps the stage flags of the previous call: after warm_up() or
        # read_line(), a call without use_det=True silently skipped detection.
        with self._call_lock:
            out = self._ocr(image, use_det=True, use_cls=False, use_rec=True)
        boxes = getattr(out, "boxes", None)  # an image with no text yields another output type
        if boxes is None or not out.txts:
            return []
        return [
            TextBox(np.asarray(b, dtype=np.float32), str(t), float(s))
            for b, t, s in zip(boxes, out.txts, out.scores, strict=True)
        ]

    def read_line(self, crop: Image) -> tuple[str, float]:
        """Read one single-line crop (no detection); returns text and score."""
        with self._call_lock:
            out = self._ocr(crop, use_det=False, use_cls=False, use_rec=True)
        if not out.txts:
            return "", 0.0
        return str(out.txts[0]), float(out.scores[0])

    @property
    def recognizer(self) -> Any:
        """The loaded text recogniser (``text_rec``), for raw per-step character scores.

        Available after ``warm_up()``: ``resize_norm_img``, ``session`` and
        ``postprocess_op.character`` (see ../shared/STACK.md, OCR).
        """
        self.warm_up()
        return self._ocr.text_rec

    @property
    def detector(self) -> Any:
        """The loaded text detector (``text_det``): ``session``, ``mean``, ``std`` and
        ``postprocess_op``, for readers that choose the detection scale per call."""
        self.warm_up()
        return self._ocr.text_det
