"""GPS codec from bytes: framing, checksums, field checks, epochs and when a fix is valid."""

from __future__ import annotations

import datetime as dt

import pytest

from drivers.codec import Rejected
from drivers.gps import GpsDecoder, GpsFix, GpsLimits, GpsNoFix, NmeaFramer
from tests.drivers.fuzz_batch import nmea_checksum

# 2014-05-26 08:14:12 UTC
T0 = dt.datetime(2014, 5, 26, 8, 14, 12, tzinfo=dt.UTC).timestamp()


def nmea(body: str) -> bytes:
    """A sentence with its checksum and CR LF."""
    checksum = nmea_checksum(body.encode("ascii"))
    return f"${body}*{checksum:02X}\r\n".encode("ascii")


def rmc(
    hhmmss: str = "081412.000",
    *,
    status: str = "A",
    lat: str = "5541.1956,N",
    lon: str = "03737.2877,E",
    date: str = "260514",
    talker: str = "GP",
    mode: str = ",A",
) -> bytes:
    return nmea(f"{talker}RMC,{hhmmss},{status},{lat},{lon},0.52,301.26,{date},,{mode}")


def gga(
    hhmmss: str = "081412.000",
    *,
    quality: int = 1,
    hdop: str = "1.20",
    lat: str = "5541.1956,N",
    lon: str = "03737.2877,E",
    talker: str = "GP",
) -> bytes:
    return nmea(f"{talker}GGA,{hhmmss},{lat},{lon},{quality},07,{hdop},66.2,M,14.5,M,,")


def fixes(items: list[object]) -> list[GpsFix]:
    return [i for i in items if isinstance(i, GpsFix)]


def rejects(items: list[object]) -> list[Rejected]:
    return [i for i in items if isinstance(i, Rejected)]


def test_rmc_and_gga_of_one_epoch_make_one_valid_fix() -> None:
    out = GpsDecoder().feed(rmc() + gga(), now=T0 + 0.4)
    assert len(out) == 1
    fix = out[0]
    assert isinstance(fix, GpsFix)
    assert fix.valid, fix.reason
    assert fix.time == "2014-05-26T08:14:12.000Z"
    assert fix.timestamp == T0
    assert fix.lat == pytest.approx(55 + 41.1956 / 60, abs=1e-9)
    assert fix.lon == pytest.approx(37 + 37.2877 / 60, abs=1e-9)
    assert (fix.hdop, fix.quality, fix.satellites) == (1.2, 1, 7)
    assert fix.speed_kmh == pytest.approx(0.52 * 1.852, abs=1e-3)
    assert fix.received_at == T0 + 0.4


def test_south_and_west_are_negative() -> None:
    out = GpsDecoder().feed(
        rmc(lat="4552.65403,S", lon="07726.4523,W") + gga(lat="4552.65403,S", lon="07726.4523,W"),
        now=T0,
    )
    (fix,) = fixes(out)
    assert fix.lat == pytest.approx(-(45 + 52.65403 / 60), abs=1e-9)
    assert fix.lon == pytest.approx(-(77 + 26.4523 / 60), abs=1e-9)


def test_every_split_of_the_stream_gives_the_same_fix() -> None:
    stream = b"noise" + rmc() + b"$GPGSV,1,1,00*79\r\n" + gga()
    whole = GpsDecoder().feed(stream, now=T0)
    for cut in range(len(stream) + 1):
        decoder = GpsDecoder()
        parts = decoder.feed(stream[:cut], now=T0) + decoder.feed(stream[cut:], now=T0)
        assert parts == whole, cut
    one_byte_at_a_time = GpsDecoder()
    trickled = [r for b in stream for r in one_byte_at_a_time.feed(bytes([b]), now=T0)]
    assert trickled == whole


def test_junk_before_and_between_sentences_is_rejected_not_fatal() -> None:
    out = GpsDecoder().feed(b"\x00\xff garbage" + rmc() + b"more junk\r\n" + gga(), now=T0)
    assert [r.reason for r in rejects(out)] == ["junk outside a sentence"] * 2
    assert len(fixes(out)) == 1


def test_junk_inside_a_sentence_spoils_only_that_sentence() -> None:
    broken = rmc()[:20] + b"\x00\x00" + rmc()[20:]
    out = GpsDecoder().feed(broken + gga(), now=T0)
    assert [r.reason for r in rejects(out)] == ["not printable ASCII"]
    assert not fixes(out)  # GGA alone carries no date


def test_wrong_checksum_is_rejected() -> None:
    sentence = bytearray(rmc())
    sentence[-4:-2] = b"00" if sentence[-4:-2] != b"00" else b"01"
    out = GpsDecoder().feed(bytes(sentence) + gga(), now=T0)
    assert [r.reason for r in rejects(out)] == ["bad checksum"]
    assert not fixes(out)


