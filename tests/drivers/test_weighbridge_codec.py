"""Weighbridge codecs from bytes: captured frames, split frames, junk, bad checksums."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from drivers.codec import Rejected
from drivers.weighbridge import (
    ToledoDecoder,
    WeighbridgeSettings,
    WeightReading,
    Xk3190Decoder,
    main,
    make_decoder,
    toledo_frame,
    xk3190_equals_frame,
    xk3190_frame,
)
from tests.drivers.serial_helpers import feed_all

FRAME_HEX = re.compile(r"`((?:[0-9A-F]{2} ){11}[0-9A-F]{2})`[^\n]*?-> (\d+) kg")
PAYLOAD = re.compile(r"`([+-][0-9]{7}[0-9A-F]{2})`[^\n]*-> (\d+) kg")
EQUALS = re.compile(r"(-?[0-9.]+) -> `((?:=[0-9.]{7}[0-9-])+)\.\.\.`")


@pytest.fixture(scope="module")
def captured(shared_data: Path) -> list[tuple[bytes, float]]:
    """XK3190-A9 tF=0 frames captured from real indicators, with the weight each shows.

    Two come as payloads between STX and ETX from a source whose own parser misread them
    (as 7 weight digits); the XOR proves the manual's layout (6 digits + decimal places).
    """
    text = (shared_data / "weighbridge" / "formats.md").read_text()
    frames = [(bytes.fromhex(h), float(kg)) for h, kg in FRAME_HEX.findall(text)]
    frames += [(b"\x02" + p.encode() + b"\x03", float(kg)) for p, kg in PAYLOAD.findall(text)]
    assert len(frames) >= 5, "formats.md no longer lists the captured XK3190 frames"
    return frames


@pytest.fixture(scope="module")
def manual_equals(shared_data: Path) -> list[tuple[bytes, float]]:
    """The XK3190 manual's tF=1 examples: a repeated stream and the value it shows."""
    text = (shared_data / "weighbridge" / "formats.md").read_text()
    found = [(stream.encode(), float(value)) for value, stream in EQUALS.findall(text)]
    assert len(found) >= 2, "formats.md no longer lists the '=' examples"
    return found


def kgs(items: list[object]) -> list[float | None]:
    return [item.kg for item in items if isinstance(item, WeightReading)]


def rejects(items: list[object]) -> list[Rejected]:
    return [item for item in items if isinstance(item, Rejected)]


def raws(items: list[object]) -> bytes:
    return b"".join(i.raw for i in items if isinstance(i, (WeightReading, Rejected)))


# --------------------------------------------------------------------------- XK3190


@pytest.mark.parametrize("step", [0, 1, 2, 5, 7, 11, 13])
def test_xk3190_captured_frames_decode_however_the_line_splits_them(
    captured: list[tuple[bytes, float]], step: int
) -> None:
    items = feed_all(Xk3190Decoder(), b"".join(f for f, _ in captured), step)
    assert kgs(items) == [kg for _, kg in captured]
    assert rejects(items) == []
    assert all(item.motion is None for item in items if isinstance(item, WeightReading))


def test_xk3190_encoder_reproduces_the_captured_frames(
    captured: list[tuple[bytes, float]],
) -> None:
    for frame, kg in captured:
        assert xk3190_frame(int(kg)) == frame


def test_xk3190_decimal_places_and_sign() -> None:
    body = b"-0012342"  # -12.34
    xor = 0
    for byte in body:
        xor ^= byte
    frame = b"\x02" + body + b"%02X" % xor + b"\x03"
    [reading] = Xk3190Decoder().feed(frame)
    assert isinstance(reading, WeightReading)
    assert reading.kg == -12.34


def test_xk3190_unit_tonnes() -> None:
    [reading] = Xk3190Decoder(unit="t").feed(xk3190_frame(31520, decimals=3))
    assert isinstance(reading, WeightReading)
    assert reading.kg == 31520.0


def test_xk3190_bad_xor_is_rejected_and_the_next_frame_still_read(
    captured: list[tuple[bytes, float]],
) -> None:
    good, kg = captured[1]
    bad = bytearray(good)
    bad[5] = ord("9") if bad[5] != ord("9") else ord("8")  # a wrong weight if it got through
    items = feed_all(Xk3190Decoder(), bytes(bad) + good)
    assert kgs(items) == [kg]
    [rej] = rejects(items)
    assert rej.reason == "bad XOR checksum"
    assert rej.raw == bytes(bad)


