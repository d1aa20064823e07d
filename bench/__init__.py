"""Benchmarks that print figures; run each with ``python -m bench.NAME``."""

from pathlib import Path

# the real test material, beside the project (../shared/data)
SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
