"""Shared fixtures: the real test material lives outside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.commands import ROOT

SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real photos, logs and vectors; skips the test where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test material not found at {SHARED_DATA} (see README: Test data)")
    return SHARED_DATA
