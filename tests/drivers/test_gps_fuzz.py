"""Fuzzing the GPS codec: no exception escapes, and every fix comes from well-formed,
checksum-valid RMC (and GGA) sentences that really are in the input.

The oracle below reads sentences its own way (a regex and an XOR), independently of the codec.
"""

from __future__ import annotations

import datetime as dt
import random
import re

from drivers.codec import Rejected
from drivers.gps import GpsDecoder, GpsFix, GpsLimits, GpsNoFix
from sim.gps_device import GpsState, epoch_sentences
from tests.drivers.fuzz_batch import (
    BATCH,
    MIN_INPUTS,
    fuzz_batches,
    mutate,
    nmea_checksum,
    refix_checksums,
    splits,
)

T0 = dt.datetime(2024, 5, 1, 10, 0, 0, tzinfo=dt.UTC).timestamp()
LIMITS = GpsLimits(max_hdop=4.0, max_age_s=5.0)
MAX_LINE = 120


def _corpus() -> list[bytes]:
    states = [
        GpsState(31.2304, 121.4737, True, 0.9, 9, 1, 12.0),
        GpsState(-45.8775, 170.5001, True, 3.9, 5, 2, 0.0),
        GpsState(38.9084, -77.4408, True, 7.5, 4, 1, 80.0),
        GpsState(0.0, 0.0, False),
        GpsState(89.9, -179.9, True, 1.0, 12, 8),
    ]
    pairs = [(state, talker) for state in states for talker in ("GP", "GN", "BD")]
    corpus = [
        epoch_sentences(state, T0 + i * 0.25, talker) for i, (state, talker) in enumerate(pairs)
    ]
    corpus += [
        b"$GPGSV,3,1,12,20,76,058,40,11,73,252,,06,41,274,,14,41,185,*7D\r\n",
        b"$GPVTG,000.0,T,357.0,M,000.1,N,0000.1,K,A*12\r\n",
        b"$GPGLL,4808.9993,N,01135.0798,E,000345.03,A,A*66\r\n",
        b"$GPRMC,,V,,,,,,,,,,N*53\r\n",
        b"$PSRFEPE,074150.799,V,,,,,*23\r\n",
        b"$PUBX,00,081350.00,4717.113210,N,00833.915187,E,546.589,G3,2.1,2.0,0.007,77.52,"
        b"0.007,,0.92,1.19,0.77,9,0,0*5F\r\n",
        b"$PASHR,085335.000,224.19,T,-01.26,+00.83,,0.101,0.113,0.267,1,0*06\r\n",
        b"$PTNL,GGK,102939.00,051910,5000.97323841,N,00827.62010742,E,5,09,1.9,EHT150.790,M*73\r\n",
        b"$GPZDA,000427.00,22,08,1999,,*67\r\n",
    ]
    return corpus


CORPUS = _corpus()
HEADS = ["GPRMC,", "GNGGA,", "BDRMC,", "GPGGA,", "PUBX,", "PASHR,", "PTNL,", "PGRME,", "PSRF"]


def _inputs(rng: random.Random) -> list[bytes]:
    out: list[bytes] = []
    for _ in range(BATCH):
        kind = rng.random()
        if kind < 0.15:
            data = rng.randbytes(rng.randint(0, 300))  # plain random bytes
        elif kind < 0.3:
            # random fields behind a correct checksum: only field checks stand in the way
            alphabet = "0123456789.,ANSEWV-GPRMCGA"
            body = rng.choice(HEADS) + "".join(
                rng.choice(alphabet) for _ in range(rng.randint(0, 90))
            )
            data = b"$%s*%02X\r\n" % (body.encode(), nmea_checksum(body.encode()))
        else:
            data = b"".join(rng.choice(CORPUS) for _ in range(rng.randint(1, 3)))
            data = mutate(rng, data, rng.randint(0, 5))
            if rng.random() < 0.5:
                data = refix_checksums(data)
        out.append(data)
    return out


