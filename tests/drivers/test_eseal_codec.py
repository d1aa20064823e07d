"""E-seal protocol codec from bytes: the document's examples, splits, junk, bad CRCs."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from pathlib import Path

import pytest

from drivers.codec import Rejected
from drivers.eseal import (
    MessageDecoder,
    Request,
    Response,
    SealEvent,
    SealLog,
    SealReading,
    command_mac,
    crc16_modbus,
    encode_frame,
    main,
    read_log_payload,
    read_seal_payload,
    seal_key,
    set_state_payload,
)
from tests.commands import ROOT
from tests.drivers.serial_helpers import bitwise_crc16, feed_all

DOC = ROOT / "docs" / "protocols" / "eseal.md"
KEY = bytes(range(16))
CHALLENGE = bytes([1, 2, 3, 4, 5, 6, 7, 8])


def doc_examples() -> list[bytes]:
    """Every hex frame in the document's Examples section."""
    text = DOC.read_text().split("## Examples", 1)[1].split("##", 1)[0]
    return [bytes.fromhex(m) for m in re.findall(r"\bA5(?: [0-9A-F]{2})+", text)]


def decode(data: bytes, direction: str = "both", step: int = 0) -> list[object]:
    return feed_all(MessageDecoder(direction), data, step)  # type: ignore[arg-type]


def messages(items: list[object]) -> list[Request | Response]:
    return [i for i in items if isinstance(i, (Request, Response))]


def rejects(items: list[object]) -> list[Rejected]:
    return [i for i in items if isinstance(i, Rejected)]


def test_crc_check_value_and_table_match_the_bitwise_definition() -> None:
    assert crc16_modbus(b"123456789") == 0x4B37
    for data in (b"", b"\x00", b"\xa5\x03\x01\x01\x01", bytes(range(256))):
        assert crc16_modbus(data) == bitwise_crc16(data)


def test_the_documents_examples_decode_to_what_it_says() -> None:
    frames = doc_examples()
    assert len(frames) == 12
    decoded = messages(decode(b"".join(frames)))
    assert len(decoded) == 12
    info_req, info, read_req, read, no_seal, log_req, log, unlock_req, unlocked, refused = decoded[
        :10
    ]
    arm_req, armed = decoded[10:]
    assert isinstance(info, Response)
    assert info.info is not None
    assert (info.info.protocol, info.info.firmware, info.info.model) == (1, "1.0", "SIM-ESR1")
    assert isinstance(read, Response)
    assert read.seal == SealReading("CN1234567", "sealed", 87, 3)
    assert read.challenge == CHALLENGE
    assert isinstance(no_seal, Response)
    assert no_seal.status == "no_seal"
    assert isinstance(log_req, Request)
    assert (log_req.start, log_req.max_count) == (0, 16)
    assert isinstance(log, Response)
    assert log.log == SealLog(
        "CN1234567", 2, 0, (SealEvent("armed", 1767225600), SealEvent("tampered", 1767229200))
    )
    assert isinstance(unlock_req, Request)
    assert unlock_req.command == "unlock"
    assert unlock_req.seal_id == "CN1234567"
    assert isinstance(unlocked, Response)
    assert (unlocked.status, unlocked.state) == ("ok", "opened")
    assert isinstance(refused, Response)
    assert refused.status == "auth_failed"
    assert isinstance(arm_req, Request)
    assert arm_req.command == "arm"
    assert isinstance(armed, Response)
    assert armed.state == "sealed"
    assert [m.seq for m in decoded] == [1, 1, 2, 2, 2, 3, 3, 4, 4, 4, 5, 5]
    assert isinstance(info_req, Request)
    assert isinstance(read_req, Request)


def test_the_documents_macs_follow_its_formula() -> None:
    frames = [m for m in messages(decode(b"".join(doc_examples()))) if isinstance(m, Request)]
    unlock_req = next(m for m in frames if m.command == "unlock")
    arm_req = next(m for m in frames if m.command == "arm")
    # recomputed here from the document's formula, independently of the codec
    key = hmac.new(KEY, b"ESK1CN1234567", hashlib.sha256).digest()
    for req, cmd in ((unlock_req, 0x20), (arm_req, 0x21)):
        message = b"ESL1" + bytes([cmd, 9]) + b"CN1234567" + CHALLENGE
        assert req.mac == hmac.new(key, message, hashlib.sha256).digest()[:8]
    assert seal_key(KEY, "CN1234567") == key
    assert command_mac(KEY, "unlock", "CN1234567", CHALLENGE) == unlock_req.mac
    assert command_mac(KEY, "unlock", "CN1234568", CHALLENGE) != unlock_req.mac


@pytest.mark.parametrize("step", [1, 2, 3, 7, 19])
def test_frames_split_anywhere(step: int) -> None:
    stream = b"".join(doc_examples())
    assert len(messages(decode(stream, step=step))) == 12
    assert rejects(decode(stream, step=step)) == []


def test_junk_before_between_and_inside_frames() -> None:
    a, b, c = doc_examples()[2:5]
    inside = b[:9] + b"\xa5\x00" + b[9:]  # noise inside the second frame
    stream = b"\x00\xa5\xa5\x02junk" + a + inside + c + b"\xa5\x05"
    items = decode(stream)
    assert [m.raw for m in messages(items)] == [a, c]
    # every byte is accounted for, in order
    raw = b"".join(i.raw for i in items if isinstance(i, (Request, Response, Rejected)))
    assert raw == stream


