"""The OCR engine as a daemon sees it: what it logs."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from recognition.engine import OcrEngine


def test_a_frame_without_text_is_not_a_warning_and_the_engine_logs_through_ours(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = OcrEngine()
    engine.warm_up()
    empty = np.full((480, 640, 3), 90, np.uint8)  # a camera looking at a grey wall
    with caplog.at_level(logging.INFO):
        assert engine.detect_and_read(empty) == []
        assert engine.detect_and_read(empty) == []
        # anything else the library has to say reaches the process's own handlers
        logging.getLogger("RapidOCR").warning("model file not found")
    messages = [r.getMessage() for r in caplog.records if r.name == "RapidOCR"]
    assert messages == ["model file not found"]