def test_xk3190_lowercase_checksum_and_missing_etx_are_rejected() -> None:
    frame = xk3190_frame(1234)
    lower = frame[:9] + frame[9:11].lower() + frame[11:]
    no_etx = frame[:11] + b"\x04"
    for broken in (lower, no_etx):
        if broken == frame:
            continue
        items = feed_all(Xk3190Decoder(), broken + frame)
        assert kgs(items) == [1234.0]
        assert len(rejects(items)) == 1


@pytest.mark.parametrize("step", [0, 1, 3])
def test_xk3190_junk_before_and_inside_frames(step: int) -> None:
    a, b, c = xk3190_frame(0), xk3190_frame(1560), xk3190_frame(1650)
    inside = b[:6] + b"\x00\xff" + b[6:]  # noise in the middle of the second frame
    stream = b"\xff\x02\x02+\x00noise" + a + inside + c + b"+0"
    items = feed_all(Xk3190Decoder(), stream, step)
    assert kgs(items) == [0.0, 1650.0]
    # every byte is accounted for, in order: nothing is invented, nothing vanishes
    assert raws(items) == stream


def test_xk3190_equals_frames_from_the_manual(manual_equals: list[tuple[bytes, float]]) -> None:
    for stream, value in manual_equals:
        items = feed_all(Xk3190Decoder(), stream)
        assert kgs(items) == [value] * (len(stream) // 9)
        assert rejects(items) == []


@pytest.mark.parametrize(
    "frame",
    [
        b"=00.1.00-",  # two decimal points
        b"=.0010000",  # decimal point at the edge
        b"=0010000+",  # '+' is not a sign in this format
        b"=00a0000-",  # a letter
        b"=001000=0",  # a frame cut short: the next '=' arrives early
    ],
)
def test_xk3190_malformed_equals_frames_are_rejected(frame: bytes) -> None:
    items = feed_all(Xk3190Decoder(), frame + b"=0000200")  # a good frame follows, unfinished
    assert kgs(items) == []
    assert rejects(items)


def test_xk3190_equals_frame_is_read_after_a_cut_frame() -> None:
    good = xk3190_equals_frame(12340)
    items = feed_all(Xk3190Decoder(), good[:5] + good + good)
    assert kgs(items) == [12340.0, 12340.0]
    assert [r.raw for r in rejects(items)] == [good[:5]]


def test_xk3190_framing_can_be_restricted() -> None:
    stream = xk3190_equals_frame(500) + xk3190_frame(700)
    assert kgs(feed_all(Xk3190Decoder(frames="stx"), stream)) == [700.0]
    assert kgs(feed_all(Xk3190Decoder(frames="equals"), stream)) == [500.0]


def test_xk3190_incomplete_frame_at_end_is_rejected_on_flush() -> None:
    decoder = Xk3190Decoder()
    assert decoder.feed(xk3190_frame(100)[:7]) == []
    [rej] = decoder.flush()
    assert isinstance(rej, Rejected)
    assert "incomplete" in rej.reason


# --------------------------------------------------------------------------- Toledo


def toledo(swa: int, swb: int, swc: int, shown: bytes, tare: bytes | None, *, cs: bool) -> bytes:
    """A Toledo frame built by hand from the Wildcat manual's table."""
    frame = bytes([0x02, swa, swb, swc]) + shown + (tare or b"") + b"\r"
    if cs:
        frame += bytes([(128 - sum(frame) % 128) % 128])
    return frame


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (0, 1234500.0),  # XXXX00
        (1, 123450.0),  # XXXXX0
        (2, 12345.0),  # XXXXXX
        (3, 1234.5),  # XXXXX.X
        (4, 123.45),
        (5, 12.345),
        (6, 1.2345),
        (7, 0.12345),
    ],
)
def test_toledo_decimal_position_from_status_word_a(code: int, expected: float) -> None:
    frame = toledo(0x20 | 0x08 | code, 0x30, 0x20, b"012345", b"000000", cs=True)
    [reading] = ToledoDecoder().feed(frame)
    assert isinstance(reading, WeightReading)
    assert reading.kg == pytest.approx(expected)


