"""1,000 passes through a lane process that is killed with SIGKILL, and a broker that is stopped
and started, at random moments: central ends with exactly the 1,000 pass ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.link_soak import soak
from sim.mosquitto import mosquitto_available


@pytest.mark.slow
async def test_every_pass_reaches_central_once_through_outages_and_kills(tmp_path: Path) -> None:
    if not mosquitto_available():
        pytest.skip("mosquitto is not installed")
    lines: list[str] = []
    result = await soak(1000, outages=10, kills=5, seed=3, workdir=tmp_path, say=lines.append)
    story = "\n".join(lines) + f"\n{result}"
    assert result.outages == 10, story
    assert result.kills == 5, story
    assert result.lane_starts == 6, story  # no crash of its own
    assert result.delivered == 1000, story
    assert result.missing == 0, story
    assert result.unexpected == [], story  # nothing central did not expect
    assert result.double_write_offs == 0, story
    assert result.outbox_gaps == 0, story
    # central counted every release, and the lane took all of central's changes back
    assert result.ledger_synced, story
    # each event happened while passes were still being written
    written_at = [int(line.split()[1]) for line in lines if line.startswith("at ")]
    assert len(written_at) == 15, story
    assert max(written_at) < 1000, story
