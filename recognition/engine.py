"""The OCR engine: PaddleOCR's PP-OCR models on ONNX Runtime through RapidOCR.

Loaded once per process and warmed up at start; calls block for tens to hundreds of
milliseconds and release the GIL, so async callers run them in an executor, never on the loop.
The detection model and the general recogniser (PP-OCRv6) ship inside the rapidocr wheel;
plates are read with PP-OCRv4's recogniser, installed beside it (``recognition.models``).
Nothing is ever downloaded at run time.
"""

from __future__ import annotations

import copy
import functools
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from recognition import models

log = logging.getLogger(__name__)

Image = NDArray[np.uint8]  # BGR, as OpenCV decodes

# "max" keeps a small crop small: the default ("min") upscaled a 440x140 plate to ~2300x736
# and took 550 ms instead of ~65 ms (../shared/STACK.md). ONNX Runtime's memory arena
# (off in RapidOCR's config) keeps the buffers of one run for the next instead of
# allocating them anew: a mixed run of 300 scenes, container views and crops took 44 s
# instead of 56 s, and resident memory levels off about 50 MiB higher (~400 MiB).
DEFAULT_PARAMS: dict[str, Any] = {
    "Det.limit_type": "max",
    "Det.limit_side_len": 736,
    "Global.log_level": "warning",
    "EngineConfig.onnxruntime.enable_cpu_mem_arena": True,
}


# Narrowest input handed to the recogniser, in multiples of its 48-pixel height.
MIN_REC_RATIO = 2.0


def _no_empty_frame(record: logging.LogRecord) -> bool:
    # a frame with no text in it is the usual case for a camera, not a warning
    return str(record.msg) != "The text detection result is empty"


def _adopt_logger(logger: logging.Logger) -> None:
    """Send RapidOCR's records through the process's own logging (its format, its
    destination) instead of the library's own coloured console handler."""
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.propagate = True
    if _no_empty_frame not in logger.filters:
        logger.addFilter(_no_empty_frame)


@dataclass(frozen=True)
class TextBox:
    """One line of text found in an image: its quadrilateral, text and score."""

    box: NDArray[np.float32]  # 4 x 2 corner points, clockwise from top-left
    text: str
    score: float


@dataclass(frozen=True)
class Detection:
    """A text region found by the detector, not yet read."""

    box: NDArray[np.float32]  # 4 x 2 corner points, clockwise from top-left
    score: float  # mean text probability inside the region


def _blob_params(mean: Sequence[float], std: Sequence[float]) -> Any:
    """The detector's input normalisation, ``(pixel / 255 - mean) / std`` in NCHW float32,
    for OpenCV to do in one pass: RapidOCR's own (the same arithmetic, in float64 numpy)
    took ~8 ms of a 736-pixel detection, this ~1 ms."""
    params = cv2.dnn.Image2BlobParams()
    params.scalefactor = (*(1 / (255 * float(s)) for s in std), 0.0)
    params.mean = (*(255 * float(m) for m in mean), 0.0)
    params.ddepth = cv2.CV_32F
    return params


# Stands for "the installed plate model, if there is one" (``OcrEngine(plate_model=...)``).
INSTALLED = Path()