def test_toledo_status_word_b_flags() -> None:
    decoder = ToledoDecoder()
    swa = 0x2A  # XXXXXX, increment x1
    cases = {
        0x30: {"kg": 25000.0, "motion": False, "net": False},
        0x38: {"kg": 25000.0, "motion": True},  # motion
        0x32: {"kg": -25000.0},  # negative
        0x34: {"kg": None, "overload": True, "underload": False},  # out of range, positive
        0x36: {"kg": None, "overload": False, "underload": True},  # out of range, negative
        0x70: {"unzeroed": True},  # power-up not zeroed
        0x20: {"kg": pytest.approx(25000.0 * 0.45359237)},  # lb
    }
    for swb, expected in cases.items():
        [reading] = decoder.feed(toledo(swa, swb, 0x20, b"025000", b"000000", cs=True))
        assert isinstance(reading, WeightReading)
        for name, value in expected.items():
            assert getattr(reading, name) == value, (hex(swb), name)


def test_toledo_net_frame_gives_gross_with_its_tare() -> None:
    [reading] = ToledoDecoder().feed(toledo(0x2A, 0x31, 0x20, b"018000", b"014500", cs=True))
    assert isinstance(reading, WeightReading)
    assert (reading.net, reading.kg, reading.tare_kg, reading.gross_kg) == (
        True,
        18000.0,
        14500.0,
        32500.0,
    )
    short = ToledoDecoder(tare=False).feed(toledo(0x2A, 0x31, 0x20, b"018000", None, cs=True))
    assert isinstance(short[0], WeightReading)
    assert short[0].gross_kg is None  # net without a tare field: no gross weight


def test_toledo_units_from_status_or_config() -> None:
    grams = toledo(0x2A, 0x30, 0x21, b"002500", b"000000", cs=True)
    [reading] = ToledoDecoder().feed(grams)
    assert isinstance(reading, WeightReading)
    assert reading.kg == 2.5
    [forced] = ToledoDecoder(unit="t").feed(toledo(0x2D, 0x20, 0x20, b"031520", b"000000", cs=True))
    assert isinstance(forced, WeightReading)
    assert forced.kg == 31520.0  # 31.520 t
    odd_unit = toledo(0x2A, 0x30, 0x26, b"002500", b"000000", cs=True)
    [rej] = feed_all(ToledoDecoder(), odd_unit)
    assert isinstance(rej, Rejected)
    assert "unit" in rej.reason


@pytest.mark.parametrize("step", [0, 1, 4, 17])
def test_toledo_split_frames_and_every_variant(step: int) -> None:
    for tare in (True, False):
        for cs in (True, False):
            frames = [
                toledo(0x2A, 0x30, 0x20, b"%06d" % w, b"000000" if tare else None, cs=cs)
                for w in (0, 40, 31520, 999999)
            ]
            items = feed_all(ToledoDecoder(tare=tare, checksum=cs), b"".join(frames), step)
            assert kgs(items) == [0.0, 40.0, 31520.0, 999999.0], (tare, cs)
            assert rejects(items) == []


def test_toledo_leading_blanks_accepted_but_not_inner_blanks() -> None:
    good = toledo(0x2A, 0x30, 0x20, b"  1520", b"     0", cs=True)
    bad = toledo(0x2A, 0x30, 0x20, b"15  20", b"000000", cs=True)
    items = feed_all(ToledoDecoder(), bad + good)
    assert kgs(items) == [1520.0]
    assert len(rejects(items)) == 1


def test_toledo_bad_checksum_rejected() -> None:
    good = toledo(0x2A, 0x30, 0x20, b"031520", b"000000", cs=True)
    bad = bytearray(good)
    bad[6] = ord("2")  # 032520: a tonne too much
    items = feed_all(ToledoDecoder(), bytes(bad) + good)
    assert kgs(items) == [31520.0]
    [rej] = rejects(items)
    assert rej.reason == "bad checksum"


def test_toledo_checksum_expected_but_not_sent_says_so() -> None:
    frame = toledo(0x2A, 0x30, 0x20, b"031520", b"000000", cs=False)
    items = feed_all(ToledoDecoder(checksum=True), frame * 4)
    assert kgs(items) == []
    assert "checksum off" in rejects(items)[0].reason


def test_toledo_parity_bit_is_masked_for_7e1_lines() -> None:
    frame = toledo(0x2A, 0x30, 0x20, b"031520", b"000000", cs=True)
    # even parity in bit 7, as an 8N1 port shows a 7E1 line
    with_parity = bytes(b | (0x80 if bin(b).count("1") % 2 else 0) for b in frame)
    assert with_parity != frame
    assert kgs(feed_all(ToledoDecoder(), with_parity)) == [31520.0]
    assert kgs(feed_all(ToledoDecoder(mask_parity=False), with_parity)) == []