def test_a_changed_field_with_the_old_checksum_is_rejected() -> None:
    good = rmc()
    forged = good.replace(b"5541.1956", b"5542.1956")
    out = GpsDecoder().feed(forged + gga(), now=T0)
    assert [r.reason for r in rejects(out)] == ["bad checksum"]


def test_truncated_sentences_and_missing_line_ends() -> None:
    out = GpsDecoder().feed(b"$GPRMC,081412.000,A,5541.19" + rmc() + gga(), now=T0)
    # a '$' starts a new sentence: the cut one is rejected, the next one survives
    assert [r.reason for r in rejects(out)] == ["truncated or no checksum"]
    assert len(fixes(out)) == 1
    glued = rmc().rstrip() + gga()  # no CR LF between two whole sentences
    assert len(fixes(GpsDecoder().feed(glued, now=T0))) == 1


def test_sentence_without_checksum_is_rejected() -> None:
    out = GpsDecoder().feed(b"$GPRMC,081412.000,A,5541.1956,N,03737.2877,E,,,260514,,\r\n", T0)
    assert [r.reason for r in rejects(out)] == ["truncated or no checksum"]


def test_overlong_garbage_is_bounded_and_rejected_once() -> None:
    decoder = GpsDecoder(max_line=100)
    out = decoder.feed(b"$GP" + b"A" * 10_000, now=T0)
    assert decoder.buffered <= 100
    assert [r.reason for r in rejects(out)] == ["sentence too long"]
    out = decoder.feed(b"B" * 10_000 + b"\r\n" + rmc() + gga(), now=T0)
    assert not rejects(out)  # the rest of the long line is skipped silently
    assert len(fixes(out)) == 1


def test_framer_keeps_no_more_than_max_line_of_junk() -> None:
    framer = NmeaFramer(max_line=90)
    out = framer.feed(b"x" * 1000)
    assert framer.buffered <= 90
    assert [r.reason for r in out if isinstance(r, Rejected)] == ["junk outside a sentence"]


@pytest.mark.parametrize(
    "bad",
    [
        rmc(lat="55X1.1956,N"),  # not a number
        rmc(lat="5561.1956,N"),  # 61 minutes
        rmc(lat="9541.1956,N"),  # 95 degrees
        rmc(lat="5541.1956,E"),  # latitude with a longitude's hemisphere
        rmc(lon="3737.2877,E"),  # four degree digits for a longitude
        rmc(hhmmss="251412.000"),
        rmc(date="310214"),  # 31 February
        rmc(status="X"),
        nmea("GPRMC,081412.000,A,5541.1956,N"),  # too few fields, checksum fine
        nmea("GPGGA,081412.000,5541.1956,N,03737.2877,E,Q,07,1.2,66.2,M,14.5,M,,"),
        nmea("GPGGA,081412.000,5541.1956,N,03737.2877,E,1,07,1.2.3,66.2,M,14.5,M,,"),
    ],
)
def test_checksum_valid_sentences_with_impossible_fields_are_rejected(bad: bytes) -> None:
    out = GpsDecoder().feed(bad, now=T0)
    assert len(out) == 1
    assert isinstance(out[0], Rejected)
    assert out[0].reason.startswith("malformed")


@pytest.mark.parametrize("talker", ["GP", "GN", "GL", "BD", "GB", "GA"])
def test_any_constellation_talker_works(talker: str) -> None:
    out = GpsDecoder().feed(rmc(talker=talker) + gga(talker=talker), now=T0)
    assert len(fixes(out)) == 1
    assert fixes(out)[0].valid


def test_mixed_talkers_in_one_epoch_are_joined() -> None:
    # BU-353 GLONASS sends $GPGGA and $GNRMC for the same epoch; some send both GP and GN RMC
    out = GpsDecoder().feed(gga(talker="GP") + rmc(talker="GN") + rmc(talker="GP"), now=T0)
    assert len(out) == 1
    assert isinstance(out[0], GpsFix)
    assert out[0].valid


def test_gga_before_rmc_and_epochs_in_sequence() -> None:
    stream = (
        gga("081412.000")
        + rmc("081412.000")
        + rmc("081413.000", lat="5541.1959,N")
        + gga("081413.000", lat="5541.1959,N")
    )
    out = fixes(GpsDecoder().feed(stream, now=T0 + 1))
    assert [f.time for f in out] == ["2014-05-26T08:14:12.000Z", "2014-05-26T08:14:13.000Z"]
    assert all(f.valid for f in out)


def test_rmc_without_gga_is_reported_invalid_when_the_next_epoch_starts() -> None:
    decoder = GpsDecoder()
    assert decoder.feed(rmc("081412.000"), now=T0) == []
    out = decoder.feed(rmc("081413.000"), now=T0)
    (fix,) = fixes(out)
    assert not fix.valid
    assert "no GGA" in fix.reason


