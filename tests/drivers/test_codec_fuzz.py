"""Fuzzing the byte codecs: no exception escapes, and no reading is invented from garbage.

"Invented" is defined per format by an oracle written here, independently of the codecs:

- the codec partitions its input: the raw bytes of its readings and rejects, in order, are
  exactly the bytes fed in (nothing is made up, dropped or reordered);
- every reading's raw bytes are one well-formed frame by the format's rules (start byte,
  length, field syntax, terminator, checksum or CRC where the format has one), and the reading
  says what that frame says (weight recomputed here with exact decimals; e-seal messages
  re-encoded to the same bytes).

Each hypothesis example draws a seed and some random bytes, and makes a batch of random byte
strings from the seed (``tests.drivers.fuzz_batch``). Every codec is fed each of them, cut into
random chunks: a quarter of the time the random bytes alone, otherwise a stream built around
them: valid frames of that format, slices of the random bytes, lone start bytes, then bit
flips, deletions, insertions, duplications and truncation. One run gives each of the three
codecs (Toledo in all its variants, XK3190 in both framings, the e-seal protocol in both
directions) over 100,000 inputs; one run instead of three pays hypothesis' own per-example
cost once.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.codec import Rejected
from drivers.eseal import (
    CMD_CODES,
    STATUS_CODES,
    MessageDecoder,
    Request,
    Response,
    SealEvent,
    SealLog,
    SealReading,
    encode_frame,
    info_payload,
    read_log_payload,
    read_log_request_payload,
    read_seal_payload,
    set_state_payload,
    state_payload,
    status_payload,
)
from drivers.weighbridge import ToledoDecoder, WeightReading, Xk3190Decoder
from tests.drivers.fuzz_batch import BATCH, MIN_INPUTS, build_stream, chunks, fuzz_batches
from tests.drivers.serial_helpers import bitwise_crc16, feed_pieces

# --------------------------------------------------------------------------- oracles

TOLEDO_FIELD = re.compile(rb" *[0-9]+")
XK_STX = re.compile(rb"\x02([+-])([0-9]{6})([0-4])([0-9A-F]{2})\x03")
XK_EQUALS = re.compile(rb"=([0-9.]{7})([0-])")
KG = {"kg": Decimal(1), "lb": Decimal("0.45359237"), "g": Decimal("0.001")}


def toledo_expected(raw: bytes, dec: ToledoDecoder) -> dict[str, object] | None:
    """What a well-formed Toledo frame says, or None if ``raw`` is not one."""
    n = (17 if dec.tare else 11) + dec.checksum
    if len(raw) != n or raw[0] != 0x02 or raw[16 if dec.tare else 10] != 0x0D:
        return None
    a, b, c = raw[1:4]
    if min(a, b, c) < 0x20 or max(raw) > 0x7F:
        return None
    if dec.strict_status and (a & 0x60 != 0x20 or not b & 0x20 or c & 0x60 != 0x20):
        return None
    shown = raw[4:10]
    tare = raw[10:16] if dec.tare else b"0"
    if not (TOLEDO_FIELD.fullmatch(shown) and TOLEDO_FIELD.fullmatch(tare)):
        return None
    if dec.checksum and sum(raw) % 128:
        return None
    if c & 7 > 1:
        return None
    unit = "g" if c & 1 else ("kg" if b & 0x10 else "lb")
    scale = Decimal(10) ** (2 - (a & 7)) * KG[unit]
    kg = None if b & 4 else Decimal(int(shown)) * scale * (-1 if b & 2 else 1)
    return {
        "kg": kg,
        "tare_kg": Decimal(int(tare)) * scale if dec.tare else None,
        "motion": bool(b & 8),
        "net": bool(b & 1),
        "overload": bool(b & 4) and not b & 2,
        "underload": bool(b & 4) and bool(b & 2),
    }


def xk3190_expected(raw: bytes, frames: str) -> Decimal | None:
    """The weight a well-formed XK3190 frame shows, or None if ``raw`` is not one."""
    m = XK_STX.fullmatch(raw)
    if m and frames in ("any", "stx"):
        xor = 0
        for byte in raw[1:9]:
            xor ^= byte
        if xor != int(m.group(4), 16):
            return None
        value = Decimal(int(m.group(2))) / 10 ** int(m.group(3))
        return -value if m.group(1) == b"-" else value
    m = XK_EQUALS.fullmatch(raw)
    if m and frames in ("any", "equals"):
        shown = m.group(1)[::-1].decode()
        if shown.count(".") > 1 or shown.startswith(".") or shown.endswith("."):
            return None
        value = Decimal(shown)
        return -value if m.group(2) == b"-" else value
    return None


def eseal_frame_ok(raw: bytes) -> bool:
    """Start byte, length in range and matching, CRC over LEN..payload, low byte first."""
    return (
        len(raw) >= 7
        and raw[0] == 0xA5
        and 3 <= raw[1] <= 131
        and len(raw) == raw[1] + 4
        and bitwise_crc16(raw[1:-2]) == int.from_bytes(raw[-2:], "little")
    )


def eseal_reencoded(msg: Request | Response) -> bytes:
    """The frame a message's fields encode to."""
    code = CMD_CODES[msg.command]
    if isinstance(msg, Request):
        if msg.command == "read_log":
            payload = read_log_request_payload(msg.start, msg.max_count)
        elif msg.command in ("unlock", "arm"):
            assert msg.seal_id is not None
            assert msg.mac is not None
            payload = set_state_payload(msg.seal_id, msg.mac)
        else:
            payload = b""
        return encode_frame(msg.addr, msg.seq, code, payload)
    if msg.status != "ok":
        payload = status_payload(msg.status)
    elif msg.info is not None:
        major, minor = (int(x) for x in msg.info.firmware.split("."))
        payload = info_payload((major, minor), msg.info.model)
        payload = payload[:1] + bytes([msg.info.protocol]) + payload[2:]
    elif msg.seal is not None:
        assert msg.challenge is not None
        payload = read_seal_payload(msg.seal, msg.challenge)
    elif msg.log is not None:
        payload = read_log_payload(msg.log)
    else:
        assert msg.state is not None
        payload = state_payload(msg.state)
    return encode_frame(msg.addr, msg.seq, code | 0x80, payload)