def test_toledo_clone_status_bits_need_lenient_mode() -> None:
    # a clone that sets status word A bit 6 and clears bit 5
    clone = toledo(0x4A, 0x30, 0x20, b"031520", b"000000", cs=True)
    strict = feed_all(ToledoDecoder(), clone)
    assert kgs(strict) == []
    assert "strict_status" in rejects(strict)[0].reason
    assert kgs(feed_all(ToledoDecoder(strict_status=False), clone)) == [31520.0]


def test_toledo_control_characters_are_never_status_words() -> None:
    frame = toledo(0x0D, 0x30, 0x20, b"031520", b"000000", cs=True)
    assert kgs(feed_all(ToledoDecoder(strict_status=False), frame)) == []


@pytest.mark.parametrize("step", [0, 1, 5])
def test_toledo_junk_before_and_inside_frames(step: int) -> None:
    a = toledo_frame(31520)
    b = toledo_frame(31530, motion=True)
    inside = b[:9] + b"\x02\x00" + b[9:]  # a stray STX and a NUL in the digits
    stream = b"\r\n\x02\x02garbage" + a + inside + a + b"\x02*0"
    items = feed_all(ToledoDecoder(), stream, step)
    assert kgs(items) == [31520.0, 31520.0]
    assert raws(items) == stream


def test_encoders_match_the_hand_built_frames() -> None:
    assert toledo_frame(31520) == toledo(0x2A, 0x30, 0x20, b"031520", b"000000", cs=True)
    assert xk3190_frame(1560).hex() == "022b30303135363030313903"
    assert xk3190_equals_frame(3000, decimals=3) == b"=000.3000"
    assert xk3190_equals_frame(100, decimals=2, negative=True) == b"=00.1000-"


# --------------------------------------------------------------------------- capture files


def test_capture_file_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = tmp_path / "xk.bin"
    good = [xk3190_frame(w) for w in (0, 1560, 1650, 3290, 3260)]
    capture.write_bytes(b"".join(good) + b"\x02+00326001D\x03" + b"noise")
    assert main(["--format", "xk3190", str(capture)]) == 0
    out = capsys.readouterr()
    lines = [json.loads(line) for line in out.out.splitlines()]
    assert [line["kg"] for line in lines[:-1]] == [0.0, 1560.0, 1650.0, 3290.0, 3260.0]
    assert all(line["motion"] is None for line in lines[:-1])
    assert lines[-1] == {"accepted": 5, "rejected": 1}
    assert "bad XOR" in out.err


def test_capture_file_command_toledo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = tmp_path / "toledo.bin"
    capture.write_bytes(toledo_frame(31520, motion=True) + toledo_frame(31520)[:-1] + b"\x00")
    assert main(["--format", "toledo", str(capture)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["kg"] == 31520.0
    assert lines[0]["motion"] is True
    assert lines[-1] == {"accepted": 1, "rejected": 1}


def test_capture_file_command_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--format", "toledo", str(tmp_path / "absent.bin")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_a_lane_takes_only_checksummed_xk3190_frames_unless_told_otherwise() -> None:
    # tF 2 frames ('=', sign, digits high first) pass for tF 1 frames read backwards: 30520 kg
    # would weigh 2503 t, 40000 kg 4000 kg. The checksummed tF 0 is what a lane reads by default.
    settings = WeighbridgeSettings(port="/dev/ttyUSB0", format="xk3190")
    assert settings.xk3190.frames == "stx"
    tf2 = b"=00030520" * 3 + b"=00040000" * 3
    decoder = make_decoder(settings)
    items = decoder.feed(tf2) + decoder.flush()
    assert not [item for item in items if isinstance(item, WeightReading)]  # no weight at all


def test_a_toledo_indicator_showing_pounds_is_never_read_as_kilograms() -> None:
    lb = toledo_frame(66139, kg=False)  # a 30 t truck on an indicator switched to lb
    items = feed_all(make_decoder(WeighbridgeSettings(port="/dev/ttyUSB0", format="toledo")), lb)
    assert [r.reason for r in rejects(items)] == ["status words say lb, the config says kg"]
    assert not [i for i in items if isinstance(i, WeightReading)]
    # told to take the unit from the status words, the same frame weighs 30 t
    status = WeighbridgeSettings(port="/dev/ttyUSB0", format="toledo", unit="status")
    [reading] = feed_all(make_decoder(status), lb)
    assert isinstance(reading, WeightReading)
    assert reading.kg == pytest.approx(30_000, abs=1)