# ---- the oracle ---------------------------------------------------------------------------

_RUN = re.compile(rb"\$[^$\r\n]*")
_CHECKED = re.compile(rb"\$([\x20-\x29\x2b-\x7e]*)\*([0-9A-Fa-f]{2})\s*")


def _well_formed(data: bytes) -> list[list[str]]:
    """Checksum-valid sentences in ``data``, split into fields."""
    found = []
    for run in _RUN.findall(data):
        m = _CHECKED.fullmatch(run)
        if m and nmea_checksum(m.group(1)) == int(m.group(2), 16):
            found.append(m.group(1).decode("ascii").split(","))
    return found


def _ms(text: str) -> int | None:
    try:
        return round(((int(text[0:2]) * 60 + int(text[2:4])) * 60 + float(text[4:])) * 1000)
    except ValueError:
        return None


def _deg(value: str, hemi: str, digits: int) -> float | None:
    try:
        degrees = int(value[:digits]) + float(value[digits:]) / 60
    except ValueError:
        return None
    return -degrees if hemi in ("S", "W") else degrees


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _close(a: float | None, b: float) -> bool:
    return a is not None and abs(a - b) < 1e-9


def _check_fix(fix: GpsFix, sentences: list[list[str]], now: float) -> None:
    tod = round((fix.timestamp % 86400) * 1000)
    ddmmyy = fix.time[8:10] + fix.time[5:7] + fix.time[2:4]
    rmcs = [
        s
        for s in sentences
        if s[0].endswith("RMC") and len(s) > 9 and _ms(s[1]) == tod and s[9] == ddmmyy
    ]
    ggas = [s for s in sentences if s[0].endswith("GGA") and len(s) > 8 and _ms(s[1]) == tod]
    assert rmcs, f"fix {fix} has no checksum-valid RMC of its time and date in the input"
    positions = [(_deg(s[3], s[4], 2), _deg(s[5], s[6], 3)) for s in rmcs]
    positions += [(_deg(s[2], s[3], 2), _deg(s[4], s[5], 3)) for s in ggas]
    assert any(_close(lat, fix.lat) and _close(lon, fix.lon) for lat, lon in positions), fix
    if fix.valid:
        assert any(s[2] == "A" for s in rmcs), fix
        assert any(
            s[6] in ("1", "2", "3", "4", "5") and 0 < (_float(s[8]) or 0) < LIMITS.max_hdop
            for s in ggas
        ), fix
        assert abs(now - fix.timestamp) <= LIMITS.max_age_s


def _run_one(data: bytes, rng: random.Random) -> int:
    """Decode ``data`` in random chunks, check every reading; returns the valid fixes seen."""
    decoder = GpsDecoder(LIMITS, max_line=MAX_LINE)
    now = T0 + rng.uniform(-6, 6)
    out: list[object] = []
    for chunk in splits(rng, data):
        out += decoder.feed(chunk, now)
        assert decoder.buffered <= MAX_LINE
    out += decoder.flush(now)
    sentences = _well_formed(data)
    valid = 0
    for item in out:
        assert isinstance(item, GpsFix | GpsNoFix | Rejected)
        if isinstance(item, GpsFix):
            _check_fix(item, sentences, now)
            valid += item.valid
    return valid


def test_fuzz_gps_codec_random_and_mutated_inputs() -> None:
    count, valid = fuzz_batches(_run_one, _inputs)
    assert count >= MIN_INPUTS
    assert valid > 1000  # clean and lightly mutated epochs do get through: the oracle was used


def test_the_unmutated_corpus_does_give_valid_fixes() -> None:
    """The oracle is not vacuous: clean epochs produce fixes it accepts."""
    decoder = GpsDecoder(LIMITS)
    out = [f for f in decoder.feed(b"".join(CORPUS), T0) if isinstance(f, GpsFix)]
    assert sum(f.valid for f in out) >= 6
    for fix in out:
        _check_fix(fix, _well_formed(b"".join(CORPUS)), T0)