@pytest.mark.parametrize(
    ("sentences", "reason"),
    [
        (rmc(status="V") + gga(), "RMC status V"),
        (rmc(mode=",N") + gga(), "RMC mode N"),
        (rmc(mode=",E") + gga(), "RMC mode E"),  # dead reckoning is not a measurement
        (rmc(mode=",S") + gga(quality=8), "RMC mode S"),  # a receiver in simulator mode
        (rmc() + gga(quality=0), "GGA quality 0"),
        (rmc() + gga(quality=6), "GGA quality 6"),
        (rmc() + gga(quality=8), "GGA quality 8"),
        (rmc() + gga(hdop="4.00"), "HDOP 4 not under 4"),
        (rmc() + gga(hdop="12.5"), "HDOP 12.5 not under 4"),
        (rmc() + gga(hdop=""), "no HDOP"),
        (rmc() + gga(hdop="0.0"), "no HDOP"),
        (rmc() + gga(lat="5541.3956,N"), "RMC and GGA positions differ"),
    ],
)
def test_fix_is_invalid_unless_every_condition_holds(sentences: bytes, reason: str) -> None:
    (fix,) = fixes(GpsDecoder(GpsLimits(max_hdop=4.0)).feed(sentences, now=T0))
    assert not fix.valid
    assert reason in fix.reason


def test_hdop_limit_is_configurable() -> None:
    sentences = rmc() + gga(hdop="4.87")
    assert not fixes(GpsDecoder(GpsLimits(max_hdop=4.0)).feed(sentences, now=T0))[0].valid
    assert fixes(GpsDecoder(GpsLimits(max_hdop=5.0)).feed(sentences, now=T0))[0].valid


@pytest.mark.parametrize(
    ("offset", "valid"), [(0.0, True), (4.9, True), (-4.9, True), (6.0, False)]
)
def test_fix_must_be_fresh_against_the_time_passed_in(offset: float, valid: bool) -> None:
    decoder = GpsDecoder(GpsLimits(max_age_s=5.0))
    (fix,) = fixes(decoder.feed(rmc() + gga(), now=T0 + offset))
    assert fix.valid is valid
    if not valid:
        assert "not fresh" in fix.reason


def test_a_receiver_with_a_garbage_date_never_gives_a_valid_fix() -> None:
    # after a cold start the GPS-320FW reported 1999 (week rollover): stale against the lane
    (fix,) = fixes(GpsDecoder().feed(rmc(date="220899") + gga(), now=T0))
    assert fix.time.startswith("1999-08-22")
    assert not fix.valid


def test_no_fix_epochs_are_reported_as_such() -> None:
    out = GpsDecoder().feed(
        nmea("GPRMC,,V,,,,,,,,,,N") + nmea("GPGGA,,,,,,0,,,,M,,M,,"), now=T0
    )  # Telit before its first fix: no time at all
    assert out == [GpsNoFix("RMC without time")]
    out = GpsDecoder().feed(
        rmc(status="V", lat=",", lon=",") + gga(quality=0, lat=",", lon=","), T0
    )
    assert len(out) == 1
    assert isinstance(out[0], GpsNoFix)
    assert out[0].time == "2014-05-26T08:14:12.000Z"


def test_other_sentences_are_checked_and_ignored() -> None:
    decoder = GpsDecoder()
    out = decoder.feed(
        nmea("GPGSV,1,1,00") + nmea("PSRFEPE,074150.799,V,,,,,") + nmea("GPXYZ,1,2"), now=T0
    )
    assert out == []
    assert decoder.ignored == 3


@pytest.mark.parametrize("address", ["PUBX", "PASHR", "PTNL", "PSXN", "PVTX"])
def test_short_proprietary_sentences_do_not_crash_the_parser(address: str) -> None:
    # pynmea2.parse raises IndexError on "$PUBX*1F" and the like; here they are rejects
    out = GpsDecoder().feed(nmea(address) + nmea(f"{address},1") + rmc() + gga(), now=T0)
    assert len(fixes(out)) == 1
    assert all(r.reason == "malformed sentence" for r in rejects(out))


def test_midnight_rollover_takes_the_date_from_each_rmc() -> None:
    stream = (
        rmc("235959.500", date="311224")
        + gga("235959.500")
        + rmc("000000.500", date="010125")
        + gga("000000.500")
    )
    out = fixes(GpsDecoder().replay(stream))
    assert [f.time for f in out] == ["2024-12-31T23:59:59.500Z", "2025-01-01T00:00:00.500Z"]
    assert all(f.valid for f in out)  # replay judges each fix as of its own time


def test_flush_reports_a_truncated_tail() -> None:
    decoder = GpsDecoder()
    decoder.replay(rmc() + b"$GPGGA,081412.0")
    out = decoder.flush()
    assert [r.reason for r in rejects(out)] == ["truncated at end of input"]
    assert len(fixes(out)) == 1  # the RMC's epoch, now known to lack its GGA
    assert not fixes(out)[0].valid