def test_bad_crc_bad_length_and_a_frame_hidden_behind_a_false_start() -> None:
    good = doc_examples()[3]
    bad_crc = good[:-1] + bytes([good[-1] ^ 0x01])
    bad_len = b"\xa5\x02\x01\x02\x10"  # LEN below 3
    false_start = b"\xa5\x40"  # claims 68 bytes: swallows the good frame until rescanned
    items = decode(bad_crc + bad_len + false_start + good + b"\x00" * 70)
    assert [m.raw for m in messages(items)] == [good]
    reasons = {r.reason for r in rejects(items)}
    assert "bad CRC" in reasons


def test_idle_line_resyncs_a_frame_stuck_behind_a_false_start() -> None:
    good = doc_examples()[3]
    decoder = MessageDecoder("responses")
    assert decoder.feed(b"\xa5\x40" + good) == []  # waiting for 68 bytes that never come
    assert decoder.pending
    items = decoder.resync()
    assert [m.raw for m in messages(items)] == [good]


def test_direction_is_enforced() -> None:
    request = encode_frame(1, 9, 0x10)
    response = doc_examples()[3]
    [rej] = decode(request, "responses")
    assert isinstance(rej, Rejected)
    [rej] = decode(response, "requests")
    assert isinstance(rej, Rejected)


@pytest.mark.parametrize(
    ("cmd", "payload", "why"),
    [
        (0x90, b"\x00\x09CN1234567\x01\x57\x00\x03" + bytes(7), "short"),
        (0x90, b"\x00\x09CN1234567\x01\x57\x00\x03" + bytes(9), "longer"),
        (0x90, b"\x00\x09CN1234567\x01\x65\x00\x03" + bytes(8), "battery"),
        (0x90, b"\x00\x09cn1234567\x01\x57\x00\x03" + bytes(8), "seal id"),
        (0x90, b"\x00\x00\x01\x57\x00\x03" + bytes(8), "seal id"),
        (0x90, b"\x00\x09CN1234567\x04\x57\x00\x03" + bytes(8), "state"),
        (0x90, b"\x09", "status"),
        (0x90, b"", "short"),
        (0x91, b"\x00\x02AB\x00\x01\x00\x00\x02" + b"\x01" + bytes(4) * 2, "outside"),
        (0x91, b"\x00\x02AB\x00\x01\x00\x00\x01\x09\x00\x00\x00\x00", "event"),
        (0xA0, b"\x00", "short"),
        (0xEE, b"\x00", "unknown command"),
    ],
)
def test_malformed_payloads_are_rejected_whole(cmd: int, payload: bytes, why: str) -> None:
    [rej] = decode(encode_frame(1, 1, cmd, payload), "responses")
    assert isinstance(rej, Rejected)
    assert why in rej.reason


@pytest.mark.parametrize(
    ("cmd", "payload", "why"),
    [
        (0x11, b"\x00\x00\x00", "entries"),
        (0x11, b"\x00\x00\x11", "entries"),
        (0x20, b"\x02AB" + bytes(7), "short"),
        (0x21, b"\x02A." + bytes(8), "seal id"),
        (0x10, b"\x00", "longer"),
    ],
)
def test_malformed_requests_are_rejected(cmd: int, payload: bytes, why: str) -> None:
    [rej] = decode(encode_frame(1, 1, cmd, payload), "requests")
    assert isinstance(rej, Rejected)
    assert why in rej.reason


def test_round_trip_of_every_message() -> None:
    seal = SealReading("MSKU-00042", "tampered", 3, 65535)
    log_page = SealLog("MSKU-00042", 40, 24, tuple(SealEvent("battery_low", i) for i in range(16)))
    frames = [
        encode_frame(7, 200, 0x90, read_seal_payload(seal, CHALLENGE)),
        encode_frame(7, 201, 0x91, read_log_payload(log_page)),
        encode_frame(7, 202, 0x20, set_state_payload("MSKU-00042", bytes(8))),
    ]
    read, log, unlock = messages(decode(b"".join(frames)))
    assert isinstance(read, Response)
    assert read.seal == seal
    assert isinstance(log, Response)
    assert log.log == log_page
    assert isinstance(unlock, Request)
    assert (unlock.addr, unlock.seq, unlock.seal_id, unlock.mac) == (7, 202, "MSKU-00042", bytes(8))


def test_encoders_refuse_what_the_protocol_cannot_carry() -> None:
    with pytest.raises(ValueError, match="seal id"):
        set_state_payload("cn-lower", bytes(8))
    with pytest.raises(ValueError, match="seal id"):
        set_state_payload("X" * 33, bytes(8))
    with pytest.raises(ValueError, match="MAC"):
        set_state_payload("CN1", bytes(7))
    with pytest.raises(ValueError, match="payload"):
        encode_frame(1, 1, 0x10, bytes(129))


def test_capture_file_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = tmp_path / "eseal.bin"
    frames = doc_examples()
    capture.write_bytes(b"\xff" + b"".join(frames) + frames[3][:-1] + b"\x00")
    assert main([str(capture)]) == 0
    out = capsys.readouterr()
    lines = [json.loads(line) for line in out.out.splitlines()]
    assert len(lines) == 13
    assert lines[3] == {
        "dir": "response",
        "command": "read_seal",
        "addr": 1,
        "seq": 2,
        "status": "ok",
        "seal_id": "CN1234567",
        "state": "sealed",
        "battery_pct": 87,
        "events": 3,
        "challenge": "0102030405060708",
    }
    assert lines[-1] == {"accepted": 12, "rejected": 2}
    assert main(["--direction", "responses", str(capture)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[-1] == {"accepted": 7, "rejected": 7}  # the 5 requests are rejected here