class OcrEngine:
    """A loaded RapidOCR pipeline (detection, recognition) shared by all readers.

    ``plate_model`` is the recognition model plates are read with: by default the one
    ``recognition.models`` installed; None, or no such file, reads plates with the general
    recogniser. Thread-safe: ONNX Runtime sessions may be run from several threads at once.
    """

    def __init__(
        self, params: dict[str, Any] | None = None, *, plate_model: Path | None = INSTALLED
    ) -> None:
        from rapidocr import RapidOCR  # heavy import; deferred so CLIs start fast

        self._ocr: Any = RapidOCR(params={**DEFAULT_PARAMS, **(params or {})})
        _adopt_logger(logging.getLogger("RapidOCR"))
        if plate_model is INSTALLED:
            try:
                plate_model = models.installed()
            except models.ModelError as exc:
                log.warning("plates are read with the general model: %s", exc)
                plate_model = None
        self.plate_model = plate_model
        self._plate_rec: Any = None
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
            if self.plate_model is not None and self._plate_rec is None:
                self._plate_rec = self._load_recognizer(self.plate_model)
                batch = self._plate_rec.resize_norm_img(blank, 320 / 48)[None]
                self._plate_rec.session(batch.astype(np.float32))
        self._warm.set()

    def _load_recognizer(self, path: Path) -> Any:
        """A second recogniser, configured as the general one but for its model file (whose
        alphabet is in the file: nothing to fetch)."""
        from rapidocr.ch_ppocr_rec import TextRecognizer

        cfg = copy.deepcopy(self._ocr.cfg.Rec)
        cfg.model_path = str(path)
        return TextRecognizer(cfg)

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

    @functools.cached_property
    def _det_blob(self) -> Any:
        # the detector exists once warmed up; two threads racing here build the same value
        det = self._ocr.text_det
        return _blob_params(det.mean, det.std)

    @property
    def recognizer(self) -> Any:
        """The loaded text recogniser (``text_rec``), for raw per-step character scores.

        Available after ``warm_up()``: ``resize_norm_img``, ``session`` and
        ``postprocess_op.character`` (see ../shared/STACK.md, OCR).
        """
        self.warm_up()
        return self._ocr.text_rec

    @property
    def plate_recognizer(self) -> Any:
        """The recogniser plates are read with (``recognizer`` when no plate model)."""
        self.warm_up()
        return self._ocr.text_rec if self._plate_rec is None else self._plate_rec

    # The methods below call RapidOCR's detector and recogniser directly, without its
    # mutable per-call flags, so readers can choose the detection scale and thresholds per
    # call and several threads can use them at once.

    def find_text(
        self,
        image: Image,
        *,
        max_side: int = 736,
        thresh: float = 0.3,
        box_thresh: float = 0.5,
        unclip_ratio: float = 1.6,
    ) -> list[Detection]:
        """Find text regions (no reading) with the image scaled so its longer side is
        at most ``max_side``; boxes come back in the image's own pixel coordinates.

        ``thresh`` binarises the text probability map, ``box_thresh`` is the least mean
        probability a region needs, ``unclip_ratio`` how far a region is grown around its
        core (PP-OCR's DB post-processing; lower values find fainter text).
        """
        h, w = image.shape[:2]
        if h < 8 or w < 8:
            return []
        regions = self.detect_regions(
            image,
            max_side=max_side,
            thresh=thresh,
            box_thresh=box_thresh,
            unclip_ratio=unclip_ratio,
            max_candidates=1000,
        )
        order = self._ocr.text_det.postprocess_op.order_points_clockwise
        out = []
        for box, score in regions:
            quad = order(box)
            if min(np.ptp(quad[:, 0]), np.ptp(quad[:, 1])) < 4:
                continue
            out.append(Detection(quad.astype(np.float32), score))
        return out

    def detect_regions(
        self,
        image: Image,
        *,
        max_side: int,
        thresh: float,
        box_thresh: float,
        unclip_ratio: float,
        max_candidates: int,
    ) -> list[tuple[NDArray[np.float32], float]]:
        """The detector's raw regions at a chosen scale: (quad, score) pairs in the
        image's own pixels, as PP-OCR's DB post-processing leaves them (see ``find_text``
        for the thresholds)."""
        from rapidocr.ch_ppocr_det.utils import DBPostProcess, DetPreProcess

        self.warm_up()
        det = self._ocr.text_det
        resized = DetPreProcess(max_side, "max").resize(image)
        if resized is None:
            return []
        batch = cv2.dnn.blobFromImageWithParams(resized, self._det_blob)
        post = DBPostProcess(
            thresh=thresh,
            box_thresh=box_thresh,
            max_candidates=max_candidates,
            unclip_ratio=unclip_ratio,
            use_dilation=True,
            score_mode="fast",
        )
        boxes, scores = post(det.session(batch), image.shape[:2])
        return [
            (np.asarray(b, dtype=np.float32), float(s)) for b, s in zip(boxes, scores, strict=True)
        ]

    def read_crops(self, crops: list[Image]) -> list[tuple[str, float]]:
        """Read single-line crops; one (text, score) per crop, in order.

        Crops are batched by width-to-height ratio and each batch is padded only to its
        widest member (RapidOCR pads every batch to at least 320x48, so a lone digit
        cost as much as a line of text), but to no less than ``MIN_REC_RATIO`` heights.
        """
        if not crops:
            return []
        self.warm_up()
        rec = self._ocr.text_rec
        ratios = [max(c.shape[1] / max(c.shape[0], 1), MIN_REC_RATIO) for c in crops]
        order = sorted(range(len(crops)), key=ratios.__getitem__)
        out: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        i = 0
        while i < len(order):
            j = i + 1
            while j < len(order) and j - i < 6 and ratios[order[j]] <= 1.3 * ratios[order[i]]:
                j += 1
            batch = order[i:j]
            probs, _ = self.recognize_batch([crops[k] for k in batch], ratios[order[j - 1]])
            lines, _ = rec.postprocess_op(probs)
            for k, (text, score) in zip(batch, lines, strict=True):
                out[k] = (str(text), float(score))
            i = j
        return out

    def recognize_batch(
        self, crops: Sequence[Image], ratio: float, *, plates: bool = False
    ) -> tuple[Any, int]:
        """The recogniser's raw output for single-line crops, each resized to the model's
        height and padded to ``ratio`` heights: per-step character probabilities
        (crops x steps x alphabet, index 0 the CTC blank) and the padded width in pixels.
        With ``plates``, the plate recogniser's (``plate_recognizer``)."""
        rec = self.plate_recognizer if plates else self.recognizer
        batch = np.stack([rec.resize_norm_img(im, ratio) for im in crops]).astype(np.float32)
        return rec.session(batch), int(batch.shape[3])

    @staticmethod
    def crop_box(image: Image, box: NDArray[np.float32]) -> Image:
        """Cut a detected quadrilateral out of the image, straightened as RapidOCR does
        (a crop at least 1.5 times taller than wide is turned a quarter left)."""
        from rapidocr.utils.process_img import get_rotate_crop_image

        crop: Image = get_rotate_crop_image(image, np.asarray(box, dtype=np.float32).copy())
        return np.ascontiguousarray(crop)