# --------------------------------------------------------------------------- frame makers

EVEN_PARITY = bytes(b | (0x80 if bin(b).count("1") % 2 else 0) for b in range(256))
MASK_7BIT = bytes(b & 0x7F for b in range(256))
SEAL_ID_CHARS = bytes(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"[b % 37] for b in range(256))
POOL_SIZE = 512  # valid frames are drawn from pools: building each anew costs more than decoding


def toledo_frame(rng: random.Random, dec: ToledoDecoder) -> bytes:
    swa = 0x20 | rng.randrange(32)
    swb = 0x20 | rng.randrange(32) | (0x40 if rng.random() < 0.05 else 0)
    swc = 0x20 | (1 if rng.random() < 0.1 else 0)
    frame = bytes([0x02, swa, swb, swc]) + b"%06d" % rng.randrange(10**6)
    if dec.tare:
        frame += b"%6d" % rng.randrange(10**6) if rng.random() < 0.2 else b"%06d" % 0
    frame += b"\r"
    if dec.checksum:
        frame += bytes([-sum(frame) & 0x7F])
    if dec.mask_parity and rng.random() < 0.2:
        frame = frame.translate(EVEN_PARITY)  # a 7E1 line read as 8N1
    return frame


def xk3190_frame(rng: random.Random) -> bytes:
    if rng.random() < 0.5:
        body = rng.choice(b"+-").to_bytes(1, "big") + b"%06d" % rng.randrange(10**6)
        body += b"%d" % rng.randrange(5)
        xor = 0
        for byte in body:
            xor ^= byte
        return b"\x02" + body + b"%02X" % xor + b"\x03"
    digits = b"%07d" % rng.randrange(10**7)
    dot = rng.randrange(7)
    if 0 < dot < 6 and rng.random() < 0.5:
        digits = digits[:dot] + b"." + digits[dot + 1 :]
    return b"=" + digits + rng.choice((b"0", b"-"))


def _seal_id(rng: random.Random) -> str:
    return rng.randbytes(rng.randint(1, 32)).translate(SEAL_ID_CHARS).decode()


def eseal_frame(rng: random.Random) -> bytes:
    addr, seq = rng.choice((1, 1, 2, 255)), rng.randrange(256)
    kind = rng.randrange(9)
    seal = SealReading(
        _seal_id(rng), rng.choice(("sealed", "opened", "tampered")), rng.randint(0, 100), 3
    )
    if kind == 0:
        return encode_frame(addr, seq, rng.choice((0x01, 0x10)))
    if kind == 1:
        return encode_frame(addr, seq, 0x11, read_log_request_payload(rng.randrange(9), 16))
    if kind == 2:
        mac = rng.randbytes(8)
        return encode_frame(
            addr, seq, rng.choice((0x20, 0x21)), set_state_payload(seal.seal_id, mac)
        )
    if kind == 3:
        return encode_frame(addr, seq, 0x90, read_seal_payload(seal, rng.randbytes(8)))
    if kind == 4:
        events = tuple(
            SealEvent(
                rng.choice(("armed", "unlocked", "tampered", "battery_low")), rng.randrange(2**32)
            )
            for _ in range(rng.randint(0, 16))
        )
        return encode_frame(addr, seq, 0x91, read_log_payload(SealLog(seal.seal_id, 40, 3, events)))
    if kind == 5:
        return encode_frame(addr, seq, rng.choice((0xA0, 0xA1)), state_payload(seal.state))
    if kind == 6:
        return encode_frame(addr, seq, 0x81, info_payload((1, rng.randrange(256)), "SIM-ESR1"))
    if kind == 7:
        status = rng.choice([s for s in STATUS_CODES if s != "ok"])
        return encode_frame(addr, seq, rng.choice((0x90, 0xA0, 0x91)), status_payload(status))
    return encode_frame(addr, seq, rng.randrange(256), rng.randbytes(rng.randint(0, 12)))


_POOL_RNG = random.Random(20240611)
TOLEDO_POOLS = {
    (tare, checksum, mask): [
        toledo_frame(_POOL_RNG, ToledoDecoder(tare=tare, checksum=checksum, mask_parity=mask))
        for _ in range(POOL_SIZE)
    ]
    for tare in (False, True)
    for checksum in (False, True)
    for mask in (False, True)
}
XK3190_POOL = [xk3190_frame(_POOL_RNG) for _ in range(POOL_SIZE)]
ESEAL_POOL = [eseal_frame(_POOL_RNG) for _ in range(4 * POOL_SIZE)]


# --------------------------------------------------------------------------- checks


def inputs(
    rng: random.Random, data: bytes, make_frame: Callable[[random.Random], bytes], special: bytes
) -> tuple[bytes, ...]:
    """One input from ``data``: mostly a stream built around it, sometimes ``data`` alone."""
    if rng.random() < 0.25:
        return (data,)
    return (build_stream(rng, data, make_frame, special),)


def check_toledo(rng: random.Random, data: bytes) -> None:
    dec = ToledoDecoder(
        tare=rng.random() < 0.7,
        checksum=rng.random() < 0.6,
        mask_parity=rng.random() < 0.8,
        strict_status=rng.random() < 0.6,
    )
    special = b"\x02\r\x82\x8d"
    pool = TOLEDO_POOLS[dec.tare, dec.checksum, dec.mask_parity]
    for stream in inputs(rng, data, lambda r: r.choice(pool), special):
        items = feed_pieces(dec, chunks(rng, stream))
        fed = stream.translate(MASK_7BIT) if dec.mask_parity else stream
        assert b"".join(item.raw for item in items) == fed
        for item in items:
            if isinstance(item, Rejected):
                continue
            assert isinstance(item, WeightReading)
            expected = toledo_expected(item.raw, dec)
            assert expected is not None, f"reading from a malformed frame {item.raw!r}"
            for name in ("motion", "net", "overload", "underload"):
                assert getattr(item, name) == expected[name]
            for name in ("kg", "tare_kg"):
                value, want = getattr(item, name), expected[name]
                assert (value is None) == (want is None)
                if want is not None:
                    assert abs(Decimal(repr(value)) - want) <= Decimal("1e-6") * (1 + abs(want))


def check_xk3190(rng: random.Random, data: bytes) -> None:
    frames = rng.choice(("any", "any", "stx", "equals"))
    dec = Xk3190Decoder(frames=frames)  # type: ignore[arg-type]
    special = b"\x02\x03=+-.0"
    for stream in inputs(rng, data, lambda r: r.choice(XK3190_POOL), special):
        items = feed_pieces(dec, chunks(rng, stream))
        assert b"".join(item.raw for item in items) == stream
        for item in items:
            if isinstance(item, Rejected):
                continue
            want = xk3190_expected(item.raw, frames)
            assert want is not None, f"reading from a malformed frame {item.raw!r}"
            assert abs(Decimal(repr(item.kg)) - want) <= Decimal("1e-6") * (1 + abs(want))
            assert item.motion is None


def check_eseal(rng: random.Random, data: bytes) -> None:
    direction = rng.choice(("both", "requests", "responses"))
    dec = MessageDecoder(direction)  # type: ignore[arg-type]
    special = b"\xa5\x03\x04\x05\x15\x1a"
    for stream in inputs(rng, data, lambda r: r.choice(ESEAL_POOL), special):
        pieces = chunks(rng, stream)
        items: list = []
        for piece in pieces:
            items += dec.feed(piece)
            if rng.random() < 0.05:
                items += dec.resync()  # the line went idle here
        items += dec.flush()
        assert b"".join(item.raw for item in items) == stream
        for item in items:
            if isinstance(item, Rejected):
                continue
            assert eseal_frame_ok(item.raw), f"message from a malformed frame {item.raw!r}"
            assert eseal_reencoded(item) == item.raw
            if direction != "both":
                assert isinstance(item, Request if direction == "requests" else Response)


def test_codecs_never_raise_and_never_invent_readings() -> None:
    def check(data: bytes, rng: random.Random) -> int:
        check_toledo(rng, data)
        check_xk3190(rng, data)
        check_eseal(rng, data)
        return 0

    def batch(rng: random.Random) -> list[bytes]:
        return [rng.randbytes(rng.randint(0, 200)) for _ in range(BATCH)]

    count, _ = fuzz_batches(check, batch)
    assert count >= MIN_INPUTS


# --------------------------------------------------------------------------- completeness


@settings(max_examples=400, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_every_frame_between_clean_junk_is_found(seed: int) -> None:
    """The other half of the contract: a codec that rejected everything would pass the fuzz
    test, so valid frames separated by junk holding no frame start must all come out."""
    rng = random.Random(seed)

    def junk(starts: bytes) -> bytes:
        return bytes(b for b in rng.randbytes(rng.randint(0, 30)) if b not in starts)

    toledo = ToledoDecoder(tare=rng.random() < 0.5, checksum=rng.random() < 0.5)
    frames = [toledo_frame(rng, toledo) for _ in range(rng.randint(1, 6))]
    stream = b"".join(junk(b"\x02\x82") + f for f in frames) + junk(b"\x02\x82")
    readings = [i for i in feed_pieces(toledo, chunks(rng, stream)) if isinstance(i, WeightReading)]
    assert [r.raw for r in readings] == [bytes(b & 0x7F for b in f) for f in frames]

    xk = Xk3190Decoder()
    frames = [xk3190_frame(rng) for _ in range(rng.randint(1, 6))]
    stream = b"".join(junk(b"\x02=") + f for f in frames) + junk(b"\x02=")
    readings = [i for i in feed_pieces(xk, chunks(rng, stream)) if isinstance(i, WeightReading)]
    assert [r.raw for r in readings] == frames

    eseal = MessageDecoder("both")
    frames = [eseal_frame(rng) for _ in range(rng.randint(1, 6))]
    stream = b"".join(junk(b"\xa5") + f for f in frames) + junk(b"\xa5")
    decoded = [i for i in feed_pieces(eseal, chunks(rng, stream)) if not isinstance(i, Rejected)]
    # frames with an unknown command or a payload that does not parse are rejected whole
    parsable = [f for f in frames if not isinstance(_parse_alone(f), Rejected)]
    assert [m.raw for m in decoded] == parsable


def _parse_alone(frame: bytes) -> object:
    items = MessageDecoder("both").feed(frame)
    return items[0] if len(items) == 1 else Rejected("not one item")
